"""`ykt qr …`: the MOT QR code — a TEST PKI (root CA, issuers, accounts), the phone's display, offline verify."""
from __future__ import annotations

import time
from pathlib import Path

import click

from specs.catalog import terminal_profile_path
from terminal_sim.profile import load_terminal_profile
from ykt_qr import JsonReplayStore, RootStore, Verdict, Verifier
from ykt_qr.codec import mmyy
from ykt_qr.pki import (GENERATOR_DEFAULTS, RootCa, Issuer, account_number, load_account, load_issuer, load_root)
from ykt_qr.render import save_png, save_svg, terminal_text
from ykt_qr.scan import ScanError, code_from_text, decode_image
from ykt_qr.times import format_unix, mmyy_text, parse_time

from .common import Shipped, hex_bytes, make_rng, seed_option
from .errors import EXIT_DECLINED, EXIT_OK
from .output import console, emit_json, table

QR_PKI = Shipped("qr-pki")
QR_ROOTS = Shipped("qr-roots")


@click.group("qr")
def qr() -> None:
    """The MOT interoperable QR code (部标二维码): TEST PKI, the phone's code, offline verification."""


# -- option helpers ---------------------------------------------------------------------------------

def _time(option: str, text: str | None) -> int:
    """--at / --until: Unix seconds or YYYYMMDDhhmmss China time; the real clock when absent."""
    if text is None:
        return int(time.time())
    try:
        return parse_time(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _mmyy(option: str, text: str) -> bytes:
    raw = hex_bytes(option, text, 2)
    try:
        mmyy(raw)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None
    return raw


def _hex_byte(option: str, text: str) -> int:
    return hex_bytes(option, text, 1)[0]


def _written(as_json: bool, summary: dict, line: str) -> None:
    if as_json:
        emit_json(summary)
    else:
        click.echo(line)


def _json_option(fn):
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output (never a key).")(fn)


def _out_option(fn):
    return click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
                        help="Where to write the TEST file (TOML, keys in clear: test only).")(fn)


# -- the TEST PKI -----------------------------------------------------------------------------------

@qr.group("ca")
def ca() -> None:
    """The TEST root CA (indexes F0-FF)."""


@ca.command("init")
@click.option("--index", default="F0", show_default=True, metavar="HEX2", help="Root index, F0..FF for TEST roots.")
@click.option("--expiry", default="1249", show_default=True, metavar="MMYY", help="Root record expiry (BCD MMYY).")
@click.option("--name", default=None, help="Name in the file (must say TEST).")
@click.option("--roots", "roots_path", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Root store (JSON, Q6) to create or add this root to.")
@_out_option
@seed_option
@_json_option
def ca_init(index: str, expiry: str, name: str | None, roots_path: Path | None, out: Path, seed: int | None,
            as_json: bool) -> None:
    """Create a TEST root CA: its key and its self-signed 144-byte record."""
    if name is not None and "test" not in name.lower():
        raise click.BadParameter("a TEST root must say TEST in its name", param_hint="--name")
    try:
        root = RootCa.create(_hex_byte("--index", index), _mmyy("--expiry", expiry), make_rng(seed), name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--index") from None
    root.save(out)
    if roots_path is not None:
        store = RootStore.load(roots_path) if roots_path.exists() else RootStore(source=str(roots_path))
        store.with_root(root.root_key).save(roots_path)
    key = root.root_key
    _written(as_json, {"index": f"{root.index:02X}", "expiry": mmyy_text(root.record[11:13]),
                       "public_key": key.public_key.xy.hex().upper(), "fingerprint": key.public_key.fingerprint,
                       "file": str(out), "roots": str(roots_path) if roots_path else None},
             f"TEST root {root.index:02X}, expires {mmyy_text(root.record[11:13])}, key {key.public_key.fingerprint}"
             f" -> {out}" + (f"; root store {roots_path}" if roots_path else ""))


@qr.group("issuer")
def issuer() -> None:
    """TEST issuers (code platforms) certified by a TEST root."""


@issuer.command("add")
@click.option("--ca", "ca_file", required=True, type=QR_PKI, metavar="ROOT", help="TEST root CA file (or shipped name).")
@click.option("--code", "code", default="F0000001", show_default=True, metavar="HEX8",
              help="发码机构号, the issuer code (also the certificate's issuer ID).")
@click.option("--platform", default="F0000002", show_default=True, metavar="HEX8", help="发码平台编号.")
@click.option("--cert-expiry", default="1239", show_default=True, metavar="MMYY", help="Certificate expiry (BCD MMYY).")
@click.option("--serial", default="000001", show_default=True, metavar="HEX6", help="Certificate serial number.")
@click.option("--uid-mode", type=click.Choice(["default", "shanghai"]), default="default", show_default=True,
              help="User IDs of the SM2 signatures (§1.4, Q1).")
@click.option("--name", default=None, help="Name in the file (must say TEST).")
@_out_option
@seed_option
@_json_option
def issuer_add(ca_file: Path, code: str, platform: str, cert_expiry: str, serial: str, uid_mode: str,
               name: str | None, out: Path, seed: int | None, as_json: bool) -> None:
    """Create a TEST issuer: its key and a certificate signed by ROOT."""
    if name is not None and "test" not in name.lower():
        raise click.BadParameter("a TEST issuer must say TEST in its name", param_hint="--name")
    root = load_root(ca_file)
    made = Issuer.create(root, hex_bytes("--code", code, 4), hex_bytes("--platform", platform, 4),
                         _mmyy("--cert-expiry", cert_expiry), hex_bytes("--serial", serial, 3), uid_mode,
                         make_rng(seed), name)
    made.save(out)
    fp = made.key.public_key.fingerprint
    _written(as_json, {"issuer": made.issuer.hex().upper(), "platform": made.platform.hex().upper(),
                       "root_index": f"{root.index:02X}", "cert_expiry": mmyy_text(bytes.fromhex(cert_expiry)),
                       "uid_mode": uid_mode, "fingerprint": fp, "file": str(out)},
             f"TEST issuer {made.issuer.hex().upper()} / platform {made.platform.hex().upper()} under root "
             f"{root.index:02X}, certificate to {mmyy_text(bytes.fromhex(cert_expiry))}, key {fp} -> {out}")


@qr.command("authorise")
@click.option("--issuer", "issuer_file", required=True, type=QR_PKI, metavar="ISSUER",
              help="TEST issuer file (or shipped name).")
@click.option("--account", "pay_account", required=True, metavar="TEXT16", help="支付账户号, 16 printable ASCII characters.")
@click.option("--account-no", required=True, metavar="DIGITS", help="用户账户号, up to 20 digits (F-padded).")
@click.option("--version", "version", default=f"{GENERATOR_DEFAULTS['version']:02X}", show_default=True,
              metavar="HEX2", help="二维码版本: 80 interoperable, 81 local.")
@click.option("--type", "account_type", default=f"{GENERATOR_DEFAULTS['account_type']:02X}", show_default=True,
              metavar="HEX2", help="卡账户类型 (00/01 normal, 02 student, 03 elderly, 04 test, 05 military).")
@click.option("--limit", type=click.IntRange(0, 0xFFFFFF), default=GENERATOR_DEFAULTS["limit"], show_default=True,
              metavar="FEN", help="单次消费金额上限.")
@click.option("--validity", type=click.IntRange(0, 1200), default=GENERATOR_DEFAULTS["validity"], show_default=True,
              metavar="S", help="二维码有效时间 of each displayed code.")
@click.option("--custom", default="", metavar="HEX", help="发码机构自定义域, up to 32 bytes.")
@click.option("--at", "at", default=None, metavar="TIME", help="Time of the authorisation (default now).")
@click.option("--days", type=click.IntRange(0, 3650), default=GENERATOR_DEFAULTS["auth_days"], show_default=True,
              help="Authorisation lifetime from --at.")
@click.option("--until", default=None, metavar="TIME", help="Authorisation expiry instead of --days.")
@_out_option
@seed_option
@_json_option
def authorise(issuer_file: Path, pay_account: str, account_no: str, version: str, account_type: str, limit: int,
              validity: int, custom: str, at: str | None, days: int, until: str | None, out: Path,
              seed: int | None, as_json: bool) -> None:
    """The code platform signs an account's authorisation; writes the phone's TEST account file."""
    platform = load_issuer(issuer_file)
    pay = pay_account.encode("ascii", errors="replace")
    if len(pay) != 16 or not all(0x20 <= b <= 0x7E for b in pay):
        raise click.BadParameter(f"must be 16 printable ASCII characters, got {len(pay_account)}",
                                 param_hint="--account")
    try:
        number = account_number(account_no)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--account-no") from None
    custom_bytes = bytes.fromhex(custom) if custom else b""
    if len(custom_bytes) > 32:
        raise click.BadParameter(f"at most 32 bytes, got {len(custom_bytes)}", param_hint="--custom")
    version_byte = _hex_byte("--version", version)
    if version_byte < 0x80:
        raise click.BadParameter(f"{version_byte:02X}: a MOT code's version is 80..FF", param_hint="--version")
    expiry = _time("--until", until) if until is not None else _time("--at", at) + days * 86400
    account = platform.new_account(pay, number, expiry, make_rng(seed), version=version_byte,
                                   account_type=_hex_byte("--type", account_type), limit=limit, validity=validity,
                                   custom=custom_bytes)
    account.save(out)
    a = account.authorisation
    _written(as_json, {"account": pay_account, "account_no": number.hex().upper(), "issuer": a.issuer.hex().upper(),
                       "platform": a.platform.hex().upper(), "version": f"{a.version:02X}",
                       "account_type": f"{a.account_type:02X}", "limit": a.limit, "validity": a.validity,
                       "auth_expiry": a.auth_expiry, "file": str(out)},
             f"TEST account {pay_account} ({number.hex().upper()}) authorised by {a.issuer.hex().upper()} until "
             f"{format_unix(a.auth_expiry)} -> {out}")


# -- the phone --------------------------------------------------------------------------------------

@qr.command("show")
@click.argument("account_file", type=QR_PKI, metavar="ACCOUNT")
@click.option("--at", "at", default=None, metavar="TIME", help="Generation time (default now).")
@click.option("--png", "png", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Also write the symbol as PNG.")
@click.option("--svg", "svg", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Also write the symbol as SVG.")
@click.option("--scale", type=click.IntRange(1, 40), default=4, show_default=True, help="Pixels per module.")
@click.option("--no-symbol", is_flag=True, help="Print the code's hex only, not the symbol.")
@seed_option
@_json_option
def show(account_file: Path, at: str | None, png: Path | None, svg: Path | None, scale: int, no_symbol: bool,
         seed: int | None, as_json: bool) -> None:
    """The phone's display: adds the generation time and the user signature; prints the code."""
    account = load_account(account_file)
    gen_time = _time("--at", at)
    code = account.show(gen_time, make_rng(seed)).to_bytes()
    if png is not None:
        save_png(code, png, scale)
    if svg is not None:
        save_svg(code, svg, scale)
    if as_json:
        emit_json({"code": code.hex().upper(), "length": len(code), "gen_time": gen_time,
                   "png": str(png) if png else None, "svg": str(svg) if svg else None})
        return
    click.echo(code.hex().upper())
    if not no_symbol:
        click.echo(terminal_text(code), nl=False)
        click.echo(f"{len(code)} bytes, generated {format_unix(gen_time)}", err=True)


# -- the validator's check --------------------------------------------------------------------------

@qr.command("verify")
@click.argument("code_text", required=False, metavar="[CODE_HEX]")
@click.option("--image", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Read the code from a photo or screenshot instead.")
@click.option("--roots", "roots_file", default=None, type=QR_ROOTS, metavar="FILE",
              help="Root store (JSON, Q6), or a shipped name; default: the --profile's qr.roots.")
@click.option("--at", "at", default=None, metavar="TIME", help="Unix seconds or YYYYMMDDhhmmss China time (default now).")
@click.option("--profile", default=None, metavar="T",
              help="Terminal profile with a qr table: runs checks 11-12 (white list, limit, replay).")
@click.option("--amount", type=click.IntRange(0, 0xFFFFFF), default=None, metavar="FEN",
              help="Fare to compare with the code's limit (default: the profile's flat fare).")
@click.option("--replay", "replay_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="JSON file remembering accepted codes across runs (needs --profile).")
@_json_option
def verify(code_text: str | None, image: Path | None, roots_file: Path, at: str | None, profile: str | None,
           amount: int | None, replay_file: Path | None, as_json: bool) -> int:
    """Run the offline checks of §1.5 in order; exit 0 only when the code is accepted, 3 when it is refused
    (or ignored: the same account within 2 s), as the validator declines it."""
    if (code_text is None) == (image is None):
        raise click.UsageError("give either CODE_HEX or --image FILE")
    try:
        code = decode_image(image) if image is not None else code_from_text(code_text or "")
    except ScanError as exc:
        raise click.BadParameter(str(exc), param_hint="--image" if image is not None else "CODE_HEX") from None
    now = _time("--at", at)
    policy = replay = None
    if profile is not None:
        prof = load_terminal_profile(terminal_profile_path(profile))
        if prof.qr is None:
            raise click.BadParameter(f"{prof.source} has no qr table: this terminal takes no QR code",
                                     param_hint="--profile")
        policy = prof.qr
        if amount is None:
            amount = prof.fares.flat
        if replay_file is not None:
            replay = JsonReplayStore(replay_file)
    elif replay_file is not None:
        raise click.BadParameter("remembering codes is part of checks 11-12: give --profile too", param_hint="--replay")
    elif amount is not None:
        raise click.BadParameter("the limit check is part of checks 11-12: give --profile too", param_hint="--amount")
    if roots_file is None:
        roots_file = prof.qr_roots if profile is not None else None
        if roots_file is None:
            raise click.BadParameter("give the root store, or a --profile whose qr table names one (qr.roots)",
                                     param_hint="--roots")
    verdict = Verifier(RootStore.load(roots_file), policy, replay).verify(code, now, amount)
    if as_json:
        emit_json(verdict.to_json())
    else:
        _print_verdict(verdict)
    return EXIT_OK if verdict.accepted else EXIT_DECLINED


def _print_verdict(verdict: Verdict) -> None:
    c = console()
    rows = [[k.name, k.result.value, k.detail] for k in verdict.checks]
    c.print(table(None, ["check", "result", "detail"], rows))
    if verdict.accepted:
        c.print("ACCEPTED" + (f" (ticket type {verdict.ticket_type})" if verdict.ticket_type else ""))
    elif verdict.ignored:
        c.print("IGNORED (same account within 2 s; no record)")
    else:
        c.print(f"REFUSED: {verdict.reason}")


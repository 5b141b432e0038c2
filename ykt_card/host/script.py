"""Personalisation as an APDU script: what turns a blank card into an issued one, with the reference's commands only.

`build_script(target, transport_key)` lists the commands that make a blank card (`personalise.blank_card`:
the profile's file structure, the transport key, no key sets) hold the same keys, files and records as
`target` (the card `personalise.issue_card` built). `run_script(script, reader, keys)` sends them through
any Reader (in-process, an image, pcscd), computing every secure-messaging MAC from the GET CHALLENGE
answer just before it: a MAC over a random challenge cannot be precomputed, so the script describes
those commands and the runner, holding the keys, completes them live. File creation is vendor-specific
and stays out of the script (the blank card already has the files).

The commands, in order:
    SELECT MOT_T_EP
    per key index (ascending), per role (card_master last, because once a key set holds a card master
    key, the card protects that index's WRITE KEY with it instead of the transport key):
        GET CHALLENGE; WRITE KEY `84 D4 type index Lc E ‖ MAC` under the transport key
    GET CHALLENGE; WRITE KEY `84 D4 30 00 …`: the transport key is replaced by the card's own card
        master key (the card_master of the lowest key index; left out when there is none or it is the
        transport key already), so no batch-wide key stays on the card
    GET CHALLENGE; UPDATE BINARY `04 D6 …` EF15, EF16, EF17 under the app maintenance key
    GET CHALLENGE; UPDATE RECORD `04 DC …` each EF1A record under the app maintenance key

File format: JSON Lines (UTF-8), one object per line; hex is upper case.

Line 1, the header:
    {"ykt": "personalisation-script", "format": 1, "card_no": "<20 digits>", "issuer_id": "<16 hex>",
     "profile": "<name>", "keys": {NAME: {"role": ROLE, "algorithm": "3des"|"sm4", "kcv": "<6 hex>"}}}
  `keys` declares the keys the runner must hold, by name (`transport`: the key on the blank card;
  `maintenance`: the card's app maintenance key), each by role, algorithm and KCV so a runner can find
  it in its key sets (as given, or diversified for `issuer_id` and the serial in `card_no`, D2) and
  check it before sending anything.
Each further line, one step:
    {"step": N, "apdu": "<hex>", "expect": "9000", "note": "<text>"[, "challenge": true][, "mac": NAME]}
  `step` counts from 1 with no gaps. `apdu` is the command exactly as sent, except that a step with
  `mac` is sent with 4 more bytes: `apdu` is then CLA INS P1 P2 Lc ‖ data with Lc already counting
  those 4 bytes, and the runner appends MAC = secure-messaging MAC under key NAME over `apdu` as
  written, with IV = the answer to the step before, which must be a `challenge` step (a GET
  CHALLENGE `00 84 00 00 04`): a challenge is good for the next command only (D18). `expect` is
  the status word the step must answer; the runner stops at the first step that answers otherwise.
  `note` is for people (which key or file; keys appear by KCV only).

Keys never appear in clear: each WRITE KEY carries its key encrypted under the transport key (the
card's format, ykt_card.card.cos.TUnionCardOS.write_key), which is how personalisation data travels, and
is exactly what a trace of the session shows. With TEST key sets only (D15).
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from apdu.command import ApduError, CommandApdu
from apdu.reader import Reader
from apdu.status import SW_OK, describe
from apdu.t0 import transceive
from keysets import ALL_ROLES, Algorithm, KeyEntry, KeySet, KeySetError, SecretKey, pad80

from ykt_card.card.cos import KEY_TYPES
from ykt_card.host.card import sm_mac
from ykt_card.card.state import (
    SFI_CAPP, SFI_HISTORY, SFI_HOLDER, SFI_LOG, SFI_MANAGEMENT, SFI_PUBLIC, CardState, CyclicFile,
    Lock,
)

__all__ = [
    "SCRIPT_KIND", "FORMAT", "ScriptError", "ScriptRefused", "ScriptKey", "Step", "Script", "build_script",
    "parse_script", "load_script", "save_script", "script_keys", "run_script", "write_key_block",
]

SCRIPT_KIND = "personalisation-script"
FORMAT = 1
CHALLENGE_APDU = bytes.fromhex("0084000004")
_ROLE_TYPE = {role: p1 for p1, role in KEY_TYPES.items()}
_KEY_ORDER = [r for r in ALL_ROLES if r != "card_master"] + ["card_master"]


class ScriptError(ValueError):
    """A script that cannot be built, read or run as written: names the line or step and the field."""


class ScriptRefused(Exception):
    """The card answered a step with another status word than the script expects.

    `step` is the step's number, `sw` the status word; steps before it were applied (each command
    is atomic on the card, a personalisation is not: a refused card is scrapped or re-run by hand).
    """

    def __init__(self, step: Step, sw: int) -> None:
        done = f"steps 1-{step.number - 1} were applied" if step.number > 1 else "nothing was applied"
        super().__init__(f"step {step.number} ({step.note or step.apdu[:4].hex().upper()}): card answered "
                         f"{sw:04X} ({describe(sw)}), expected {step.expect:04X}; {done}")
        self.step = step
        self.sw = sw


@dataclass(frozen=True)
class ScriptKey:
    """A key the runner must hold: found by role, algorithm and KCV, never by value."""

    name: str
    role: str
    algorithm: Algorithm
    kcv: str


@dataclass(frozen=True)
class Step:
    number: int
    apdu: bytes
    expect: int = SW_OK
    note: str = ""
    challenge: bool = False
    mac: str | None = None


@dataclass(frozen=True)
class Script:
    card_no: str
    issuer_id: bytes
    profile: str
    keys: Mapping[str, ScriptKey]
    steps: tuple[Step, ...]

    @property
    def serial8(self) -> bytes:
        """EF15 bytes 12..19 of the card the script personalises (the second factor of D2)."""
        return bytes.fromhex(self.card_no)[2:10]

    def dumps(self) -> str:
        """The JSON Lines text of the script (byte for byte the same for the same script)."""
        header = {
            "ykt": SCRIPT_KIND, "format": FORMAT, "card_no": self.card_no,
            "issuer_id": self.issuer_id.hex().upper(), "profile": self.profile,
            "keys": {k.name: {"role": k.role, "algorithm": k.algorithm.value, "kcv": k.kcv}
                     for k in self.keys.values()},
        }
        lines = [header]
        for s in self.steps:
            line: dict[str, object] = {"step": s.number, "apdu": s.apdu.hex().upper(), "expect": f"{s.expect:04X}",
                                       "note": s.note}
            if s.challenge:
                line["challenge"] = True
            if s.mac is not None:
                line["mac"] = s.mac
            lines.append(line)
        return "".join(json.dumps(x, ensure_ascii=False, separators=(",", ":")) + "\n" for x in lines)


# --- building -------------------------------------------------------------------------------------

def write_key_block(protector: SecretKey, key: SecretKey, version: int) -> bytes:
    """E of WRITE KEY: ECB under `protector` of pad80(14 ‖ algID ‖ version ‖ 00 00 ‖ key), as the card
    decrypts it (ykt_card.card.cos.TUnionCardOS.write_key). Holds the key only encrypted."""
    alg = protector.algorithm
    plain = bytes((0x14, key.algorithm.wire_id, version, 0x00, 0x00)) + key.value
    return alg.cipher(protector.value).encrypt(pad80(plain, alg.block_size))


def _sm_apdu(cla: int, ins: int, p1: int, p2: int, data: bytes) -> bytes:
    """CLA INS P1 P2 Lc ‖ data with Lc counting the 4 MAC bytes the runner appends."""
    if len(data) + 4 > 0xFF:
        raise ScriptError(f"{ins:02X} command: {len(data)} bytes of data and a MAC do not fit a short Lc")
    return bytes((cla, ins, p1, p2, len(data) + 4)) + data


def build_script(target: CardState, transport_key: SecretKey, profile: str = "") -> Script:
    """The script that turns a blank card holding `transport_key` into `target`.

    `target` must be a card as issued: a 0-fen purse with zero counters, empty EF18 and EF1E, no
    proofs, no lock (the reference has no command that writes those; they come from transactions).
    """
    if not isinstance(transport_key, SecretKey):
        raise ScriptError(f"transport key: must be a keysets.SecretKey, not {type(transport_key).__name__}")
    p = target.purse
    if (p.balance, p.online_counter, p.offline_counter) != (0, 0, 0):
        raise ScriptError(f"purse: a scripted card starts at 0 fen with zero counters (balance {p.balance}); "
                          "no reference command sets a purse, load the card afterwards")
    for sfi in (SFI_LOG, SFI_HISTORY):
        f = target.files.get(sfi)
        if not isinstance(f, CyclicFile) or f.count:
            raise ScriptError(f"files.{sfi:02X}: must be an empty cyclic file on a card to personalise")
    if target.proofs or target.lock is not Lock.NONE or target.journal:
        raise ScriptError("proofs/lock/journal: the target card has been used; script a card as issued")
    if not target.key_sets:
        raise ScriptError("key_sets: the target card holds no key set")
    for sfi in target.files:
        if sfi not in (SFI_PUBLIC, SFI_HOLDER, SFI_MANAGEMENT, SFI_LOG, SFI_CAPP, SFI_HISTORY):
            raise ScriptError(f"files.{sfi:02X}: issuer-defined files are not scripted")

    steps: list[Step] = []

    def add(apdu: bytes, note: str, *, challenge: bool = False, mac: str | None = None) -> None:
        steps.append(Step(len(steps) + 1, apdu, SW_OK, note, challenge, mac))

    def secured(apdu: bytes, note: str, key_name: str) -> None:
        add(CHALLENGE_APDU, "GET CHALLENGE", challenge=True)
        add(apdu, note, mac=key_name)

    add(bytes.fromhex("00A40400") + bytes((len(target.aid),)) + target.aid + b"\x00",
        f"SELECT {target.aid.hex().upper()}")
    for index, ks in sorted(target.key_sets.items()):
        for role in sorted(ks.keys, key=_KEY_ORDER.index):
            e: KeyEntry = ks.keys[role]
            block = write_key_block(transport_key, e.key, e.version)
            secured(_sm_apdu(0x84, 0xD4, _ROLE_TYPE[role], index, block),
                    f"WRITE KEY {role} {index:02X} ({e.key.algorithm.value}, version {e.version}, KCV {e.kcv})",
                    "transport")
    lowest = target.key_sets[min(target.key_sets)]
    own = lowest.keys.get("card_master")
    if own is not None and own.key != transport_key:
        block = write_key_block(transport_key, own.key, own.version)
        secured(_sm_apdu(0x84, 0xD4, _ROLE_TYPE["card_master"], 0x00, block),
                f"WRITE KEY transport 00 <- card master ({own.key.algorithm.value}, KCV {own.kcv})", "transport")
    maintenance = next((ks.keys["app_maintenance"] for _, ks in sorted(target.key_sets.items())
                        if "app_maintenance" in ks.keys), None)
    if maintenance is None:
        raise ScriptError("key_sets: no app_maintenance key to write the files with")
    for sfi in (SFI_PUBLIC, SFI_HOLDER, SFI_MANAGEMENT):
        data = target.files[sfi].data  # type: ignore[union-attr]
        secured(_sm_apdu(0x04, 0xD6, 0x80 | sfi, 0x00, data), f"UPDATE BINARY EF{sfi:02X}", "maintenance")
    capp = target.files.get(SFI_CAPP)
    for rid, record in sorted(getattr(capp, "records", {}).items()):
        secured(_sm_apdu(0x04, 0xDC, rid, (SFI_CAPP << 3) | 0x04, record), f"UPDATE RECORD EF1A {rid:02X}",
                "maintenance")
    keys = {
        "transport": ScriptKey("transport", "card_master", transport_key.algorithm, transport_key.kcv),
        "maintenance": ScriptKey("maintenance", "app_maintenance", maintenance.key.algorithm, maintenance.kcv),
    }
    return Script(target.card_no, target.issuer_id, profile, keys, tuple(steps))


# --- reading and writing --------------------------------------------------------------------------

def parse_script(text: str, source: str = "<script>") -> Script:
    """Read a script, checking every field; errors name the line and the field."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise ScriptError(f"{source}: empty: line 1 must be the header")

    def fail(n: int, where: str, reason: str) -> ScriptError:
        return ScriptError(f"{source}: line {n}: {where}: {reason}")

    docs = []
    for n, line in lines:
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise fail(n, "(line)", f"not JSON ({exc.msg})") from None
        if not isinstance(doc, dict):
            raise fail(n, "(line)", "must be a JSON object")
        docs.append((n, doc))

    n, head = docs[0]
    if head.get("ykt") != SCRIPT_KIND:
        raise fail(n, "ykt", f"must be {SCRIPT_KIND!r} (line 1 is the header)")
    if head.get("format") != FORMAT:
        raise fail(n, "format", f"must be {FORMAT}, got {head.get('format')!r}")
    unknown = set(head) - {"ykt", "format", "card_no", "issuer_id", "profile", "keys"}
    if unknown:
        raise fail(n, sorted(unknown)[0], "unknown field")
    card_no = head.get("card_no")
    if not isinstance(card_no, str) or len(card_no) != 20 or not card_no.isdigit():
        raise fail(n, "card_no", "must be 20 decimal digits")
    issuer_id = _hex(head.get("issuer_id"), lambda r: fail(n, "issuer_id", r), 8)
    profile = head.get("profile", "")
    if not isinstance(profile, str):
        raise fail(n, "profile", "must be a string")
    keys_doc = head.get("keys")
    if not isinstance(keys_doc, dict) or not keys_doc:
        raise fail(n, "keys", "must map key names to {role, algorithm, kcv}")
    keys: dict[str, ScriptKey] = {}
    for name, k in keys_doc.items():
        where = f"keys.{name}"
        if not isinstance(k, dict) or set(k) != {"role", "algorithm", "kcv"}:
            raise fail(n, where, "must be {role, algorithm, kcv}")
        if k["role"] not in ALL_ROLES:
            raise fail(n, f"{where}.role", f"unknown role {k['role']!r}")
        try:
            alg = Algorithm.parse(k["algorithm"]) if isinstance(k["algorithm"], str) else None
        except ValueError:
            alg = None
        if alg is None:
            raise fail(n, f"{where}.algorithm", "must be 3des or sm4")
        kcv = k["kcv"]
        if not isinstance(kcv, str) or len(kcv) != 6 or any(c not in "0123456789ABCDEF" for c in kcv):
            raise fail(n, f"{where}.kcv", "must be 6 upper-case hex digits")
        keys[name] = ScriptKey(name, k["role"], alg, kcv)

    steps: list[Step] = []
    for n, doc in docs[1:]:
        unknown = set(doc) - {"step", "apdu", "expect", "note", "challenge", "mac"}
        if unknown:
            raise fail(n, sorted(unknown)[0], "unknown field")
        number = doc.get("step")
        if number != len(steps) + 1 or isinstance(number, bool):
            raise fail(n, "step", f"must be {len(steps) + 1} (steps count from 1 with no gaps)")
        apdu = _hex(doc.get("apdu"), lambda r: fail(n, "apdu", r))
        expect_text = doc.get("expect", "9000")
        if not isinstance(expect_text, str) or len(expect_text) != 4:
            raise fail(n, "expect", "must be a 4-hex-digit status word")
        expect = int.from_bytes(_hex(expect_text, lambda r: fail(n, "expect", r), 2), "big")
        note = doc.get("note", "")
        if not isinstance(note, str):
            raise fail(n, "note", "must be a string")
        challenge = doc.get("challenge", False)
        if not isinstance(challenge, bool):
            raise fail(n, "challenge", "must be true or false")
        mac = doc.get("mac")
        if mac is not None:
            if mac not in keys:
                raise fail(n, "mac", f"names no key of the header ({', '.join(keys)})")
            if not steps or not steps[-1].challenge:
                raise fail(n, "mac", "needs a challenge step right before it (a challenge is good for "
                                     "the next command only, D18)")
            if challenge:
                raise fail(n, "challenge", "a step is either a GET CHALLENGE or a MAC'd command")
            if len(apdu) < 5 or apdu[4] != len(apdu) - 5 + 4:
                raise fail(n, "apdu", "a MAC'd command is CLA INS P1 P2 Lc data with Lc counting the 4 "
                                      "MAC bytes the runner appends")
        else:
            try:
                cmd = CommandApdu.parse(apdu)
            except ApduError as exc:
                raise fail(n, "apdu", str(exc)) from None
            if challenge and ((cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data) != (0, 0x84, 0, 0, b"")
                              or cmd.le not in (4, 8)):
                raise fail(n, "apdu", "a challenge step is GET CHALLENGE 00 84 00 00 04 (or 08)")
        steps.append(Step(number, apdu, expect, note, challenge, mac))
    if not steps:
        raise ScriptError(f"{source}: no steps after the header")
    return Script(card_no, issuer_id, profile, keys, tuple(steps))


def _hex(value: object, fail, length: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise fail("must be a hex string")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise fail("not hexadecimal") from None
    if length is not None and len(data) != length:
        raise fail(f"must be {length} bytes, got {len(data)}")
    if not data:
        raise fail("empty")
    return data


def load_script(path: str | os.PathLike[str]) -> Script:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScriptError(f"{p}: no such script") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"{p}: cannot read script: {exc.__class__.__name__}") from None
    return parse_script(text, str(p))


def save_script(path: str | os.PathLike[str], script: Script) -> None:
    """Write the script atomically (temp file, fsync, rename): a half-written script never exists."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(script.dumps())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- running --------------------------------------------------------------------------------------

def script_keys(script: Script, keysets: Sequence[KeySet]) -> dict[str, SecretKey]:
    """The keys the script declares, found in `keysets`: each role as the key set holds it or as
    diversified for the script's card (D2), whichever has the declared KCV."""
    found: dict[str, SecretKey] = {}
    for name, want in script.keys.items():
        for ks in keysets:
            if ks.algorithm is not want.algorithm or not ks.has(want.role):
                continue
            try:
                candidates = [ks.entry(want.role).key,
                              ks.card_keys(script.issuer_id, script.serial8).entry(want.role).key]
            except KeySetError as exc:
                raise ScriptError(str(exc)) from None
            match = next((k for k in candidates if k.kcv == want.kcv), None)
            if match is not None:
                found[name] = match
                break
        else:
            raise ScriptError(f"script key {name!r} ({want.algorithm.value} {want.role}, KCV {want.kcv}): none of "
                              f"the key sets given holds it or derives it for card {script.card_no}")
    return found


def run_script(script: Script, reader: Reader, keys: Mapping[str, SecretKey]) -> int:
    """Send every step through `reader` (connected by the caller); returns the number of steps run.

    The keys are checked against the header before anything is sent. A step answered with another
    status word than expected raises `ScriptRefused` and nothing after it is sent.
    """
    for name, want in script.keys.items():
        key = keys.get(name)
        if not isinstance(key, SecretKey):
            raise ScriptError(f"script key {name!r}: not given to the runner")
        if key.algorithm is not want.algorithm or key.kcv != want.kcv:
            raise ScriptError(f"script key {name!r}: the script wants {want.algorithm.value} KCV {want.kcv}, "
                              f"the runner holds {key.algorithm.value} KCV {key.kcv}")
    challenge: bytes | None = None
    for step in script.steps:
        capdu = step.apdu
        if step.mac is not None:
            if challenge is None:
                raise ScriptError(f"step {step.number}: no challenge to compute the MAC with")
            capdu = capdu + sm_mac(keys[step.mac], challenge, capdu[0], capdu[1], capdu[2], capdu[3], capdu[5:])
        challenge = None
        resp = transceive(reader, capdu)
        if resp.sw != step.expect:
            raise ScriptRefused(step, resp.sw)
        if step.challenge:
            if len(resp.data) not in (4, 8):
                raise ScriptError(f"step {step.number}: GET CHALLENGE answered {len(resp.data)} bytes, "
                                  "expected 4 or 8")
            challenge = resp.data
    return len(script.steps)

"""`ykt trace show|export|timing`: read a JSON Lines trace, annotate its APDUs, export pcapng for Wireshark, model
where a tap's milliseconds go."""
from __future__ import annotations

from pathlib import Path

import click

from apdu.airtime import BIT_RATES
from apdu.iso14443 import Ats
from apdu.trace import TSHARK_DECODE_AS, Exchange, export_pcapng, read_jsonl
from specs.catalog import find
from terminal_sim.budget import BUDGET_MS, BUDGET_SOURCE, budget_ms
from terminal_sim.profile import load_terminal_profile
from ykt_card.host.annotate import describe_command, describe_response
from ykt_card.timing.profile import MEASURED, load_card_timing, load_psam_timing
from ykt_card.timing.tap import REFERENCE_ATS, TapSettings, TapTiming, WhatIf, model_tap, what_if
from ykt_files.atomic import write_text_atomic as atomic_write_text
from ykt_files.schema import DocumentError

from .common import writable_folder, write_failure
from .output import emit_json
from .timing_svg import tap_svg

#: How our captures name their writer (pcapng shb_userappl); kept so exports stay byte for byte the same.
PCAPNG_APPLICATION = "ykt apdu.trace"


@click.group("trace")
def trace() -> None:
    """APDU traces recorded with --trace."""


def _read(file: Path) -> list[Exchange]:
    """The exchanges of a JSON Lines trace; a file that is not one is refused in one line naming it."""
    if file.is_dir():
        raise click.BadParameter(f"{file} is a directory, not a trace", param_hint="FILE")
    try:
        return read_jsonl(file)
    except UnicodeDecodeError:
        raise click.BadParameter(f"{file}: not a JSON Lines trace (binary data, not UTF-8 text)",
                                 param_hint="FILE") from None


@trace.command("show")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per exchange, with its annotation.")
def show(file: Path, as_json: bool) -> None:
    """List every exchange of FILE with the T-Union command names and status words."""
    exchanges = _read(file)
    t0 = exchanges[0].t if exchanges else 0.0
    for x in exchanges:
        note = describe_command(x.data) if x.direction == "C" else describe_response(x.data)
        if as_json:
            emit_json({"t": x.t, "reader": x.reader, "dir": "C>" if x.direction == "C" else "R<",
                       "hex": x.data.hex().upper(), "note": note})
        else:
            arrow = "->" if x.direction == "C" else "<-"
            click.echo(f"{x.t - t0:9.3f} {x.reader:<18.18} {arrow} {x.data.hex().upper():<40} {note}")


@trace.command("export")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--pcapng", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="pcapng file to write (LINKTYPE_ISO_14443).")
def export(file: Path, out: Path) -> None:
    """Write FILE as pcapng with ISO 14443-4 I-blocks, for Wireshark and tshark."""
    count = export_pcapng(_read(file), out, application=PCAPNG_APPLICATION)
    click.echo(f"wrote {count} packets to {out}; decode the APDUs with: "
               f"tshark -r {out} -V {' '.join(TSHARK_DECODE_AS)}")


# --- ykt trace timing ---------------------------------------------------------------------------------

_RATES = [str(k) for k in BIT_RATES]


def _timing(kind: str, option: str, value: str):
    """A timing profile by shipped name or path, or `measured`; a bad one is refused naming the option."""
    if value == MEASURED:
        return MEASURED
    try:
        path = find(kind, value)
        return load_card_timing(path) if kind == "card-timing" else load_psam_timing(path)
    except (LookupError, DocumentError) as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _budget(budget: float | None, profile: str | None) -> tuple[float, str]:
    """The budget in ms and where it comes from: --budget, the --profile's mode, or the bus default."""
    if budget is not None:
        return budget, "--budget"
    if profile is not None:
        try:
            prof = load_terminal_profile(find("terminal-profile", profile))
        except (LookupError, DocumentError) as exc:
            raise click.BadParameter(str(exc), param_hint="--profile") from None
        return float(budget_ms(prof.mode)), f"--profile {prof.name}: {BUDGET_SOURCE[prof.mode]}"
    return float(BUDGET_MS["bus"]), ("a trace names no terminal profile and neither --profile nor --budget was "
                                     f"given: assumed {BUDGET_SOURCE['bus']}")


def _ms(us: float) -> float:
    return round(us / 1000, 3)


def _report_json(file: Path, report: TapTiming, settings: TapSettings, budget: float, source: str,
                 options: list[WhatIf]) -> dict:
    return {
        "file": str(file), "bitrate_kbps": report.kbps, "card_timing": report.card_timing,
        "psam_timing": report.psam_timing, "algorithm": report.algorithm, "algorithm_source": report.algorithm_source,
        "ats": settings.ats.to_bytes().hex().upper(), "uid_length": settings.uid_length, "fwt_ms": _ms(report.fwt_us),
        "budget_ms": budget, "budget_source": source, "total_ms": _ms(report.total_us),
        "within_budget": report.total_us <= budget * 1000,
        "lanes_ms": {k: _ms(v) for k, v in report.lanes.items()},
        "phases_ms": {k: _ms(v) for k, v in report.phases.items()},
        "apdus": [{"index": a.index, "lane": a.lane, "name": a.name, "phase": a.phase, "counted": a.counted,
                   "start_ms": _ms(a.start_us), "duration_ms": _ms(a.duration_us), "link_ms": _ms(a.link_us),
                   "process_ms": _ms(a.process_us), "host_before_ms": _ms(a.host_us), "wtx": a.wtx,
                   "frames": a.frames} for a in report.apdus],
        "what_if": [{"change": w.change, "total_ms": _ms(w.total_us), "fits": w.fits, "note": w.note}
                    for w in options],
    }


def _print_report(file: Path, report: TapTiming, settings: TapSettings, budget: float, source: str,
                  options: list[WhatIf]) -> None:
    echo = click.echo
    echo(f"{file}: {report.kbps} kbit/s, card timing {report.card_timing}, PSAM timing {report.psam_timing}, "
         f"{report.algorithm} ({report.algorithm_source}), FWT {report.fwt_us / 1000:.1f} ms")
    echo(f"{'#':>3} {'lane':4} {'phase':10} {'start':>8} {'ms':>7} {'link':>7} {'process':>7} {'host':>6} "
         f"{'WTX':>3}  command")
    for a in report.apdus:
        if a.counted:
            echo(f"{a.index:>3} {a.lane:4} {a.phase:10} {a.start_us / 1000:8.2f} {a.duration_us / 1000:7.2f} "
                 f"{a.link_us / 1000:7.2f} {a.process_us / 1000:7.2f} {a.host_us / 1000:6.2f} {a.wtx or '':>3}  "
                 f"{a.name}")
    skipped = [a for a in report.apdus if not a.counted]
    if skipped:
        echo(f"not counted: {len(skipped)} PSAM command(s) before the first card command (start-up)")
    echo("phases (ms): " + ", ".join(f"{k} {v / 1000:.2f}" for k, v in report.phases.items() if v))
    echo("lanes (ms): " + ", ".join(f"{k} {v / 1000:.2f}" for k, v in report.lanes.items()))
    total = report.total_us / 1000
    verdict = "within" if total <= budget else "OVER"
    echo(f"total {total:.2f} ms: {verdict} the budget of {budget:g} ms ({source})")
    if total > budget:
        echo(f"over by {total - budget:.2f} ms; what would bring it back in:")
        for w in options:
            note = f" ({w.note})" if w.note else ""
            echo(f"  {w.change}: {w.total_us / 1000:.2f} ms, {'fits' if w.fits else 'still over'}{note}")


@trace.command("timing")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--bitrate", type=click.Choice(_RATES), default="106", show_default=True, metavar="K",
              help="Bit rate after activation, kbit/s: 106, 212, 424 or 848.")
@click.option("--card-timing", default="typical", show_default=True, metavar="P",
              help="Card timing profile: fast, typical, a YAML path, or 'measured' (times from the trace).")
@click.option("--psam-timing", default="typical", show_default=True, metavar="P",
              help="PSAM timing profile: fast, typical, a YAML path, or 'measured'.")
@click.option("--budget", type=click.FloatRange(0, None, min_open=True), default=None, metavar="MS",
              help="Budget in ms (default: from --profile's mode; without either, the bus budget).")
@click.option("--profile", default=None, metavar="NAME",
              help="Terminal profile whose mode sets the budget (metro 300 ms, bus/ferry/taxi 400, load 1000).")
@click.option("--ats", default=None, metavar="HEX", help="The card's ATS (default: the reference card's).")
@click.option("--uid-length", type=click.Choice(["4", "7", "10"]), default="4", show_default=True,
              help="UID length in bytes (4, 7, 10: one, two or three anticollision cascade levels).")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object (deterministic).")
@click.option("--svg", "svg_out", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="OUT",
              help="Draw the tap on a time axis (reader, card, PSAM lanes, budget line) into OUT.")
def timing(file: Path, bitrate: str, card_timing: str, psam_timing: str, budget: float | None,
           profile: str | None, ats: str | None, uid_length: str, as_json: bool, svg_out: Path | None) -> None:
    """Model where FILE's tap spends its time: air, card, PSAM and host, per APDU and phase, against the budget."""
    card = _timing("card-timing", "--card-timing", card_timing)
    psam = _timing("psam-timing", "--psam-timing", psam_timing)
    limit, source = _budget(budget, profile)
    try:
        parsed_ats = Ats.parse(bytes.fromhex(ats)) if ats is not None else Ats.parse(REFERENCE_ATS)
    except ValueError as exc:
        raise click.BadParameter(f"{ats!r}: {exc}", param_hint="--ats") from None
    if svg_out is not None:
        writable_folder(svg_out, "--svg")
    exchanges = _read_trace(file)
    settings = TapSettings(card, psam, int(bitrate), parsed_ats, int(uid_length))
    try:
        report = model_tap(exchanges, settings)
        options = what_if(exchanges, settings, limit * 1000)
    except ValueError as exc:
        raise click.BadParameter(f"{file}: {exc}", param_hint="FILE") from None
    if not any(a.counted for a in report.apdus):
        raise click.BadParameter(f"{file}: no card command in the trace, nothing to time", param_hint="FILE")
    if svg_out is not None:
        svg = tap_svg(report, limit, f"{file.name}: {report.kbps} kbit/s, card {report.card_timing}, "
                                     f"PSAM {report.psam_timing}, {report.algorithm}")
        try:
            atomic_write_text(svg_out, svg)
        except OSError as exc:
            raise write_failure("--svg", svg_out, exc) from None
    if as_json:
        emit_json(_report_json(file, report, settings, limit, source, options))
    else:
        _print_report(file, report, settings, limit, source, options)


def _read_trace(file: Path) -> list[Exchange]:
    try:
        return _read(file)
    except FileNotFoundError:
        raise click.BadParameter(f"{file}: no such trace file", param_hint="FILE") from None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="FILE") from None

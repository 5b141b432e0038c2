"""`ykt clearing verify | settle`: the clearing platform's back office on uploaded clearing files."""
from __future__ import annotations

import datetime as _dt
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from clearing.judge import REASONS
from clearing.settle import FeeSchedule, MoneyRecord, settle as settle_day
from clearing.store import Store
from clearing.verify import verify as verify_files

from .common import KEYSET, Shipped
from .output import emit_json, table

SHOWN_REJECTIONS = 20
QR_ROOTS = Shipped("qr-roots")


@click.group("clearing")
def clearing() -> None:
    """The provincial clearing platform's end: verify uploaded clearing files, settle a day."""


@clearing.command("verify")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--keyset", "keysets", multiple=True, required=True, type=KEYSET, metavar="K",
              help="TAC master key set (name or file); give one per algorithm (3DES, SM4).")
@click.option("--terminals", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Terminal registry (CSV): records from terminals not in it are rejected.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="The clearing store (created if new); without it, a temporary store for this run only.")
@click.option("--workers", type=click.IntRange(1, 64), default=None, metavar="N",
              help="Worker processes, partitioned by card (default: every core for large inputs).")
@click.option("--qr-roots", "qr_roots", type=QR_ROOTS, default=None, metavar="FILE",
              help="QR root store (name or JSON file) that QR rides' certificates are checked against.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record, then a summary object.")
def verify(files: tuple[Path, ...], keysets: tuple[Path, ...], terminals: Path | None, out: Path | None,
           workers: int | None, qr_roots: Path | None, as_json: bool) -> None:
    """Verify clearing files (JSON Lines or CSV, any number, any order): every record accepted or rejected.

    Reasons: tac, duplicate, counter-gap, balance-chain, grey-open, unknown-terminal, malformed. A QR ride
    (medium qr) has its code re-verified at the ride's time against --qr-roots (checks 1-10 of mobile.md
    §1.5; rejected with the failing check's token, e.g. cert_sig, user_sig, root_unknown), is rejected
    qr-fields when its accounts, issuer, platform or generation time are not its code's, and qr-replay
    when its code already rode at any terminal. Exit status 0 when no record is rejected,
    1 when any is rejected, 2 on bad input.
    """
    err = Console(stderr=True, highlight=False)
    if err.is_terminal:
        # Redrawn from the progress callback, not by rich's refresh thread: with no other thread running,
        # the verifier can fork its workers (clearing.verify._run).
        with Progress(TextColumn("verifying"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                      console=err, transient=True, auto_refresh=False) as bar:
            task = bar.add_task("verify", total=None)
            run = verify_files(list(files), list(keysets), out=out, terminals=terminals, workers=workers,
                               qr_roots=qr_roots,
                               progress=lambda done, total: bar.update(task, completed=done, total=total,
                                                                       refresh=True))
    else:
        run = verify_files(list(files), list(keysets), out=out, terminals=terminals, workers=workers,
                           qr_roots=qr_roots)
    summary = run.summary()
    if as_json:
        write = sys.stdout.write
        import json

        dumps = json.dumps
        for v in run.verdicts():
            write(dumps(v.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n")
        emit_json({"summary": summary})
    else:
        _show(run, summary)
    rejected = summary["verdicts"]["rejected"]  # type: ignore[index]
    sys.exit(1 if rejected else 0)


def _show(run, summary: dict) -> None:
    c = Console(highlight=False)
    verdicts, reasons = summary["verdicts"], summary["reasons"]
    c.print(f"{summary['records']} records in {summary['files']} file(s) ({summary['new_files']} new): "
            f"{verdicts['accepted']} accepted, {verdicts['rejected']} rejected"
            + (f" ({summary['qr_rides']} QR rides)" if summary["qr_rides"] else ""))
    rows = [[name, reasons[name]] for name in REASONS if reasons[name]]
    rows += [[f"QR {name}", count] for name, count in summary["qr_reasons"].items()]
    if rows:
        c.print(table("rejections by reason (a record may have several)", ["reason", "records"], rows))
        shown = 0
        for v in run.verdicts():
            if v.reasons and shown < SHOWN_REJECTIONS:
                c.print(f"  {v.file}:{v.line}: {', '.join(v.reasons)}" + (f" ({v.detail})" if v.detail else ""))
                shown += 1
        if verdicts["rejected"] > shown:
            c.print(f"  … {verdicts['rejected'] - shown} more (--json lists every record)")
    for label, count in sorted(run.no_keyset.items()):
        c.print(f"[yellow]no key set for {label}: {count} record(s) could not be checked (rejected: tac)[/]")
    if summary["store"]:
        c.print(f"store: {summary['store']}")


def _day(text: str) -> str:
    try:
        return _dt.date.fromisoformat(text).strftime("%Y%m%d")
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date YYYY-MM-DD", param_hint="--day") from None


@clearing.command("settle")
@click.option("--day", required=True, metavar="YYYY-MM-DD", help="The transaction day to settle (China time).")
@click.option("--fees", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Fee schedule (YAML): rate per acquirer and mode, rounding rule. Default: no fees.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="The clearing store (from `verify --out`); the settlement files are written there.")
@click.option("--json", "as_json", is_flag=True, help="Print the settlement as JSON.")
def settle(day: str, fees: Path | None, out: Path, as_json: bool) -> None:
    """What each issuer owes each acquirer (and back for loads), with fees, netted into one payment per pair."""
    ymd = _day(day)
    schedule = FeeSchedule.load(fees) if fees is not None else FeeSchedule()
    with Store(out, create=False) as store:
        records = [MoneyRecord(*r[:6]) for r in store.money_records(ymd)]
    result = settle_day(ymd, records, schedule)
    paths = result.write(out)
    check = result.reconcile()
    if as_json:
        emit_json(result.to_dict())
    else:
        c = Console(highlight=False)
        c.print(f"settlement of {day}: {check['records']} accepted records, {_yuan(check['amount'])} yuan; "
                f"fees {_yuan(check['fee'])}, net {_yuan(check['net'])}")
        c.print(table("transfers (one per direction)", ["payer", "payee", "gross", "fee", "net"],
                      [[a, b, _yuan(g), _yuan(f), _yuan(n)] for a, b, g, f, n in result.transfers()]))
        c.print(table("payments (netted per pair)", ["from", "to", "amount"],
                      [[a, b, _yuan(n)] for a, b, n in result.payments()]))
        c.print(f"reconciled to the fen: {'yes' if check['ok'] else 'NO'}; files: "
                + ", ".join(p.name for p in paths))
    if not check["ok"]:
        raise click.ClickException(f"settlement of {day} does not reconcile: {check['checks']}")


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"

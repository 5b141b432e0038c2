"""`ykt conformance …`: list the cases, run a suite against a DUT and write the reports, rerun failures."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from specs.conformance import SelectionError, suite_by_name
from specs.conformance.options import RunOptions, run_suite
from specs.conformance.report import read_report, write_reports
from specs.conformance.results import RunResult

from .errors import EXIT_FAILED
from .output import console, table

SUITES = click.Choice(["card", "terminal"])


@click.group("conformance")
def conformance() -> None:
    """Conformance suites: card and terminal test plans, runs, and the reports a lab files."""


def _suite(name: str):
    try:
        return suite_by_name(name)
    except SelectionError as exc:
        raise click.BadParameter(str(exc).removeprefix(f"--suite {name!r}: "), param_hint="--suite") from None


@conformance.command("list")
@click.option("--suite", "suite_name", type=SUITES, default=None, help="card or terminal (default: both).")
@click.option("--tag", "tags", multiple=True, metavar="T", help="Only cases with this tag (repeatable: any of them).")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of {id, title, suite, tags, reference, …}.")
def list_cases(suite_name: str | None, tags: tuple[str, ...], as_json: bool) -> None:
    """The cases of a suite (or of both), with their tags and reference sections."""
    names = [suite_name] if suite_name else ["card", "terminal"]
    cases = [lc.case for name in names for lc in _suite(name).load()]
    if tags:
        cases = [c for c in cases if set(tags) & set(c.tags)]
    if as_json:
        click.echo(json.dumps([c.summary() for c in cases], ensure_ascii=False, indent=1))
        return
    rows = [[c.id, c.title, ", ".join(c.tags), ", ".join(c.reference)] for c in cases]
    title = f"{suite_name} suite" if suite_name else "card and terminal suites"
    console().print(table(f"{title}: {len(cases)} cases", ["id", "title", "tags", "reference"], rows))


def _run(options: RunOptions, report: Path) -> RunResult:
    err = Console(stderr=True)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err, transient=True, disable=not sys.stderr.isatty())
    with progress:
        task = progress.add_task(f"{options.suite} suite", total=None)

        def selected(n: int) -> None:
            progress.update(task, total=n)

        def advance(result) -> None:
            progress.update(task, advance=1, description=f"{options.suite} suite {result.case_id}")

        try:
            result = run_suite(options, advance, selected)
        except SelectionError as exc:
            raise click.UsageError(str(exc)) from None
    paths = write_reports(result, report)
    counts = result.counts()
    for r in result.results:
        if r.verdict in ("fail", "inconclusive"):
            click.echo(f"{r.case_id} {r.verdict}: {r.reasons[0] if r.reasons else ''}")
    click.echo(f"{options.suite} suite: {counts['pass']} pass, {counts['fail']} fail, {counts['inconclusive']} "
               f"inconclusive, {counts['not applicable']} not applicable -> {paths['html']}")
    return result


@conformance.command("run")
@click.option("--suite", "suite_name", type=SUITES, required=True)
@click.option("--dut", required=True, metavar="DUT",
              help="Card suite: a reader (image:PATH, pcsc, pcsc:NAME, nfc:DEVICE). Terminal suite: ykt[:PROFILE], "
                   "python:MODULE:FACTORY or command:CMD ({reader} is replaced by the vpcd reader's name).")
@click.option("--keyset", "keysets", multiple=True, metavar="K",
              help="TEST key set, by name or path (repeatable: one per algorithm): the card's (card suite) or "
                   "the one the test cards are issued with (terminal suite).")
@click.option("--profile", default=None, metavar="P", help="Also check the personalisation against this card profile.")
@click.option("--ics", default=None, metavar="FILE", help="Implementation conformance statement (YAML).")
@click.option("--case", "cases", multiple=True, metavar="ID", help="Run only these cases (repeatable).")
@click.option("--tag", "tags", multiple=True, metavar="T", help="Run cases with any of these tags (repeatable).")
@click.option("--exclude-tag", "exclude_tags", multiple=True, metavar="T", help="Skip cases with this tag.")
@click.option("--report", "report", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for junit.xml, report.json and report.html.")
@click.option("--seed", type=int, default=None, metavar="N", help="Seed the randomness (image: DUTs).")
@click.option("--clock", default=None, metavar="YYYYMMDDhhmmss",
              help="Fixed start time; with --seed the reports repeat byte for byte.")
@click.option("--ef1e-layout", type=click.Choice(["A", "B"]), default="A", show_default=True,
              help="EF1E layout of the cards' city (D8).")
@click.option("--terminal-id", default="112233445566", show_default=True, metavar="HEX12",
              help="Terminal number of the suite's PSAM role (card suite) or of the PSAM it issues for an "
                   "in-process terminal (terminal suite).")
@click.option("--real-time", is_flag=True,
              help="Terminal suite: let real time pass for the recovery-window cases of a command DUT "
                   "whose ICS claims no clock option (minutes of waiting).")
def run(suite_name, dut, keysets, profile, ics, cases, tags, exclude_tags, report, seed, clock, ef1e_layout,
        terminal_id, real_time) -> None:
    """Run a suite; exit 0 only when no applicable case failed or was inconclusive."""
    _suite(suite_name)
    if not keysets:
        need = ("the card's key set (one per algorithm)" if suite_name == "card"
                else "the key sets its test cards are issued with (one per algorithm)")
        raise click.BadParameter(f"the {suite_name} suite needs {need}", param_hint="--keyset")
    if clock is not None:
        from ykt_card.clock import parse_datetime14
        try:
            parse_datetime14(clock)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--clock") from None
    options = RunOptions(suite_name, dut, list(keysets), profile, ics, list(cases), list(tags), list(exclude_tags),
                         seed, clock, ef1e_layout, terminal_id, real_time)
    result = _run(options, report)
    sys.exit(0 if result.passed else EXIT_FAILED)


@conformance.command("rerun")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--report", "report", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the new reports go (default: FOLDER/rerun).")
def rerun(folder: Path, report: Path | None) -> None:
    """Run again the cases of a report that failed or were inconclusive, with the same options."""
    doc = read_report(folder)
    again = [c["id"] for c in doc["cases"] if c["verdict"] in ("fail", "inconclusive")]
    if not again:
        click.echo(f"{folder}: no case failed or was inconclusive; nothing to rerun")
        return
    options = RunOptions.from_json(doc["run"])
    options.cases, options.tags, options.exclude_tags = again, [], []
    result = _run(options, report or folder / "rerun")
    sys.exit(0 if result.passed else EXIT_FAILED)


"""`ykt doctor`: what this machine has for PC/SC, vpcd, NFC and traces, and how to fix what is missing."""
from __future__ import annotations

import click

from apdu.transport.pcscd import doctor as run_checks

from .output import emit_json


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(as_json: bool) -> None:
    """Check pcscd, the vpcd driver, readers, pyscard, nfcpy and tshark; say how to fix each problem."""
    checks = run_checks()
    if as_json:
        emit_json([{"check": c.check, "ok": c.ok, "detail" if c.ok else "fix": c.fix} for c in checks])
    else:
        for c in checks:
            click.echo(f"{'ok ' if c.ok else 'NO '} {c.check}: {c.fix}")
    if not all(c.ok for c in checks):
        raise SystemExit(1)

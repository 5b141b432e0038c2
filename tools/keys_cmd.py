"""`ykt keys …`: inspect key sets, check a personalisation's diversified keys, compose ceremony components."""
from __future__ import annotations

from pathlib import Path

import click

from keysets import Algorithm, KeyEntry, KeySet, compose
from keysets.keyset import ALL_ROLES, entry_toml

from .common import KEYSET, hex_bytes
from .output import console, emit_json, table


@click.group("keys")
def keys() -> None:
    """Key sets: roles, indexes, versions and KCVs (never key values)."""


@keys.command("show")
@click.argument("keyset", type=KEYSET)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(keyset: Path, as_json: bool) -> None:
    """List the roles of KEYSET with index, version, algorithm and KCV."""
    ks = KeySet.load(keyset)
    summary = ks.summary()
    if as_json:
        emit_json(summary)
        return
    c = console()
    c.print(f"{ks.name}  ({ks.algorithm.value}, diversification: {', '.join(ks.diversification) or 'none: card keys'})"
            + ("  [TEST ONLY]" if ks.test_only else ""))
    rows = [[role, f"{e['index']:02X}", f"{e['version']:02X}", e["kcv"]] for role, e in summary["keys"].items()]
    c.print(table(None, ["role", "index", "version", "KCV"], rows))


@keys.command("derive")
@click.argument("keyset", type=KEYSET)
@click.option("--issuer", required=True, metavar="HEX16", help="Issuer ID, EF15 bytes 0..7.")
@click.option("--serial", required=True, metavar="HEX16", help="Card serial, EF15 bytes 12..19.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def derive(keyset: Path, issuer: str, serial: str, as_json: bool) -> None:
    """Print the KCVs of the card keys diversified from KEYSET (to check a personalisation)."""
    ks = KeySet.load(keyset)
    issuer_id = hex_bytes("--issuer", issuer, 8)
    serial8 = hex_bytes("--serial", serial, 8)
    card = ks.card_keys(issuer_id, serial8)
    result = {
        "keyset": ks.name,
        "algorithm": ks.algorithm.value,
        "diversification": list(ks.diversification),
        "issuer_id": issuer_id.hex().upper(),
        "serial": serial8.hex().upper(),
        "card_keys": {r: {"index": e.index, "version": e.version, "kcv": e.kcv} for r, e in _ordered(card.keys)},
    }
    if as_json:
        emit_json(result)
        return
    c = console()
    c.print(f"card keys of {issuer_id.hex().upper()} / {serial8.hex().upper()} from {ks.name} ({ks.algorithm.value})")
    c.print(table(None, ["role", "index", "version", "KCV"],
                  [[r, f"{e.index:02X}", f"{e.version:02X}", e.kcv] for r, e in _ordered(card.keys)]))


@keys.command("compose")
@click.option("--role", required=True, type=click.Choice(ALL_ROLES), help="Key role of the result.")
@click.option("--component", "components", multiple=True, required=True, metavar="HEX:KCV",
              help="A key component and its KCV; give two or three.")
@click.option("--algorithm", type=click.Choice(["3des", "sm4"]), default="3des", show_default=True)
@click.option("--index", type=click.IntRange(0, 255), default=1, show_default=True, help="Key index of the entry.")
@click.option("--version", "version", type=click.IntRange(0, 255), default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print role, index, version and KCV as JSON (no key value).")
def compose_cmd(role: str, components: tuple[str, ...], algorithm: str, index: int, version: int, as_json: bool) -> None:
    """Rebuild a key from 2 or 3 ceremony components (XOR), checking each component's KCV.

    Prints the `[keys]` entry for a key set file, with the result's KCV. With --json only the KCV is
    shown: the key value never goes into machine-readable output.
    """
    alg = Algorithm.parse(algorithm)
    key = compose(alg, list(components))
    entry = KeyEntry(role, index, version, key)
    if as_json:
        emit_json({"role": role, "algorithm": alg.value, "index": index, "version": version, "kcv": key.kcv})
        return
    click.echo(entry_toml(role, entry))
    click.echo(f"# {role}: KCV {key.kcv}", err=True)


def _ordered(keys_map):
    return sorted(keys_map.items(), key=lambda kv: ALL_ROLES.index(kv[0]))

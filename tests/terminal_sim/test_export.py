"""Clearing export: which records go in, the JSON Lines and CSV forms, determinism, atomic writes."""
from __future__ import annotations

import csv
import json

import pytest

from terminal_sim.export import clearing_entries, export, render
from terminal_sim.journal import Journal
from terminal_sim.outcome import FIELDS, Outcome
from tests.terminal_sim.test_outcome import make, torn

CONTEXT = {"counter": 7, "amount": 200, "psam_seq": 0x110}


def fill(journal: Journal) -> dict[str, int]:
    """One record of every kind, in a fixed order; returns their ids by name."""
    ids = {}
    ids["approved"] = journal.append(make(terminal_seq=0x101))
    ids["declined"] = journal.append(make(status="declined", reason="card on the black list", tac=None,
                                          mac2_verified=None, terminal_seq=None, balance_after=None))
    ids["torn_settled"] = journal.append(torn(seq=0x102), CONTEXT)
    ids["recovered"] = journal.resolve(ids["torn_settled"], make(status="recovered", terminal_seq=0x102,
                                                                mac2_verified=False))
    ids["failed_tac"] = journal.append(make(status="failed", reason="PSAM refused MAC2", terminal_seq=0x103,
                                            mac2_verified=False))
    ids["failed_no_tac"] = journal.append(make(status="failed", reason="PSAM error 6581", terminal_seq=0x104,
                                               tac=None, mac2_verified=None, balance_after=None))
    ids["torn_pending"] = journal.append(torn(seq=0x105, card_no="03105810000000005678"), CONTEXT)
    ids["load"] = journal.append(make(type="02", mode="load", amount=5000, balance_before=800,
                                      balance_after=5800, terminal_seq=None, line=None, card_counter=3))
    return ids


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "journal.db") as j:
        fill(j)
        yield j


IN_CLEARING = ["approved", "recovered", "failed_tac", "torn_pending", "load"]


def test_clearing_holds_money_movements_and_open_grey_records(journal):
    ids = {e.id: e for e in journal.all()}
    chosen = clearing_entries(journal)
    assert [e.id for e in chosen] == sorted(e.id for e in chosen)        # journal order
    kinds = [(e.outcome.status, e.outcome.tac is not None) for e in chosen]
    assert kinds == [("approved", True), ("recovered", True), ("failed", True), ("torn", False),
                     ("approved", True)]
    left_out = [ids[i].outcome.status for i in ids if i not in {e.id for e in chosen}]
    assert sorted(left_out) == ["declined", "failed", "torn"]            # no money, or settled


def test_jsonl_is_one_outcome_json_per_line(journal, tmp_path):
    out = tmp_path / "clearing.jsonl"
    assert export(journal, "jsonl", out) == len(IN_CLEARING)
    lines = out.read_text(encoding="utf-8").splitlines()
    expected = [e.outcome for e in clearing_entries(journal)]
    assert lines == [o.to_json() for o in expected]
    assert [Outcome.from_json(line) for line in lines] == expected
    assert out.read_bytes().endswith(b"\n")


def test_csv_columns_are_the_contract_fields_in_order(journal, tmp_path):
    out = tmp_path / "clearing.csv"
    export(journal, "csv", out)
    text = out.read_text(encoding="utf-8")
    assert "\r" not in text
    rows = list(csv.reader(text.splitlines()))
    assert tuple(rows[0]) == FIELDS
    assert len(rows) == 1 + len(IN_CLEARING)
    records = [dict(zip(FIELDS, row)) for row in rows[1:]]
    for record, outcome in zip(records, (e.outcome for e in clearing_entries(journal))):
        for name in FIELDS:
            value = getattr(outcome, name)
            if value is None:
                assert record[name] == "", name
            elif isinstance(value, bool):
                assert record[name] == ("true" if value else "false")
            else:
                assert record[name] == str(value)
    assert records[3]["status"] == "torn" and records[3]["tac"] == ""


def test_export_is_deterministic(tmp_path):
    outputs = []
    for name in ("a", "b"):
        with Journal(tmp_path / f"{name}.db") as j:
            fill(j)
        for fmt in ("jsonl", "csv"):
            out = tmp_path / f"{name}.{fmt}"
            export(tmp_path / f"{name}.db", fmt, out)           # by path this time
            outputs.append(out.read_bytes())
    assert outputs[0] == outputs[2] and outputs[1] == outputs[3]
    export(tmp_path / "a.db", "jsonl", tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_bytes() == outputs[0]


def test_export_replaces_the_file_atomically_and_leaves_no_temporaries(journal, tmp_path, monkeypatch):
    out = tmp_path / "clearing.jsonl"
    out.write_text("previous upload\n")
    export(journal, "jsonl", out)
    assert out.read_text().startswith("{")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    out.write_text("previous upload\n")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    import ykt_card.card.image as image_module  # the one atomic writer behind images and clearing files
    monkeypatch.setattr(image_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        export(journal, "jsonl", out)
    assert out.read_text() == "previous upload\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_an_empty_journal_exports_an_empty_file(tmp_path):
    with Journal(tmp_path / "empty.db") as j:
        assert export(j, "jsonl", tmp_path / "e.jsonl") == 0
        export(j, "csv", tmp_path / "e.csv")
    assert (tmp_path / "e.jsonl").read_bytes() == b""
    assert (tmp_path / "e.csv").read_text() == ",".join(FIELDS) + "\n"


def test_bad_arguments(journal, tmp_path):
    with pytest.raises(ValueError, match=r"^fmt: expected one of jsonl, csv, got 'xml'"):
        export(journal, "xml", tmp_path / "x")
    with pytest.raises(ValueError, match=r"^fmt: "):
        render([], "xml")
    with pytest.raises(ValueError, match=r"^db: no such journal"):
        export(tmp_path / "missing.db", "jsonl", tmp_path / "x")
    with pytest.raises(ValueError, match=r"^out: directory .* does not exist"):
        export(journal, "jsonl", tmp_path / "no" / "x")
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "x").exists()


def test_unicode_reasons_survive_both_formats(tmp_path):
    with Journal(tmp_path / "u.db") as j:
        j.append(make(status="failed", reason="卡片离开 (card left), \"quoted\"", terminal_seq=1))
        export(j, "csv", tmp_path / "u.csv")
        export(j, "jsonl", tmp_path / "u.jsonl")
    row = list(csv.DictReader((tmp_path / "u.csv").read_text(encoding="utf-8").splitlines()))[0]
    assert row["reason"] == "卡片离开 (card left), \"quoted\""
    assert json.loads((tmp_path / "u.jsonl").read_text(encoding="utf-8"))["reason"] == row["reason"]


def test_qr_rides_go_to_clearing_with_the_q12_columns_at_the_end(tmp_path):
    from tests.terminal_sim.test_outcome import ride

    with Journal(tmp_path / "j.db") as journal:
        fill(journal)
        journal.append(ride(status="declined", reason="replay"))
        journal.append(ride())
        chosen = clearing_entries(journal)
        assert [e.outcome.medium for e in chosen] == [None] * len(IN_CLEARING) + ["qr"]
        export(journal, "csv", tmp_path / "c.csv")
    rows = list(csv.reader((tmp_path / "c.csv").read_text(encoding="utf-8").splitlines()))
    q12 = ["medium", "qr_code", "account_no", "pay_account", "qr_issuer", "qr_platform", "qr_gen_time", "ticket_type"]
    assert rows[0][-8:] == q12 and rows[0][:-8] == list(FIELDS[:-8])
    assert all(row[-8:] == [""] * 8 for row in rows[1:-1])                 # card rows: the new columns empty
    ride_row = dict(zip(rows[0], rows[-1]))
    assert [ride_row[k] for k in q12] == ["qr", "80" * 332, "9001000000000000001F", "TEST000000000001", "F0000001",
                                          "F0000002", "1795478400", "01"]
    assert ride_row["type"] == ride_row["card_no"] == ride_row["tac"] == ""

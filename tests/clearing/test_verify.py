"""`clearing.verify`: exactly the planted records rejected, for the planted reason; the store adds nothing twice.

Files come from two terminals the verifier knows nothing about: the independent generator of these tests
(`generator.py`, TACs from `keysets` directly) and ykt's own validator run in-process (`real_terminal.py`).
"""
from __future__ import annotations

import json
import random

import duckdb
import pytest

from clearing.qr import NO_ROOTS
from clearing.verify import verify
from specs.catalog import find
from keysets import Algorithm, purchase_tac

from .generator import Generator
from .real_terminal import real_day

FAULTS = {"tac": 3, "duplicate": 3, "counter-gap": 3, "balance-chain": 3, "grey-open": 2, "malformed": 2,
          "grey-closed": 3}


def check_exact(run, expected: dict) -> None:
    """Every record's reasons are exactly the planted ones (none for an unplanted record)."""
    wrong = [(v.file.rsplit("/", 1)[-1], v.line, v.reasons, sorted(expected.get((v.file, v.line), ())))
             for v in run.verdicts() if set(v.reasons) != expected.get((v.file, v.line), set())]
    assert not wrong, wrong


def planted_counts(run) -> dict[str, int]:
    return {k: v for k, v in run.summary()["reasons"].items() if v}


def stored_records(store) -> int:
    con = duckdb.connect(str(store / "clearing.duckdb"), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM records").fetchone()[0]
    finally:
        con.close()


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_exactly_the_planted_records_are_rejected(tmp_path, keysets, keyset_paths, fmt):
    day = Generator(keysets, seed=3, cards=40, rides=8, faults=dict(FAULTS, **{"unknown-terminal": 2}),
                    unknown_terminals=True).day_files()
    files = day.write(tmp_path, fmt)
    (tmp_path / "terminals.csv").write_text(day.registry_csv())
    run = verify(files, keyset_paths, out=tmp_path / "store", terminals=tmp_path / "terminals.csv")
    check_exact(run, day.expected)
    assert planted_counts(run) == day.planted
    summary = run.summary()
    assert summary["verdicts"]["rejected"] == len(day.expected)
    assert summary["records"] == sum(len(items) for items in day.files.values())


def test_without_a_registry_terminals_are_not_checked(tmp_path, keysets, keyset_paths):
    day = Generator(keysets, seed=4, cards=24, rides=6, faults={"tac": 2, "unknown-terminal": 2},
                    unknown_terminals=True).day_files()
    files = day.write(tmp_path)
    expected = {k: v - {"unknown-terminal"} for k, v in day.expected.items() if v - {"unknown-terminal"}}
    check_exact(verify(files, keyset_paths), expected)


def test_file_order_does_not_change_any_verdict(tmp_path, keysets, keyset_paths):
    day = Generator(keysets, seed=5, cards=30, rides=8, faults=FAULTS).day_files()
    files = day.write(tmp_path)
    for seed in (1, 2):
        shuffled = list(files)
        random.Random(seed).shuffle(shuffled)
        check_exact(verify(shuffled, keyset_paths), day.expected)


def test_a_rerun_adds_nothing_and_changes_no_verdict(tmp_path, keysets, keyset_paths):
    day = Generator(keysets, seed=6, cards=30, rides=8, faults=FAULTS).day_files()
    files = day.write(tmp_path)
    store = tmp_path / "store"
    first = verify(files, keyset_paths, out=store)
    count = stored_records(store)
    again = verify(list(reversed(files)) + files[:1], keyset_paths, out=store)
    assert again.summary()["new_files"] == 0 and again.summary()["new_records"] == 0
    assert stored_records(store) == count == first.summary()["records"] - first.summary()["reasons"]["malformed"]
    by_line = {(v.file, v.line): v.reasons for v in first.verdicts()}
    assert all(by_line[(v.file, v.line)] == v.reasons for v in again.verdicts())
    check_exact(again, {**day.expected})


@pytest.mark.parametrize("workers", [None, 2])
def test_files_over_several_runs_give_the_verdicts_of_one_run(tmp_path, keysets, keyset_paths, workers):
    """Later runs read their cards' earlier records: in this process, or (two workers) in every worker."""
    day = Generator(keysets, seed=7, cards=30, rides=8, faults=FAULTS).day_files()
    files = day.write(tmp_path)
    random.Random(3).shuffle(files)
    store = tmp_path / "store"
    third = len(files) // 3
    verify(files[:third], keyset_paths, out=store, workers=workers)
    verify(files[third:2 * third], keyset_paths, out=store, workers=workers)
    last = verify(files, keyset_paths, out=store, workers=workers)
    assert last.summary()["new_files"] == len(files) - 2 * third
    check_exact(last, day.expected)


def test_worker_processes_judge_like_one_process(tmp_path, keysets, keyset_paths):
    day = Generator(keysets, seed=8, cards=40, rides=8, faults=FAULTS).day_files()
    files = day.write(tmp_path)
    run = verify(files, keyset_paths, out=tmp_path / "store", workers=2)
    assert run.workers == 2
    check_exact(run, day.expected)


@pytest.mark.parametrize("workers", [1, 2])
def test_many_small_buckets_judge_like_one(tmp_path, keysets, keyset_paths, monkeypatch, workers):
    """Buckets spilled to disk and the one kept in memory give the same verdicts as a single bucket."""
    import clearing.verify

    monkeypatch.setattr(clearing.verify, "BUCKET_BYTES", 4096)
    day = Generator(keysets, seed=9, cards=40, rides=8, faults=FAULTS).day_files()
    files = day.write(tmp_path)
    run = verify(files, keyset_paths, out=tmp_path / "store", workers=workers)
    check_exact(run, day.expected)
    assert planted_counts(run) == day.planted


def test_a_grey_record_is_open_until_a_later_upload_completes_it(tmp_path, keysets, keyset_paths):
    g = Generator(keysets, seed=9, cards=3, rides=3)
    day = g.day_files()
    files = day.write(tmp_path)
    store = tmp_path / "store"
    assert all(not v.reasons for v in verify(files, keyset_paths, out=store).verdicts())
    # The next upload: a purchase torn during DEBIT; the card is back the day after and it is recovered.
    card = next(rec for items in day.files.values() for rec, _ in items if isinstance(rec, dict)
                and rec["type"] == "06" and rec["card_no"] == day.money[-1]["card_no"])
    last = max((r for r in day.money if r["card_no"] == card["card_no"] and r["type"] != "02"),
               key=lambda r: r["card_counter"])
    terminal = next(t for t in day.terminals if t.terminal_id == last["terminal_id"])
    cardstate = {"no": last["card_no"], "issuer": last["issuer_id"], "alg": last["algorithm"],
                 "balance": last["balance_after"], "offline": last["card_counter"] + 1, "online": 0}
    cardstate["dtk"] = g._tac_key(cardstate["alg"], cardstate["issuer"], cardstate["no"])
    full = g._purchase(cardstate, terminal, 200, "20261125080000")
    grey = {k: v for k, v in full.items() if k not in ("tac", "mac2_verified", "balance_after")}
    grey.update(status="torn", reason="card left during DEBIT")
    torn_file = tmp_path / "day2-torn.jsonl"
    torn_file.write_text(json.dumps(grey) + "\n")
    run = verify([torn_file], keyset_paths, out=store)
    assert [v.reasons for v in run.verdicts()] == [("grey-open",)]
    recovered = dict(full, status="recovered", reason="recovered with GET TRANSACTION PROVE", mac2_verified=False)
    done_file = tmp_path / "day3-recovered.jsonl"
    done_file.write_text(json.dumps(recovered) + "\n")
    run = verify([torn_file, done_file], keyset_paths, out=store)
    assert [v.reasons for v in run.verdicts()] == [(), ()]        # closed; and no duplicate of the grey record


def test_the_same_terminal_sequence_on_two_cards_is_a_duplicate(tmp_path, keysets, keyset_paths):
    """Two PSAMs configured with one terminal ID: both TACs verify, the later record is the duplicate."""
    dtk = {ks.algorithm.value: ks for ks in keysets}["3des"]
    lines = []
    for i, card_no in enumerate(("03104870300000000101", "03104870300000000102")):
        key = dtk.card_keys(bytes.fromhex("02205810FFFFFFFF"), bytes.fromhex(card_no[4:])).entry("tac").key.value
        when = f"2026112408{10 + i:02d}00"
        tac = purchase_tac(Algorithm.TDES, key, 200, 6, bytes.fromhex("440300000077"), 42, bytes.fromhex(when))
        lines.append(json.dumps({"status": "approved", "type": "06", "card_no": card_no,
                                 "issuer_id": "02205810FFFFFFFF", "amount": 200, "balance_before": 1000,
                                 "balance_after": 800, "card_counter": 5, "terminal_id": "440300000077",
                                 "terminal_seq": 42, "datetime": when, "key_version": 1, "algorithm": "3des",
                                 "tac": tac.hex().upper()}))
    path = tmp_path / "two-psams.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert [v.reasons for v in verify([path], keyset_paths).verdicts()] == [(), ("duplicate",)]


def test_records_of_an_algorithm_without_a_key_set_are_rejected_as_unverifiable(tmp_path, keysets, keyset_paths):
    day = Generator(keysets, seed=10, cards=8, rides=3).day_files()
    files = day.write(tmp_path)
    run = verify(files, [keyset_paths[0]])                      # 3DES only; every fourth card is SM4
    sm4 = {(str(p), n) for p in files for n, line in enumerate(p.read_text().splitlines(), 1)
           if json.loads(line)["algorithm"] == "sm4"}
    assert sm4
    assert {(v.file, v.line) for v in run.verdicts() if v.reasons} == sm4
    assert all(v.reasons == ("tac",) for v in run.verdicts() if v.reasons)
    assert run.no_keyset == {"sm4 key version 1": len(sm4)}


MALFORMED = [
    (b"\x00\xff\xfe binary", "not a JSON object"),
    (b'{"status":"approved","type":"06"', "not a JSON object"),
    (b"[1, 2, 3]", "record: expected object"),
    (b'{"status":"approved","type":"06","terminal_id":"440300000001","datetime":"20261124081602","amount":"200"}',
     "amount: expected int"),
    (b'{"status":"approved","type":"06","terminal_id":"440300000001","datetime":"20261124081602","colour":"red"}',
     "colour: unknown outcome field"),
    (b'{"status":"approved","type":"06","terminal_id":"4403000001","datetime":"20261124081602"}',
     "terminal_id: '4403000001' does not match"),
    (b'{"status":"approved","type":"06","terminal_id":"440300000001","datetime":"20261131081602"}',
     "datetime: 20261131081602 is not a date-time"),
    (b'{"status":"approved","type":"06","terminal_id":"440300000001","datetime":"20261124081602"}',
     "card_no: required for a approved outcome"),
    (b'{"status":"declined","reason":"black list","type":"06","terminal_id":"440300000001",'
     b'"datetime":"20261124081602"}', "status: a declined outcome moved no money"),
]


def test_malformed_lines_are_named_by_file_and_line_never_a_crash(tmp_path, keyset_paths):
    path = tmp_path / "broken.jsonl"
    path.write_bytes(b"\n".join(text for text, _ in MALFORMED) + b"\n\n   \n")
    run = verify([path], keyset_paths)
    verdicts = list(run.verdicts())
    assert [(v.line, v.reasons) for v in verdicts] == [(i, ("malformed",)) for i in range(1, len(MALFORMED) + 1)]
    for v, (_, reason) in zip(verdicts, MALFORMED):
        assert reason in v.detail, (v.line, v.detail)
    assert run.summary()["reasons"]["malformed"] == len(MALFORMED)


def test_a_csv_file_with_a_bad_header_has_every_row_malformed(tmp_path, keyset_paths):
    path = tmp_path / "bad.csv"
    path.write_text("status,colour\napproved,red\napproved,blue\n")
    verdicts = list(verify([path], keyset_paths).verdicts())
    assert [(v.line, v.reasons) for v in verdicts] == [(2, ("malformed",)), (3, ("malformed",))]
    assert "header: 'colour' is not an outcome field" in verdicts[0].detail


def test_an_empty_file_has_no_records(tmp_path, keyset_paths):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    run = verify([tmp_path / "empty.jsonl"], keyset_paths)
    assert list(run.verdicts()) == [] and run.summary()["records"] == 0


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_real_validator_uploads_clear_and_tampering_is_caught(tmp_path, keysets, keyset_paths, fmt):
    day = real_day(tmp_path, keysets, cards=3, fmt=fmt)
    run = verify(day.files, keyset_paths, out=tmp_path / "store")
    assert run.summary()["verdicts"] == {"accepted": 18, "rejected": 0}
    # A forged TAC in one file, and a record replayed in a file of its own.
    bus = next(p for p in day.files if "upload-bus-flat." in p.name)
    lines = bus.read_text().splitlines(keepends=True)
    header = 1 if fmt == "csv" else 0
    forged = lines[header + 1]
    tac = (json.loads(forged) if fmt == "jsonl" else dict(zip(lines[0].strip().split(","),
                                                             forged.strip().split(","))))["tac"]
    assert forged.count(tac) == 1
    lines[header + 1] = forged.replace(tac, f"{int(tac, 16) ^ 0xFF:08X}")
    tampered = tmp_path / f"tampered.{fmt}"
    tampered.write_text("".join(lines))
    replay = tmp_path / f"replay.{fmt}"
    replay.write_text("".join(lines[:header] + [lines[header + 2]]))
    files = [p for p in day.files if p != bus] + [tampered, replay]
    run = verify(files, keyset_paths)
    rejected = {(v.file.rsplit("/", 1)[-1], v.line): v.reasons for v in run.verdicts() if v.reasons}
    assert rejected == {(tampered.name, header + 2): ("tac",), (replay.name, header + 1): ("duplicate",)}


ROOTS = find("qr-roots", "roots-test")


def _by_line(run) -> dict:
    return {(v.file.rsplit("/", 1)[-1], v.line): (v.verdict, v.reasons) for v in run.verdicts()}


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_qr_rides_in_an_upload_verify_and_card_records_verify_as_before(tmp_path, keysets, keyset_paths, fmt):
    """The bus's validator also takes two QR codes (mobile.md): its upload gains two QR ride lines after the
    same card lines; their codes verify against the TEST root store, the card records are judged exactly as
    in the upload without them; without a root store the rides are root_unknown, naming the option."""
    (tmp_path / "plain").mkdir(), (tmp_path / "mixed").mkdir()
    plain = real_day(tmp_path / "plain", keysets, cards=3, fmt=fmt)
    mixed = real_day(tmp_path / "mixed", keysets, cards=3, fmt=fmt, qr_rides=2)
    bus = next(p for p in mixed.files if "upload-bus-flat." in p.name)
    for before, after in zip(plain.files, mixed.files):
        if after != bus:
            assert after.read_bytes() == before.read_bytes()
    cards, lines = (tmp_path / "plain" / bus.name).read_text().splitlines(), bus.read_text().splitlines()
    assert lines[:len(cards)] == cards and len(lines) == len(cards) + 2
    rides = {(bus.name, n) for n in (len(cards) + 1, len(cards) + 2)}
    reference = _by_line(verify(plain.files, keyset_paths))
    for store in (None, tmp_path / "store", tmp_path / "store"):      # the last run reads the store back
        run = verify(mixed.files, keyset_paths, out=store, qr_roots=ROOTS)
        verdicts = _by_line(run)
        assert {k: verdicts[k] for k in rides} == {k: ("accepted", ()) for k in rides}
        assert {k: v for k, v in verdicts.items() if k not in rides} == reference
        assert run.summary()["verdicts"] == {"accepted": 20, "rejected": 0}
        assert run.summary()["qr_rides"] == 2 and run.summary()["qr_reasons"] == {}
    assert stored_records(tmp_path / "store") == 18
    unchecked = verify(mixed.files, keyset_paths)
    assert {(v.file.rsplit("/", 1)[-1], v.line): (v.reasons, v.detail) for v in unchecked.verdicts() if v.reasons} \
        == {k: (("root_unknown",), NO_ROOTS) for k in rides}


def test_the_store_gives_the_return_its_qr_rides_and_virtual_cards(tmp_path, keysets, keyset_paths):
    """What `ykt report stats` reads: the month's accepted QR rides per city (a replay and a forged code left
    out), and the cards whose records said medium virtual."""
    from clearing.store import Store

    day = real_day(tmp_path, keysets, cards=1, qr_rides=3)
    bus = next(p for p in day.files if "upload-bus-flat." in p.name)
    lines = bus.read_text().splitlines(keepends=True)
    forged = json.loads(lines[-1])
    forged["qr_code"] = _flip(forged["qr_code"], 300)
    lines[-1] = json.dumps(forged, separators=(",", ":")) + "\n"
    virtual = json.loads(next(line for line in lines if '"card_no"' in line and '"approved"' in line))
    virtual.update(card_no="03104870399999999999", medium="virtual")
    lines.append(json.dumps(virtual, separators=(",", ":")) + "\n")
    lines.append(lines[-3])                                   # a replay of the first ride on the same bus
    bus.write_text("".join(lines))
    store = tmp_path / "store"
    verify(day.files, keyset_paths, out=store, qr_roots=ROOTS)
    rides = [json.loads(line) for line in lines[-5:-3]]
    with Store(store, create=False) as s:
        assert s.month_qr_usage("202611") == [(rides[0]["city"], 2, sum(r["amount"] for r in rides))]
        assert s.month_qr_usage("202612") == []
        assert s.virtual_cards() == {"03104870399999999999"}


def _flip(code_hex: str, offset: int) -> str:
    code = bytearray.fromhex(code_hex)
    code[offset] ^= 0x01
    return code.hex().upper()


def test_planted_qr_faults_come_back_with_their_reason(tmp_path, keysets, keyset_paths):
    """Four rides of one upload, three tampered in the file: the user signature (QR 268..331), the issuer
    signature (199..262), the root's signature of the certificate (56..119); the fourth ride's line copied
    into another terminal's upload is a replay there, wherever the copy comes in the arrival order."""
    day = real_day(tmp_path, keysets, cards=1, qr_rides=4)
    bus = next(p for p in day.files if "upload-bus-flat." in p.name)
    lines = bus.read_text().splitlines(keepends=True)
    first = len(lines) - 4
    planted = {}
    for i, (offset, reason) in enumerate([(300, "user_sig"), (230, "issuer_sig"), (80, "cert_sig")]):
        ride = json.loads(lines[first + i])
        ride["qr_code"] = _flip(ride["qr_code"], offset)
        lines[first + i] = json.dumps(ride, separators=(",", ":")) + "\n"
        planted[(bus.name, first + i + 1)] = ("rejected", (reason,))
    bus.write_text("".join(lines))
    copy = json.loads(lines[-1])
    copy["terminal_id"] = "440300000201"
    other = tmp_path / "upload-elsewhere.jsonl"
    other.write_text(json.dumps(copy, separators=(",", ":")) + "\n")
    run = verify([*day.files, other], keyset_paths, qr_roots=ROOTS)
    rejected = {k: v for k, v in _by_line(run).items() if v[0] == "rejected"}
    assert rejected == {**planted, (other.name, 1): ("rejected", ("qr-replay",))}
    details = {(v.file.rsplit("/", 1)[-1], v.line): v.detail for v in run.verdicts() if v.reasons}
    assert details[(other.name, 1)] == \
        f"qr-replay: the same code rode at terminal {json.loads(lines[-1])['terminal_id']} at " \
        f"{json.loads(lines[-1])['datetime']}"
    assert details[(bus.name, first + 1)].startswith("user_sig: ")
    assert run.summary()["qr_reasons"] == {"cert_sig": 1, "issuer_sig": 1, "user_sig": 1, "qr-replay": 1}
    # The copy first, the original after it (another run, another order): the later one is the replay.
    store = tmp_path / "store"
    verify([other], keyset_paths, out=store, qr_roots=ROOTS)
    again = verify(day.files, keyset_paths, out=store, qr_roots=ROOTS)
    assert {k: v for k, v in _by_line(again).items() if v[0] == "rejected"} == \
        {**planted, (bus.name, len(lines)): ("rejected", ("qr-replay",))}


@pytest.mark.parametrize("field, value", [
    ("qr_issuer", "02113451"), ("qr_platform", "50023302"), ("account_no", "90012088702372862095"),
    ("pay_account", "2088702372862095"), ("qr_gen_time", 1593000000),
])
def test_a_ride_whose_fields_are_not_its_codes_is_rejected(tmp_path, keysets, keyset_paths, field, value):
    """A genuine code carried by a ride that names another issuer, platform, account or generation time
    (settlement and the monthly return read those fields): rejected qr-fields, the detail naming the field
    and both values; the other rides of the upload are accepted."""
    day = real_day(tmp_path, keysets, cards=1, qr_rides=2)
    bus = next(p for p in day.files if "upload-bus-flat." in p.name)
    lines = bus.read_text().splitlines(keepends=True)
    ride = json.loads(lines[-1])
    was = ride[field]
    ride[field] = value
    lines[-1] = json.dumps(ride, separators=(",", ":")) + "\n"
    bus.write_text("".join(lines))
    run = verify(day.files, keyset_paths, qr_roots=ROOTS)
    bad = [(v.file.rsplit("/", 1)[-1], v.line, v.reasons, v.detail) for v in run.verdicts() if v.reasons]
    assert bad == [(bus.name, len(lines), ("qr-fields",), f"qr-fields: {field} is {value!r}, the code says {was!r}")]
    assert run.summary()["qr_reasons"] == {"qr-fields": 1}


def test_no_key_material_in_verdicts_summary_or_store(tmp_path, keysets, keyset_paths):
    """The master keys, the issuer-level keys and every card key stay out of everything verify writes."""
    day = Generator(keysets, seed=12, cards=6, rides=3, faults={"tac": 1}).day_files()
    run = verify(day.write(tmp_path), keyset_paths, out=tmp_path / "store")
    secrets = set()
    for ks in keysets:
        for card in {r["card_no"]: r for r in day.money}.values():
            derived = ks.card_keys(bytes.fromhex(card["issuer_id"]), bytes.fromhex(card["card_no"][4:]))
            for k in (*ks.keys.values(), *derived.keys.values()):
                v = k.key.value.hex().upper()
                secrets |= {v, v[:16], v[16:]}
    con = duckdb.connect(str(tmp_path / "store" / "clearing.duckdb"), read_only=True)
    try:
        dumped = repr(con.execute("SELECT * FROM records").fetchall()) + repr(con.execute("SELECT * FROM files").fetchall())
    finally:
        con.close()
    text = (json.dumps([v.to_dict() for v in run.verdicts()]) + json.dumps(run.summary()) + dumped).upper()
    assert not [s for s in secrets if s in text]


def test_a_run_that_stopped_while_loading_is_undone_by_the_next(tmp_path, keysets, keyset_paths):
    day = Generator(keysets, seed=13, cards=6, rides=3).day_files()
    files = day.write(tmp_path)
    store = tmp_path / "store"
    verify(files[:1], keyset_paths, out=store)
    con = duckdb.connect(str(store / "clearing.duckdb"))
    con.execute("INSERT INTO records SELECT * REPLACE (n + 77 * 4294967296 AS n) FROM records")   # a load cut short
    con.close()
    assert stored_records(store) == 2 * len(day.files[files[0].stem])
    run = verify(files, keyset_paths, out=store)
    check_exact(run, day.expected)
    assert stored_records(store) == sum(len(v) for v in day.files.values())


def test_store_columns_reach_the_store_typed_with_missing_values_as_null(tmp_path):
    """A bucket's columns go through the worker's Parquet file and come back as they were: texts with commas
    and quotes unchanged, a missing integer NULL, every column of its store type."""
    from clearing.jobs import RECORD_COLUMNS, RECORD_TYPES, SPILL_COLUMNS
    from clearing.jobs import PartitionResult
    from clearing.partition import ParquetFiles, _store_columns

    rows = [tuple(f'a,"{i}"' if RECORD_TYPES.get(c) == "VARCHAR" else (None if c == "seq" and i else i)
                  for c in SPILL_COLUMNS) for i in range(3)]
    cols = list(zip(*rows))
    columns = _store_columns(cols, [1, 2, 3], [4, 5, 6], None)
    out = ParquetFiles(tmp_path, None)
    result = PartitionResult([], "", "", "")
    out.write(columns, result)
    out.close()
    assert result.record_files == [str(tmp_path / "records-0.parquet")]
    con = duckdb.connect()
    got = con.execute(f"SELECT * FROM read_parquet('{tmp_path / 'records-0.parquet'}')").fetchall()
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{tmp_path / 'records-0.parquet'}')").fetchall()}
    assert types == RECORD_TYPES
    pos = {c: SPILL_COLUMNS.index(c) for c in RECORD_COLUMNS if c in SPILL_COLUMNS}
    for i, row in enumerate(got):
        expect = [rows[i][pos[c]] for c in RECORD_COLUMNS[:-2]] + [i + 1, i + 4]
        assert list(row) == expect
    assert got[1][RECORD_COLUMNS.index("seq")] is None


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_lines_the_router_cannot_read_reach_their_cards_owner(tmp_path, keysets, keyset_paths, monkeypatch, workers):
    """A card number written with JSON escapes is not seen by the router in the raw line: the worker that
    reads the line parses it and hands it to the worker (and bucket) of its card, so its verdicts are
    those of the plain file, whatever the number of workers and buckets."""
    import clearing.verify

    monkeypatch.setattr(clearing.verify, "BUCKET_BYTES", 4096)
    day = Generator(keysets, seed=21, cards=30, rides=6, faults=FAULTS).day_files()
    files = day.write(tmp_path)
    escaped = 0
    for path in files:
        lines = path.read_bytes().split(b"\n")
        for i, line in enumerate(lines):
            if i % 3 == 0 and b'"card_no":"' in line:
                at = line.index(b'"card_no":"') + 11
                lines[i] = line[:at] + b"\\u00" + b"%02x" % line[at] + line[at + 1:]
                escaped += 1
        path.write_bytes(b"\n".join(lines))
    assert escaped > 20
    run = verify(files, keyset_paths, out=tmp_path / "store", workers=workers)
    check_exact(run, day.expected)
    assert run.summary()["records"] == sum(len(items) for items in day.files.values())


def test_workers_start_safely_while_another_thread_runs(tmp_path, keysets, keyset_paths, monkeypatch):
    """With another thread alive (a progress bar's, an application's) the workers are spawned, not forked
    (a lock that thread held would stay held in a forked child), and judge exactly the same."""
    import multiprocessing
    import threading

    import clearing.verify

    methods = []
    real = multiprocessing.get_context
    monkeypatch.setattr(clearing.verify.multiprocessing, "get_context", lambda m: methods.append(m) or real(m))
    day = Generator(keysets, seed=8, cards=40, rides=8, faults=FAULTS).day_files()
    files = day.write(tmp_path)
    alone = threading.active_count() == 1        # (another test may have left a thread behind)
    check_exact(verify(files, keyset_paths, out=tmp_path / "alone", workers=2), day.expected)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        check_exact(verify(files, keyset_paths, out=tmp_path / "threaded", workers=2), day.expected)
    finally:
        stop.set()
        other.join()
    assert methods == ["fork" if alone else "spawn", "spawn"]


def _in_worker_only(monkeypatch, module, name, failure):
    """Replace `module.name` so that it fails (`failure()`) in a forked worker process and works in this one.
    The workers are forked (the replacement reaches them only so)."""
    import os
    import threading

    parent, real = os.getpid(), getattr(module, name)

    def replaced(*args, **kwargs):
        if os.getpid() != parent:
            failure()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, replaced)
    monkeypatch.setattr(threading, "active_count", lambda: 1)      # fork even if a test left a thread behind


def _exit_now():
    import os

    os._exit(3)


def _raise():
    raise OSError("disk full")


@pytest.mark.parametrize("where, failure, message", [
    ("_read_pass", _exit_now, "clearing worker stopped (exit code 3)"),          # before the exchange
    ("_read_pass", _raise, "clearing worker 1: OSError: disk full"),
    ("_judge_bucket", _exit_now, "clearing worker stopped (exit code 3)"),       # while this process loads
    ("_judge_bucket", _raise, "clearing worker 1: OSError: disk full"),
])
def test_a_worker_that_fails_fails_the_run_and_stores_nothing(tmp_path, keysets, keyset_paths, monkeypatch,
                                                               where, failure, message):
    """This process judges a partition itself while the worker judges the other: when the worker dies or
    fails, before or after the exchange, the run stops with an error naming it (no hang), the store keeps
    nothing of the run, and the next run judges everything."""
    import clearing.partition

    day = Generator(keysets, seed=8, cards=40, rides=8, faults=FAULTS).day_files()
    files = day.write(tmp_path)
    store = tmp_path / "store"
    with monkeypatch.context() as patch:
        _in_worker_only(patch, clearing.partition, where, failure)
        with pytest.raises(RuntimeError) as failed:
            verify(files, keyset_paths, out=store, workers=2)
    assert str(failed.value) == message
    assert stored_records(store) == 0
    check_exact(verify(files, keyset_paths, out=store, workers=2), day.expected)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_files_cut_in_many_chunks_judge_like_whole_files(tmp_path, keysets, keyset_paths, monkeypatch, fmt, workers):
    """Pass 1 shares the input out in chunks, cut anywhere (inside a line, inside a CSV header), and the
    processes share out the buckets of pass 2: the verdicts are those of whole files."""
    import clearing.verify

    monkeypatch.setattr(clearing.verify, "MIN_CHUNK", 1)
    monkeypatch.setattr(clearing.verify, "CHUNKS_PER_WORKER", 200)
    monkeypatch.setattr(clearing.verify, "BUCKET_BYTES", 2048)
    day = Generator(keysets, seed=22, cards=30, rides=6, faults=FAULTS).day_files()
    files = day.write(tmp_path, fmt)
    run = verify(files, keyset_paths, out=tmp_path / "store", workers=workers)
    assert max(len(i.cuts) for i in run.inputs) > 20
    check_exact(run, day.expected)
    assert planted_counts(run) == day.planted
    assert run.summary()["records"] == sum(len(items) for items in day.files.values())

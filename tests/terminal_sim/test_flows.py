"""The validator's flows as exact exchange tables (nfcpy style), and what each flow writes and charges.

Every flow runs against the real virtual card (ykt_card.card.cos) and the real virtual PSAM (ykt_card.psam.cos),
in-process. An exchange table lists every command, card and PSAM interleaved, in order: class,
instruction, P1, P2 and the data fields the reference fixes; cryptograms are checked by linking them to
the answer they come from (the MAC1 of DEBIT is the one the PSAM answered, ...) and by recomputing them
with the TEST keys. The helpers at the top (`make_world`, `Wire`, ...) are imported by the other test
modules of this package.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field

import pytest

from apdu import InProcessReader
from apdu.command import CommandApdu
from apdu.reader import Reader, ReaderDecorator
from keysets.randomness import RandomSource
from ykt_card.clock import SimulatedClock
from keysets import TEST_KEYSET_DIR, Algorithm, KeySet, diversify, purchase_tac
from specs.catalog import card_profile_path, terminal_profile_path
from terminal_sim.outcome import Outcome
from terminal_sim.profile import TerminalProfile, load_terminal_profile, parse_terminal_profile
from terminal_sim.records import parse_bus, parse_history, parse_metro
from terminal_sim.validator import Validator
from ykt_card.card.cos import TUnionCardOS
from ykt_card.issuance.personalise import issue_card
from ykt_card.issuance.profile import load_card_profile
from ykt_card.psam.cos import PsamOS
from ykt_card.psam.issue import issue_psam
from ykt_card.card.state import CardState

KS3 = KeySet.load(TEST_KEYSET_DIR / "gd-test-3des.toml")
KS4 = KeySet.load(TEST_KEYSET_DIR / "gd-test-sm4.toml")
CLOCK_START = "20241124080000"
TERMINAL_ID = bytes.fromhex("000000012345")
CARD_NO = "03105810000000001234"
AID = "A000000632010105"


# ---------------------------------------------------------------------------------------------------
# helpers shared by the terminal_sim tests

class Wire(ReaderDecorator):
    """A Reader decorator that appends (who, command, response) to a shared log: one interleaved table."""

    def __init__(self, inner: Reader, who: str, log: list[tuple[str, bytes, bytes]]) -> None:
        super().__init__(inner)
        self.who, self.log = who, log

    def transmit(self, capdu: bytes) -> bytes:
        rapdu = self.inner.transmit(capdu)
        self.log.append((self.who, bytes(capdu), bytes(rapdu)))
        return rapdu


def terminal_profile(name: str, **changes: object) -> TerminalProfile:
    """A shipped terminal profile, optionally with YAML top-level fields replaced (`None` removes one)."""
    import yaml

    path = terminal_profile_path(name)
    if not changes:
        return load_terminal_profile(path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return parse_terminal_profile(yaml.safe_dump(doc, allow_unicode=True), source=f"{name}*.yaml",
                                  base=path.parent)


@dataclass
class World:
    """One virtual card and one virtual PSAM in in-process slots, a terminal clock and a wire log."""

    state: CardState
    card_os: TUnionCardOS
    psam_os: PsamOS
    card_slot: InProcessReader
    psam_slot: InProcessReader
    clock: SimulatedClock
    log: list[tuple[str, bytes, bytes]] = field(default_factory=list)

    @property
    def card_reader(self) -> Wire:
        return Wire(self.card_slot, "card", self.log)

    @property
    def psam_reader(self) -> Wire:
        return Wire(self.psam_slot, "psam", self.log)

    def validator(self, profile: str | TerminalProfile, card_reader: Reader | None = None,
                  psam_reader: Reader | None = None, **kwargs: object) -> Validator:
        """A validator on this world's slots (or the decorated readers given), started, log cleared."""
        prof = terminal_profile(profile) if isinstance(profile, str) else profile
        v = Validator(prof, psam_reader if psam_reader is not None else self.psam_reader,
                      card_reader if card_reader is not None else self.card_reader,
                      clock=self.clock, **kwargs)
        v.start()
        self.log.clear()
        return v

    def swap_card(self, other: "World") -> None:
        """Put the other world's card into this world's card slot (another rider at the same gate)."""
        self.card_slot.remove()
        self.card_slot.insert(other.card_os)

    def back(self) -> None:
        """Our own card back in the slot."""
        self.card_slot.remove()
        self.card_slot.insert(self.card_os)

    @property
    def balance(self) -> int:
        return self.state.purse.balance

    @property
    def counter(self) -> int:
        return self.state.purse.offline_counter


def make_world(card_profile: str = "reference", card_no: str = CARD_NO, balance: int = 5000, seed: int = 1,
               clock: str = CLOCK_START, issued_on: _dt.date = _dt.date(2024, 1, 1),
               psam: PsamOS | None = None, algorithm: str | None = None, **profile_changes: object) -> World:
    """A card issued from a shipped card profile (fields replaced by `profile_changes`) and a PSAM;
    `algorithm` keeps only that key set on the card."""
    cp = load_card_profile(card_profile_path(card_profile))
    if profile_changes:
        cp = dataclasses.replace(cp, **profile_changes)
    issued = issue_card(cp, [KS3, KS4], card_no, issued_on, balance=balance, algorithm=algorithm)
    card_os = TUnionCardOS(issued.state, rng=RandomSource(seed))
    if psam is None:
        psam = PsamOS(issue_psam([KS3, KS4], TERMINAL_ID), random=RandomSource(seed + 1000))
    psam_os = psam
    return World(issued.state, card_os, psam_os, InProcessReader(card_os, "card"),
                 InProcessReader(psam_os, "psam"), SimulatedClock.parse(clock))


def card_key(state: CardState, role: str, algorithm: Algorithm = Algorithm.TDES) -> bytes:
    """A card key recomputed from the master key set (D2), to check cryptograms independently."""
    ks = KS3 if algorithm is Algorithm.TDES else KS4
    return diversify(ks.algorithm, ks.entry(role).key.value, ks.factors(state.issuer_id, state.serial8))


def tac_of(outcome: Outcome, state: CardState) -> str:
    """The TAC a card with these keys must return for this record (reference 3.3)."""
    alg = Algorithm.parse(outcome.algorithm)
    return purchase_tac(alg, card_key(state, "tac", alg), outcome.amount, int(outcome.type, 16),
                        bytes.fromhex(outcome.terminal_id), outcome.terminal_seq,
                        bytes.fromhex(outcome.datetime)).hex().upper()


def headers(log: list[tuple[str, bytes, bytes]]) -> list[tuple[str, str]]:
    """(who, CLA INS P1 P2) of every command, in order."""
    return [(who, c[:4].hex().upper()) for who, c, _ in log]


def command(log: list[tuple[str, bytes, bytes]], who: str, header: str, nth: int = 0) -> CommandApdu:
    found = [CommandApdu.parse(c) for w, c, _ in log if w == who and c[:4].hex().upper() == header]
    return found[nth]


def answer(log: list[tuple[str, bytes, bytes]], who: str, header: str, nth: int = 0) -> bytes:
    """The data answering a command; for a T=0 PSAM command answered 61xx, the GET RESPONSE data."""
    hits = [i for i, (w, c, _) in enumerate(log) if w == who and c[:4].hex().upper() == header]
    i = hits[nth]
    r = log[i][2]
    if r[-2] == 0x61:
        nxt = log[i + 1]
        assert nxt[0] == who and nxt[1][:4] == bytes.fromhex("00C00000")
        r = nxt[2]
    assert r[-2:] == b"\x90\x00", f"{header} answered {r[-2:].hex()}"
    return r[:-2]


def sws(log: list[tuple[str, bytes, bytes]]) -> list[str]:
    return [r[-2:].hex().upper() for _, _, r in log]


# ---------------------------------------------------------------------------------------------------
# exchange tables

SELECT = [("card", "00A40400"), ("card", "00A40400")]
"""How a validator finds the T-Union EP of a physical card: SELECT PPSE, then SELECT the AID it lists."""
READ_17 = ("card", "00B09700")
PSAM_8070 = [("psam", "80700000"), ("psam", "00C00000")]
PSAM_8072 = ("psam", "80720000")


def check_common_purchase(log, out: Outcome, w: World, *, capp: bool, amount: int, tx_type: int) -> None:
    """The fields of INITIALIZE, 8070, DEBIT and 8072 that the reference fixes or that link answers."""
    ppse, select = command(log, "card", "00A40400"), command(log, "card", "00A40400", 1)
    assert ppse.data == b"2PAY.SYS.DDF01" and ppse.le == 256
    assert select.data == bytes.fromhex(AID) and select.le == 256
    assert command(log, "card", "00B09700").le == 0x3C
    init_header = "80500302" if capp else "80500102"
    init = command(log, "card", init_header)
    key_index = 2 if out.algorithm == "sm4" else 1         # D16 on the reference card
    assert init.data == bytes((key_index,)) + amount.to_bytes(4, "big") + TERMINAL_ID and init.le == 0x0F
    init_answer = answer(log, "card", init_header)
    sam = command(log, "psam", "80700000")
    d = sam.data
    assert len(d) == 0x24
    assert d[0:4] == init_answer[11:15]                   # the card's random
    assert d[4:6] == init_answer[4:6]                     # the card's offline counter
    assert int.from_bytes(d[6:10], "big") == amount and d[10] == tx_type
    assert d[11:18].hex() == out.datetime                  # the terminal clock's reading
    assert d[18:20] == init_answer[9:11]                   # key version, algorithm ID
    assert d[20:28] == w.state.serial8 and d[28:36] == w.state.issuer_id
    sam_answer = answer(log, "psam", "80700000")
    debit = command(log, "card", "80540100")
    assert debit.le == 8
    assert debit.data == sam_answer[0:4] + d[11:18] + sam_answer[4:8]   # seq, date-time, MAC1
    debit_answer = answer(log, "card", "80540100")
    assert command(log, "psam", "80720000").data == debit_answer[4:8]  # MAC2 to the PSAM
    assert out.tac == debit_answer[0:4].hex().upper() == tac_of(out, w.state)
    assert out.terminal_seq == int.from_bytes(sam_answer[0:4], "big")
    assert out.mac2_verified is True
    assert set(sws(log)) <= {"9000", "6108"}


def test_bus_flat_is_a_plain_purchase_type_06():
    w = make_world()
    out = w.validator("bus-flat").tap()
    assert headers(w.log) == [*SELECT, READ_17, ("card", "80500102"), *PSAM_8070, ("card", "80540100"), PSAM_8072]
    assert out.status == "approved" and out.type == "06" and out.amount == 200
    check_common_purchase(w.log, out, w, capp=False, amount=200, tx_type=0x06)
    assert (out.balance_before, out.balance_after, out.card_counter) == (5000, 4800, 0)
    assert w.balance == 4800 and w.counter == 1
    assert w.state.files[0x1E].count == 0      # a plain purchase writes no CAPP record


def test_bus_flat_capp_appends_one_ef1e_record_of_type_06():
    w = make_world()
    out = w.validator("bus-flat-capp").tap()
    assert headers(w.log) == [*SELECT, READ_17, ("card", "80500302"), *PSAM_8070, ("card", "80DC00F0"),
                              ("card", "80540100"), PSAM_8072]
    assert out.status == "approved" and out.type == "09" and out.algorithm == "sm4"   # key index 2 (D16)
    check_common_purchase(w.log, out, w, capp=True, amount=200, tx_type=0x09)
    sent = command(w.log, "card", "80DC00F0").data
    assert w.state.files[0x1E].record(1) == sent
    rec = parse_history(sent, "A")
    assert (rec.type, rec.amount, rec.balance_after, rec.industry) == ("06", 200, 4800, "02")
    assert rec.terminal == "0000" + TERMINAL_ID.hex().upper() and rec.line == "0B27"


def test_metro_entry_zero_amount_is_an_approved_type_09_purchase_with_a_tac():
    w = make_world()
    out = w.validator("metro-entry").tap()
    assert headers(w.log) == [*SELECT, READ_17, ("card", "00B201D4"), ("card", "80500302"), *PSAM_8070,
                              ("card", "80DC01D0"), ("card", "80DC00F0"), ("card", "80540100"), PSAM_8072]
    assert out.status == "approved" and out.amount == 0 and out.type == "09" and out.tac
    check_common_purchase(w.log, out, w, capp=True, amount=0, tx_type=0x09)
    assert w.counter == 1 and w.balance == 5000
    metro = parse_metro(w.state.files[0x1A].records[1])
    assert metro.entered and metro.entry_station_in("5810") == "0301" and metro.max_fare == 1400
    assert metro.entry_terminal_id == TERMINAL_ID.hex().upper()
    hist = parse_history(w.state.files[0x1E].record(1), "A")
    assert (hist.type, hist.amount, hist.station, hist.industry) == ("03", 0, "0301", "01")


def test_metro_exit_charges_the_station_pair_fare_of_the_entry():
    w = make_world()
    w.validator("metro-entry", station="0302").tap()
    out = w.validator("metro-exit").tap()       # 0302 → 0306: 4.00
    assert headers(w.log) == [*SELECT, READ_17, ("card", "00B201D4"), ("card", "80500302"), *PSAM_8070,
                              ("card", "80DC01D0"), ("card", "80DC00F0"), ("card", "80540100"), PSAM_8072]
    check_common_purchase(w.log, out, w, capp=True, amount=400, tx_type=0x09)
    assert (out.amount, out.full_fare, out.entry_station, out.entry_city) == (400, 400, "0302", "5810")
    metro = parse_metro(w.state.files[0x1A].records[1])
    assert metro.status == "02" and metro.out_station.startswith("581000030306")
    assert parse_history(w.state.files[0x1E].record(1), "A").type == "04"
    assert w.balance == 4600


def test_metro_exit_without_entry_charges_the_maximum_fare():
    w = make_world()
    out = w.validator("metro-exit").tap()
    assert out.status == "approved" and out.amount == 1400 and "maximum fare" in out.reason
    assert out.entry_station is None


def test_metro_exit_after_an_entry_in_another_city_charges_the_maximum_fare():
    w = make_world()
    w.validator(terminal_profile("metro-entry", city="5880")).tap()
    out = w.validator("metro-exit").tap()
    assert out.amount == 1400


def test_bus_segment_boards_with_the_mark_amount_and_alights_with_the_pair_fare():
    w = make_world()
    board = w.validator("bus-segment", station="02").tap()
    assert headers(w.log) == [*SELECT, READ_17, ("card", "00B202D4"), ("card", "80500302"), *PSAM_8070,
                              ("card", "80DC02D0"), ("card", "80DC00F0"), ("card", "80540100"), PSAM_8072]
    check_common_purchase(w.log, board, w, capp=True, amount=0, tx_type=0x09)
    bus = parse_bus(w.state.files[0x1A].records[2])
    assert bus.boarded and bus.on_station == "02" and bus.mark_amount == 300 and bus.direction == "AB"
    hist = parse_history(w.state.files[0x1E].record(1), "B")       # this profile writes layout B
    assert hist.type == "03" and hist.trade_serial == f"{1:016d}"
    alight = w.validator("bus-segment", station="05").tap()          # 02 → 05: 3.00, 3 stops
    assert alight.status == "approved" and alight.amount == 300 and alight.entry_station == "02"
    bus = parse_bus(w.state.files[0x1A].records[2])
    assert bus.status == "02" and bus.off_station == "05" and bus.fare == 300 and bus.distance == 3
    assert parse_history(w.state.files[0x1E].record(1), "B").type == "04"
    assert w.balance == 4700


def test_bus_segment_stale_boarding_charges_its_mark_amount_and_boards_anew():
    w = make_world()
    w.validator("bus-segment", station="01").tap()           # mark amount 01 → 06: 4.00
    w.clock.advance(3 * 3600)                                 # > 120 minutes
    out = w.validator("bus-segment", station="03").tap()
    assert out.amount == 400 and "stale boarding" in out.reason
    bus = parse_bus(w.state.files[0x1A].records[2])
    assert bus.boarded and bus.on_station == "03"
    assert w.balance == 4600


def test_bus_segment_boarding_on_another_line_is_stale():
    w = make_world()
    w.validator(terminal_profile("bus-segment", line="0999"), station="01").tap()
    out = w.validator("bus-segment", station="02").tap()
    assert out.amount == 400 and "stale" in out.reason        # the other line's mark amount


def test_an_unreadable_previous_record_is_declined_before_initialize():
    w = make_world()
    rec = bytearray(w.state.files[0x1A].records[2])
    rec[14] = 0x01                                          # status 01 (boarded) ...
    rec[46:53] = bytes.fromhex("20241399999999")           # ... at an impossible boarding time
    w.state.files[0x1A].records[2] = bytes(rec)
    out = w.validator("bus-segment").tap()
    assert out.status == "declined" and "card records unusable" in out.reason
    assert headers(w.log) == [*SELECT, READ_17, ("card", "00B202D4")]


def test_ferry_plain_profile_sends_no_capp_update():
    """A ferry profile set to plain purchases (type 06) writes no EF1E record and sends no 80DC."""
    w = make_world()
    out = w.validator(terminal_profile("ferry", transaction_type="06")).tap()
    assert headers(w.log) == [*SELECT, READ_17, ("card", "80500102"), *PSAM_8070, ("card", "80540100"), PSAM_8072]
    assert out.type == "06" and out.amount == 1500


@pytest.mark.parametrize("name", ["ferry", "taxi"])
def test_ferry_and_taxi_on_the_composite_path_append_an_ef1e_flat_record(name):
    w = make_world()
    v = w.validator(name, amount=2750 if name == "taxi" else None)  # the shipped profiles use type 09
    out = v.tap()
    assert headers(w.log) == [*SELECT, READ_17, ("card", "80500302"), *PSAM_8070, ("card", "80DC00F0"),
                              ("card", "80540100"), PSAM_8072]
    amount = 2750 if name == "taxi" else 1500
    check_common_purchase(w.log, out, w, capp=True, amount=amount, tx_type=0x09)
    hist = parse_history(w.state.files[0x1E].record(1), "A")
    assert hist.type == "06" and hist.amount == amount
    assert hist.industry == {"ferry": "03", "taxi": "04"}[name]


def test_taxi_charges_the_meter_amount_and_refuses_without_one():
    w = make_world()
    out = w.validator("taxi", amount=3550).tap()
    assert out.status == "approved" and out.amount == 3550 and out.type == "09"
    refused = w.validator("taxi").tap()
    assert refused.status == "declined" and "--amount" in refused.reason
    assert headers(w.log) == [*SELECT, READ_17]                 # refused before INITIALIZE


def test_insufficient_balance_is_declined_at_initialize_without_the_psam():
    w = make_world(balance=100)
    out = w.validator("bus-flat").tap()
    assert out.status == "declined" and "9401" in out.reason and out.tac is None
    assert headers(w.log) == [*SELECT, READ_17, ("card", "80500102")]
    assert w.balance == 100 and w.counter == 0


# ---------------------------------------------------------------------------------------------------
# discounts

def test_card_type_discount_for_a_local_card():
    w = make_world(card_type=0x02)            # student: 50 %
    out = w.validator("bus-flat").tap()
    assert (out.amount, out.full_fare, out.card_type) == (100, 200, "02")


def test_discount_of_another_city_only_where_it_is_recognised():
    foshan = make_world("gd-foshan", card_no="03104870700000000042", card_type=0x02)
    out = foshan.validator("bus-flat").tap()                  # Guangzhou recognises Foshan (5880)
    assert out.amount == 100
    shenzhen = make_world("gd-shenzhen", card_no="03104870400000000042", card_type=0x02)
    out = shenzhen.validator("bus-flat").tap()                # ... but not Shenzhen (5840)
    assert out.amount == 200 and out.full_fare == 200


def test_free_card_type_pays_zero_and_still_gets_a_tac():
    w = make_world(card_type=0x03)            # senior: 0 %
    out = w.validator("bus-flat").tap()
    assert out.status == "approved" and out.amount == 0 and out.tac == tac_of(out, w.state)


# ---------------------------------------------------------------------------------------------------
# the load flow's table lives in test_load.py; the black list's in test_prechecks.py; recovery's in
# test_recovery.py


def test_outcome_json_carries_the_design_fields():
    w = make_world()
    out = w.validator("metro-entry").tap()
    doc = Outcome.from_json(out.to_json()).to_dict()
    for name in ("status", "type", "card_no", "issuer_id", "amount", "balance_before", "balance_after",
                 "overdraft_limit", "card_counter", "terminal_id", "terminal_seq", "datetime", "key_version",
                 "algorithm", "tac", "mac2_verified", "list_version", "mode", "station"):
        assert name in doc, name
    assert doc["card_no"] == CARD_NO and doc["issuer_id"] == "58105810FFFFFFFF"
    assert doc["list_version"] == "2024112401"


def test_the_shipped_profiles_all_run():
    for name in ("bus-flat", "bus-flat-capp", "bus-segment", "metro-entry", "metro-exit", "ferry", "taxi"):
        w = make_world()
        out = w.validator(name, amount=500 if name == "taxi" else None).tap()
        assert out.status == "approved", (name, out.reason)
        assert out.tac == tac_of(out, w.state)



@pytest.mark.parametrize("terminal,algorithm,tried", [("bus-flat", "sm4", ["01", "02"]),
                                                      ("bus-flat-capp", "3des", ["02", "01"])])
def test_a_card_without_the_preferred_key_set_is_served_with_the_next(terminal, algorithm, tried):
    """D16 migration: the profile lists key indexes in preference order; 9403 moves to the next one."""
    w = make_world(algorithm=algorithm)
    out = w.validator(terminal).tap()
    assert out.status == "approved" and out.algorithm == algorithm
    inits = [c for who, c, _ in w.log if who == "card" and c[:2] == b"\x80\x50"]
    assert [f"{c[5]:02X}" for c in inits] == tried
    assert [r[-2:].hex().upper() for who, c, r in w.log if who == "card" and c[:2] == b"\x80\x50"] == ["9403", "9000"]
    assert out.tac == tac_of(out, w.state)

"""The card suite's end-state checks: what must hold after a case's steps, read through APDUs only.

Each check names the state items it needs (`needs`, read before and after the steps by
context.read_state) and returns the problems it finds; the runner prefixes them with the check's
`defect`. Issuance checks compare the personalisation with `--profile` (ykt_card.issuance profiles).

Vocabulary: balance_delta, counter_delta, unchanged, ef18_newest, capp_record, ef1e_newest, written,
proof, lock, no_status, challenges_differ, and the issuance checks issuer_id, card_number, validity,
management, fci, capp_records, log_files, key_slots, purse_limits, ats.
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from apdu.command import CommandApdu
from apdu.iso14443 import Ats
from ykt_card.layouts import EF15, EF17, LayoutError, record_size
from ykt_files.schema import Model

from ..results import Inconclusive
from .context import CardCase, lock_of

__all__ = ["CHECKS", "needs_of", "run_check"]

Check = Callable[[CardCase, Any], list[str]]
CHECKS: dict[str, tuple[type[Model] | None, Check, Callable[[Any], set[str]]]] = {}


def check(name: str, params: type[Model] | None = None,
          needs: Callable[[Any], set[str]] = lambda p: set()) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[name] = (params, fn, needs)
        return fn
    return register


def needs_of(name: str, params: Any) -> set[str]:
    return CHECKS[name][2](params)


def run_check(case: CardCase, name: str, params: Any) -> list[str]:
    return CHECKS[name][1](case, params)


def _known(case: CardCase, item: str) -> tuple[Any, Any]:
    b, a = case.before.get(item), case.after.get(item)
    if b is None or a is None:
        raise Inconclusive(f"{item.replace('_', ' ')} could not be read before and after the steps")
    return b, a


def _hex(v: Any) -> str:
    return v.hex().upper() if isinstance(v, (bytes, bytearray)) else str(v)


# -- purse ----------------------------------------------------------------------------------------------

class Value(Model):
    value: int | str


@check("balance_delta", Value, lambda p: {"balance"})
def balance_delta(case: CardCase, p: Value) -> list[str]:
    before, after = _known(case, "balance")
    want = case.value(p.value)
    if after - before != want:
        return [f"balance went from {before} to {after} fen ({after - before:+d}), expected {want:+d}"]
    return []


@check("balance_is", Value, lambda p: {"balance"})
def balance_is(case: CardCase, p: Value) -> list[str]:
    _, after = _known(case, "balance")
    want = case.value(p.value)
    return [] if after == want else [f"balance is {after} fen, expected {want}"]


class Counters(Model):
    online: int | None = None
    offline: int | None = None


def _counter_needs(p: Counters) -> set[str]:
    return {n for n, v in (("online_counter", p.online), ("offline_counter", p.offline)) if v is not None}


@check("counter_delta", Counters, _counter_needs)
def counter_delta(case: CardCase, p: Counters) -> list[str]:
    out = []
    for name, want in (("online_counter", p.online), ("offline_counter", p.offline)):
        if want is None:
            continue
        before, after = _known(case, name)
        if after - before != want:
            what = name.replace("_", " ")
            out.append(f"{what} went from {before} to {after} ({after - before:+d}), expected {want:+d}")
    return out


class Items(Model):
    value: list[str] = Field(min_length=1)


@check("unchanged", Items, lambda p: set(p.value))
def unchanged(case: CardCase, p: Items) -> list[str]:
    out = []
    for item in p.value:
        before, after = _known(case, item)
        if before != after:
            out.append(f"{item} changed from {_hex(before)} to {_hex(after)}")
    return out


class Newest(Model):
    of: Literal["last_purchase", "last_load"] = "last_purchase"
    counter: Literal["after", "before"] | None = None


@check("ef18_newest", Newest, lambda p: {"ef18"})
def ef18_newest(case: CardCase, p: Newest) -> list[str]:
    """EF18 record 1 logs the transaction: amount, type, terminal, date-time (and, D4, the counter after)."""
    done = case.done_or_inconclusive(p.of)
    rec = case.after.get("ef18")
    if rec is None:
        return ["EF18 has no record 1 after the transaction (the log was not written)"]
    if len(rec) != 23:
        return [f"EF18 record 1 is {len(rec)} bytes, not 23"]
    out = []
    got = {"amount": int.from_bytes(rec[5:9], "big"), "type": rec[9], "terminal": rec[10:16], "datetime": rec[16:23]}
    want = {"amount": done.amount, "type": done.tx_type, "terminal": done.terminal, "datetime": done.datetime}
    for k in want:
        if got[k] != want[k]:
            out.append(f"EF18 record 1 {k} is {_hex(got[k])}, the transaction's is {_hex(want[k])}")
    if p.counter is not None:
        counter = int.from_bytes(rec[0:2], "big")
        expected = done.counter_after if p.counter == "after" else done.counter_before
        if counter != expected:
            out.append(f"EF18 record 1 counter is {counter:04X}, expected the counter {p.counter} the "
                       f"transaction {expected:04X} (D4)")
    if out and case.before.get("ef18") == rec:
        return ["EF18 record 1 is the one from before the transaction: the log was not written"]
    return out


class RecordCheck(Model):
    record: int = Field(default=2, ge=1, le=254)
    equals: Literal["written", "before"] = "written"


@check("capp_record", RecordCheck, lambda p: {f"capp:{p.record}"})
def capp_record(case: CardCase, p: RecordCheck) -> list[str]:
    item = f"capp:{p.record}"
    before, after = case.before.get(item), case.after.get(item)
    if p.equals == "before":
        return [] if before == after else [f"EF1A record {p.record:02X} changed from {_hex(before)} to {_hex(after)}"]
    want = case.written.get(item)
    if want is None:
        raise Inconclusive(f"nothing was written to EF1A record {p.record:02X} in this case")
    if after != want:
        return [f"EF1A record {p.record:02X} does not hold what was written: {_hex(after)}"]
    return []


class HistoryCheck(Model):
    equals: Literal["written", "before"] = "written"


@check("ef1e_newest", HistoryCheck, lambda p: {"ef1e"})
def ef1e_newest(case: CardCase, p: HistoryCheck) -> list[str]:
    before, after = case.before.get("ef1e"), case.after.get("ef1e")
    if p.equals == "before":
        return [] if before == after else [f"EF1E record 1 changed to {_hex(after)}"]
    want = case.written.get("ef1e")
    if want is None:
        raise Inconclusive("nothing was appended to EF1E in this case")
    return [] if after == want else [f"EF1E record 1 is not the record appended: {_hex(after)}"]


class WrittenCheck(Model):
    value: Literal["ef15", "ef16", "ef17"]


@check("written", WrittenCheck, lambda p: {p.value})
def written(case: CardCase, p: WrittenCheck) -> list[str]:
    want = case.written.get(p.value)
    if want is None:
        raise Inconclusive(f"nothing was written to {p.value.upper()} in this case")
    got = case.after.get(p.value)
    return [] if got == want else [f"{p.value.upper()} holds {_hex(got)}, not what was written"]


class ProofCheck(Model):
    of: Literal["last_purchase", "last_load"] = "last_purchase"


@check("proof", ProofCheck)
def proof(case: CardCase, p: ProofCheck) -> list[str]:
    """After the steps, GET TRANSACTION PROVE (counter after, D5) gives back that transaction's MAC2 ‖ TAC."""
    done = case.done_or_inconclusive(p.of)
    case.select()
    resp = case.send(CommandApdu(0x80, 0x5A, 0x00, done.tx_type, done.counter_after.to_bytes(2, "big"), le=8),
                     remember=False)
    if resp.sw != 0x9000:
        return [f"GET TRANSACTION PROVE type {done.tx_type:02X} counter {done.counter_after:04X} answered "
                f"{resp.sw:04X}: the card did not keep the proof of its {p.of.replace('_', ' ')}"]
    if resp.data != done.mac2 + done.tac:
        return [f"GET TRANSACTION PROVE answered {resp.data.hex().upper()}, not MAC2 ‖ TAC "
                f"{(done.mac2 + done.tac).hex().upper()} (wrong proof)"]
    return []


class LockCheck(Model):
    value: Literal["none", "temporary", "permanent"]


@check("lock", LockCheck)
def lock(case: CardCase, p: LockCheck) -> list[str]:
    sw = case.select()
    state = lock_of(sw)
    return [] if state == p.value else [f"SELECT answers {sw:04X} ({state or 'not selectable'}), expected the "
                                        f"application {p.value if p.value != 'none' else 'unlocked'}"]


class Statuses(Model):
    value: list[str] = Field(min_length=1)


@check("no_status", Statuses)
def no_status(case: CardCase, p: Statuses) -> list[str]:
    banned = {s.upper() for s in p.value}
    out = []
    for e in case.exchange:
        if e.response is not None and e.response[-2:].hex().upper() in banned:
            out.append(f"{e.command.hex().upper()} answered {e.response[-2:].hex().upper()}")
    return out


@check("challenges_differ")
def challenges_differ(case: CardCase, _: None) -> list[str]:
    got = case.saved.get("challenges", [])
    if len(got) < 2:
        raise Inconclusive("fewer than two challenges were drawn")
    return [] if len(set(got)) == len(got) else ["GET CHALLENGE gave the same random twice"]


# -- issuance against --profile ---------------------------------------------------------------------

def _profile(case: CardCase):
    if case.s.profile is None:
        raise Inconclusive("issuance checks need --profile")
    return case.s.profile


def _read(case: CardCase, sfi: int) -> bytes:
    case.select()
    resp = case.send(CommandApdu(0x00, 0xB0, 0x80 | sfi, 0x00, le=256), remember=False)
    if resp.sw != 0x9000:
        raise Inconclusive(f"READ BINARY {sfi:02X} answered {resp.sw:04X}")
    return resp.data


def _ef15(case: CardCase) -> dict[str, Any]:
    try:
        return EF15.decode(_read(case, 0x15))
    except LayoutError as exc:
        return {"_error": str(exc)}


@check("issuer_id")
def issuer_id(case: CardCase, _: None) -> list[str]:
    prof, f = _profile(case), _ef15(case)
    if "_error" in f:
        return [f["_error"]]
    out = []
    want = prof.issuer_id.hex().upper()
    if f["issuer_id"] != want:
        out.append(f"EF15 issuer ID is {f['issuer_id']}, profile {prof.name} issues {want} (org ‖ city ‖ FFFFFFFF)")
    for name, value in (("app_type", prof.app_type), ("app_version", prof.app_version)):
        if f[name] != f"{value:02X}":
            out.append(f"EF15 {name} is {f[name]}, profile {prof.name} says {value:02X}")
    if f["issuer_data"] != prof.fci_custom:
        out.append(f"EF15 issuer data (bytes 28..29) is {f['issuer_data']}, profile says {prof.fci_custom}")
    return out


@check("card_number")
def card_number(case: CardCase, _: None) -> list[str]:
    prof, f = _profile(case), _ef15(case)
    if "_error" in f:
        return [f["_error"]]
    number = f["card_no"]
    if len(number) != 20 or not number.startswith(prof.card_no_prefix):
        return [f"card number {number} does not have the form of profile {prof.name} "
                f"({prof.card_no_prefix} then {20 - len(prof.card_no_prefix)} digits)"]
    return []


@check("validity")
def validity(case: CardCase, _: None) -> list[str]:
    prof, f = _profile(case), _ef15(case)
    if "_error" in f:
        return [f["_error"]]
    if f["start_date"] is None or f["expiry_date"] is None:
        return [f"EF15 dates missing: start {f['start_date']}, expiry {f['expiry_date']}"]
    start = _dt.date.fromisoformat(f["start_date"])
    expiry = _dt.date.fromisoformat(f["expiry_date"])
    want = prof.expiry(start)
    return [] if expiry == want else [f"EF15 validity {start} .. {expiry}; profile {prof.name} gives "
                                      f"{prof.valid_years} years: expiry {want}"]


@check("management")
def management(case: CardCase, _: None) -> list[str]:
    prof = _profile(case)
    try:
        f = EF17.decode(_read(case, 0x17))
    except LayoutError as exc:
        return [str(exc)]
    want = {"country": prof.country, "province": prof.province, "city": prof.city,
            "interop": "0001" if prof.interoperable else "0000", "card_type": f"{prof.card_type:02X}",
            "settlement_unit": prof.settlement_unit}
    out = [f"EF17 {k} is {f[k]}, profile {prof.name} says {v}" for k, v in want.items() if f[k] != v]
    city15 = _read(case, 0x15)[2:4].hex().upper()
    if city15 != prof.city:
        out.append(f"EF15 city code is {city15}, profile {prof.name} says {prof.city}")
    return out


@check("fci")
def fci(case: CardCase, _: None) -> list[str]:
    prof = _profile(case)
    resp = case.send(CommandApdu(0x00, 0xA4, 0x04, 0x00, bytes.fromhex("A000000632010105"), le=256),
                     remember=False)
    from apdu import tlv
    try:
        version = tlv.parse_one(resp.data).find(0x9F08)
    except tlv.TlvError as exc:
        return [f"FCI is not BER-TLV: {exc}"]
    if version is None or version.value != bytes((prof.fci_app_version,)):
        got = version.value.hex().upper() if version is not None else "absent"
        return [f"FCI application version (9F08) is {got}, profile {prof.name} says {prof.fci_app_version:02X}"]
    return []


@check("capp_records")
def capp_records(case: CardCase, _: None) -> list[str]:
    """EF1A holds exactly the profile's record IDs (D9), each at its size; no other ID answers."""
    prof = _profile(case)
    case.select()
    out = []
    for rid in range(1, 0x13):
        resp = case.send(CommandApdu(0x00, 0xB2, rid, (0x1A << 3) | 4, le=256), remember=False)
        present = resp.sw == 0x9000
        if rid in prof.capp_records:
            if not present:
                out.append(f"EF1A record {rid:02X} is missing ({resp.sw:04X}); profile {prof.name} creates it")
            elif len(resp.data) != record_size(rid):
                out.append(f"EF1A record {rid:02X} is {len(resp.data)} bytes, expected {record_size(rid)}")
        elif present:
            out.append(f"EF1A record {rid:02X} exists; profile {prof.name} does not create it")
    return out


@check("log_files")
def log_files(case: CardCase, _: None) -> list[str]:
    """EF18 and EF1E hold records of 23 and 48 bytes, at most the profile's record counts."""
    prof = _profile(case)
    case.select()
    out = []
    for sfi, size, capacity in ((0x18, 23, prof.ef18_records), (0x1E, 48, prof.ef1e_records)):
        for rid in range(1, capacity + 2):
            resp = case.send(CommandApdu(0x00, 0xB2, rid, (sfi << 3) | 4, le=256), remember=False)
            if resp.sw != 0x9000:
                break
            if len(resp.data) != size:
                out.append(f"EF{sfi:02X} record {rid} is {len(resp.data)} bytes, expected {size}")
                break
            if rid > capacity:
                out.append(f"EF{sfi:02X} holds more than {capacity} records, the profile's count")
    return out


@check("key_slots")
def key_slots(case: CardCase, _: None) -> list[str]:
    """Each key set of the run sits at the profile's key index for its algorithm (D16)."""
    prof = _profile(case)
    out = []
    for k in case.s.keys:
        slot = next((s for s in prof.keys if s.algorithm == k.algorithm.value), None)
        if slot is None:
            out.append(f"profile {prof.name} has no {k.algorithm.value} key slot, the card answers one")
            continue
        case.select()
        data = bytes((slot.index,)) + bytes(4) + case.s.terminal_id
        resp = case.send(CommandApdu(0x80, 0x50, 0x01, 0x02, data, le=0x0F), remember=False)
        if resp.sw != 0x9000 or len(resp.data) != 15:
            out.append(f"INITIALIZE FOR PURCHASE with the profile's {slot.algorithm} key index {slot.index:02X} "
                       f"answered {resp.sw:04X}")
        elif resp.data[10] != k.algorithm.wire_id:
            out.append(f"key index {slot.index:02X} answers algorithm {resp.data[10]:02X}, profile says "
                       f"{slot.algorithm}")
    case.select()
    return out


@check("purse_limits", None, lambda p: {"overdraft_limit"})
def purse_limits(case: CardCase, _: None) -> list[str]:
    prof = _profile(case)
    got = case.after.get("overdraft_limit")
    if got is None:
        raise Inconclusive("the overdraft limit could not be read (INITIALIZE FOR PURCHASE)")
    return [] if got == prof.overdraft_limit else [f"overdraft limit is {got} fen, profile {prof.name} says "
                                                   f"{prof.overdraft_limit}"]


@check("ats")
def ats(case: CardCase, _: None) -> list[str]:
    """The answer to reset is well formed; with a profile, its historical bytes are the profile's."""
    answer = bytes.fromhex(case.saved.get("answer_to_reset") or case.s.identity.get("answer_to_reset", ""))
    if not answer:
        return ["the card gave no answer to reset"]
    if answer[0] in (0x3B, 0x3F):          # an ATR (PC/SC pseudo-ATR for contactless cards)
        hist_n = answer[1] & 0x0F if len(answer) > 1 else 0
        historical = answer[4:4 + hist_n] if len(answer) >= 4 + hist_n else b""
    else:
        try:
            historical = Ats.parse(answer).historical
        except ValueError as exc:
            return [f"the ATS is malformed: {exc}"]
    prof = case.s.profile
    if prof is not None and "issuance" in case.tags and historical != prof.ats_historical:
        return [f"historical bytes {historical.hex().upper()}, profile {prof.name} says "
                f"{prof.ats_historical.hex().upper()}"]
    return []


# -- identification -------------------------------------------------------------------------------------

@check("fci_ef15")
def fci_ef15(case: CardCase, _: None) -> list[str]:
    """The FCI's 9F0C equals EF15 as READ BINARY gives it."""
    from apdu import tlv
    resp = case.send(CommandApdu(0x00, 0xA4, 0x04, 0x00, bytes.fromhex("A000000632010105"), le=256),
                     remember=False)
    try:
        found = tlv.parse_one(resp.data).find(0x9F0C)
    except tlv.TlvError as exc:
        return [f"FCI is not BER-TLV: {exc}"]
    ef15 = _read(case, 0x15)
    if found is None:
        return ["the FCI has no 9F0C (EF15)"]
    return [] if found.value == ef15 else [f"FCI 9F0C is {found.value.hex().upper()}, EF15 is {ef15.hex().upper()}"]


@check("ppse_ep")
def ppse_ep(case: CardCase, _: None) -> list[str]:
    from ykt_card.layouts import PpseFci
    resp = case.send(CommandApdu(0x00, 0xA4, 0x04, 0x00, b"2PAY.SYS.DDF01", le=256), remember=False)
    try:
        entries = PpseFci.decode(resp.data)["entries"]
    except LayoutError as exc:
        return [f"PPSE answer ({resp.sw:04X}) does not decode: {exc}"]
    ep = [e for e in entries if e["aid"] == "A000000632010105"]
    if not ep:
        return ["the PPSE lists no A000000632010105"]
    return [] if ep[0]["label"] == "MOT_T_EP" else [f"the EP entry's label is {ep[0]['label']!r}, not 'MOT_T_EP'"]


@check("init_balance_matches")
def init_balance_matches(case: CardCase, _: None) -> list[str]:
    got, init = case.saved.get("got_balance"), case.saved.get("init")
    if got is None or init is None:
        raise Inconclusive("GET BALANCE or INITIALIZE gave no balance")
    return [] if got == init["balance"] else [f"GET BALANCE says {got}, INITIALIZE {init['balance']}"]


@check("balance_parts", None, lambda p: {"balance"})
def balance_parts(case: CardCase, _: None) -> list[str]:
    total = case.after.get("balance")
    case.select()
    parts = []
    for p1 in (0x01, 0x03):
        r = case.send(CommandApdu(0x80, 0x5C, p1, 0x02, le=4), remember=False)
        if r.sw != 0x9000 or len(r.data) != 4:
            return [f"GET BALANCE P1 {p1:02X} answered {r.sw:04X}"]
        parts.append(int.from_bytes(r.data, "big", signed=p1 == 0x03))
    return [] if total == parts[0] + parts[1] else [f"P1 00 gives {total}, P1 01 {parts[0]} + P1 03 {parts[1]}"]

"""The card suite's actions: the verbs a case's `steps` use, each with its parameter model.

Every action builds its APDU here (so malformed variants are one parameter away: `cla`, `p1`, `p2`,
`trim`, `extra`, `le`), sends it through the case (which records it), and returns the answer that the
step's `expect` judges. Actions that receive cryptograms check them as the PSAM or the load host would,
and record a failure that names the defect (MAC1, MAC2, TAC, algorithm byte) without stopping the case.

Vocabulary: power_cycle, select, read_binary, read_record, get_balance, get_challenge, verify_pin,
initialize_load, credit_load, initialize_purchase, update_capp_cache, debit, get_transaction_prove,
load, purchase, update_binary_sm, update_record_sm, application_block, application_unblock,
external_authenticate, raw, resend, tear.
"""
from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, field_validator

from apdu.command import CommandApdu
from apdu.reader import ReaderError
from apdu.status import ResponseApdu
from keysets import LoadSession, PurchaseSession, load_tac, purchase_tac, secure_messaging_mac
from ykt_files.schema import Model, problem

from ..results import CaseFailed, Inconclusive
from .context import AID, CASH_AID, PPSE, CardCase, Done, Pending, lock_of, read_state
from .records import record_for

__all__ = ["ACTIONS", "run_action"]

Action = Callable[[CardCase, Any], "ResponseApdu | None"]
ACTIONS: dict[str, tuple[type[Model] | None, Action]] = {}

KeyChoice = Literal["any", "3des", "sm4", "second"]
Amount = int | str


def action(name: str, params: type[Model] | None = None) -> Callable[[Action], Action]:
    def register(fn: Action) -> Action:
        ACTIONS[name] = (params, fn)
        return fn
    return register


def run_action(case: CardCase, name: str, params: Any) -> ResponseApdu | None:
    return ACTIONS[name][1](case, params)


def _flip(mac: bytes) -> bytes:
    return bytes((mac[0] ^ 0x01,)) + mac[1:]


class Malform(Model):
    """Deviations from the reference's APDU: another CLA/P1/P2, data cut short or lengthened, another Le.

    le: an integer (00 = 256) or "omit"; None keeps the reference's Le.
    """

    cla: int | None = Field(default=None, ge=0, le=255)
    p1: int | None = Field(default=None, ge=0, le=255)
    p2: int | None = Field(default=None, ge=0, le=255)
    trim: int = Field(default=0, ge=0, le=255)
    extra: int = Field(default=0, ge=0, le=255)
    le: int | Literal["omit"] | None = None

    @property
    def malformed(self) -> bool:
        return any(v is not None for v in (self.cla, self.p1, self.p2, self.le)) or bool(self.trim or self.extra)


def _apdu(p: Malform | None, cla: int, ins: int, p1: int, p2: int, data: bytes = b"",
          le: int | None = None) -> bytes:
    """Raw APDU bytes: the reference's command with the case's deviations applied."""
    if p is not None:
        cla = p.cla if p.cla is not None else cla
        p1 = p.p1 if p.p1 is not None else p1
        p2 = p.p2 if p.p2 is not None else p2
        if p.trim:
            data = data[:-p.trim] if p.trim < len(data) else b""
        data = data + bytes(p.extra)
        if p.le == "omit":
            le = None
        elif p.le is not None:
            le = p.le or 256
    out = bytes((cla, ins, p1, p2))
    if data:
        out += bytes((len(data),)) + data
    if le is not None:
        out += bytes((le % 256,))
    return out


# -- selection and reading ----------------------------------------------------------------------------

@action("power_cycle")
def power_cycle(case: CardCase, _: None) -> None:
    case.saved["answer_to_reset"] = case.power_cycle().hex().upper()
    return None


class SelectParams(Malform):
    target: str = "app"    # app, ppse, cash, unknown, or an AID in hex


@action("select", SelectParams)
def select(case: CardCase, p: SelectParams) -> ResponseApdu:
    name = {"app": AID, "ppse": PPSE, "cash": CASH_AID, "unknown": bytes.fromhex("A0000006320199FF")}.get(p.target)
    if name is None:
        name = bytes.fromhex(p.target)
    case.pending = None
    return case.send(_apdu(p, 0x00, 0xA4, 0x04, 0x00, name, 256))


class ReadBinaryParams(Malform):
    sfi: int = Field(ge=1, le=31)
    offset: int = Field(default=0, ge=0, le=255)
    length: int = Field(default=0, ge=0, le=256)   # 0: Le 00 (the whole file)


@action("read_binary", ReadBinaryParams)
def read_binary(case: CardCase, p: ReadBinaryParams) -> ResponseApdu:
    return case.send(_apdu(p, 0x00, 0xB0, 0x80 | p.sfi, p.offset, le=p.length or 256))


class ReadRecordParams(Malform):
    sfi: int = Field(ge=1, le=30)
    record: int = Field(ge=0, le=255)
    length: int = Field(default=0, ge=0, le=256)


@action("read_record", ReadRecordParams)
def read_record(case: CardCase, p: ReadRecordParams) -> ResponseApdu:
    return case.send(_apdu(p, 0x00, 0xB2, p.record, (p.sfi << 3) | 4, le=p.length or 256))


class GetBalanceParams(Malform):
    kind: int = Field(default=0, ge=0, le=255)   # P1: 00 total, 01 overdraft limit, 03 real (D3)


@action("get_balance", GetBalanceParams)
def get_balance(case: CardCase, p: GetBalanceParams) -> ResponseApdu:
    resp = case.send(_apdu(p, 0x80, 0x5C, p.kind, 0x02, le=4))
    if resp.sw == 0x9000 and len(resp.data) == 4:
        case.saved["got_balance"] = int.from_bytes(resp.data, "big")
    return resp


class ChallengeParams(Malform):
    length: int = Field(default=4, ge=1, le=256)


@action("get_challenge", ChallengeParams)
def get_challenge(case: CardCase, p: ChallengeParams) -> ResponseApdu:
    resp = case.send(_apdu(p, 0x00, 0x84, 0x00, 0x00, le=p.length))
    if resp.sw == 0x9000:
        case.saved.setdefault("challenges", []).append(resp.data)
        case.saved["challenge"] = resp.data.hex().upper()
    return resp


class PinParams(Malform):
    pin: str = "profile"     # profile (the profile's PIN, 123456 without one), wrong, or digits


@action("verify_pin", PinParams)
def verify_pin(case: CardCase, p: PinParams) -> ResponseApdu:
    right = case.s.profile.pin if case.s.profile is not None else "123456"
    digits = right if p.pin == "profile" else p.pin
    if p.pin == "wrong":
        digits = "".join(str((int(c) + 1) % 10) for c in right)
    data = bytes.fromhex(digits + "F" * (len(digits) % 2))
    return case.send(_apdu(p, 0x00, 0x20, 0x00, 0x00, data))


# -- load ---------------------------------------------------------------------------------------------

class InitParams(Malform):
    amount: Amount = 1
    key: KeyChoice = "any"
    key_index: int | Literal["unknown"] | None = None
    capp: bool = False


def _init_data(case: CardCase, p: InitParams) -> tuple[Any, int, int, bytes]:
    keys = case.s.key(p.key)
    amount = case.value(p.amount)
    if not isinstance(amount, int) or not 0 <= amount <= 0xFFFFFFFF:
        raise Inconclusive(f"amount {p.amount!r} = {amount!r} does not fit 4 bytes")
    index = keys.index if p.key_index is None else (
        case.s.unknown_key_index() if p.key_index == "unknown" else p.key_index)
    return keys, amount, index, bytes((index,)) + amount.to_bytes(4, "big") + case.s.terminal_id


@action("initialize_load", InitParams)
def initialize_load(case: CardCase, p: InitParams) -> ResponseApdu:
    keys, amount, index, data = _init_data(case, p)
    resp = case.send(_apdu(p, 0x80, 0x50, 0x00, 0x02, data, 0x10))
    case.pending = None
    if resp.sw != 0x9000 or p.malformed:
        return resp
    r = resp.data
    if len(r) != 16:
        case.fail(f"INITIALIZE FOR LOAD answered {len(r)} bytes; the reference's answer is 16 (balance, online "
                  "counter, key version, algorithm, random, MAC1)")
        return resp
    balance, counter, version, alg, random, mac1 = (int.from_bytes(r[0:4], "big"), int.from_bytes(r[4:6], "big"),
                                                    r[6], r[7], r[8:12], r[12:16])
    if alg != keys.algorithm.wire_id:
        case.fail(f"INITIALIZE FOR LOAD with key index {index:02X} ({keys.algorithm.value}) reports algorithm "
                  f"{alg:02X}, not {keys.algorithm.wire_id:02X} (wrong algorithm byte, D1/D16)")
    if version != keys.version("load"):
        case.fail(f"INITIALIZE FOR LOAD reports key version {version:02X}, the key set's load key is "
                  f"version {keys.version('load'):02X}")
    session = LoadSession.derive(keys.algorithm, keys.value("load"), random, counter)
    expected = session.mac1(balance, amount, case.s.terminal_id)
    if not hmac.compare_digest(expected, mac1):
        case.fail(f"MAC1 of INITIALIZE FOR LOAD does not verify under the load key of key index {index:02X}: "
                  f"card {mac1.hex().upper()}, host computes {expected.hex().upper()} (the load host refuses it)")
    case.pending = Pending("load", keys, amount, case.s.terminal_id, counter, random, balance, mac1=mac1)
    case.saved["init"] = {"balance": balance, "counter": counter}
    return resp


class CreditParams(Malform):
    mac2: Literal["correct", "wrong"] = "correct"


@action("credit_load", CreditParams)
def credit_load(case: CardCase, p: CreditParams) -> ResponseApdu:
    pend = case.pending if case.pending is not None and case.pending.kind == "load" else None
    when = case.s.now()
    mac2 = bytes(4)
    session = None
    if pend is not None:
        session = LoadSession.derive(pend.keys.algorithm, pend.keys.value("load"), pend.random, pend.counter)
        mac2 = session.mac2(pend.amount, pend.terminal, when)
    if p.mac2 == "wrong":
        mac2 = _flip(mac2)
    resp = case.send(_apdu(p, 0x80, 0x52, 0x00, 0x00, when + mac2, 0x04))
    case.pending = None
    if resp.sw != 0x9000 or pend is None or p.malformed:
        return resp
    if len(resp.data) != 4:
        case.fail(f"CREDIT FOR LOAD answered {len(resp.data)} bytes; the TAC is 4")
        return resp
    k = pend.keys
    expected = load_tac(k.algorithm, k.value("tac"), pend.balance + pend.amount, pend.counter, pend.amount,
                        pend.terminal, when)
    if not hmac.compare_digest(expected, resp.data):
        case.fail(f"the TAC of CREDIT FOR LOAD does not verify under the TAC key of key index {k.index:02X}: card "
                  f"{resp.data.hex().upper()}, issuer computes {expected.hex().upper()} (wrong load TAC)")
    case.done["last_load"] = Done("load", 0x02, pend.amount, pend.terminal, when, pend.counter, mac2, resp.data)
    return resp


class LoadParams(Model):
    amount: Amount = 1
    key: KeyChoice = "any"


@action("load", LoadParams)
def load(case: CardCase, p: LoadParams) -> ResponseApdu:
    resp = initialize_load(case, InitParams(amount=p.amount, key=p.key))
    if resp.sw != 0x9000 or case.pending is None:
        return resp
    return credit_load(case, CreditParams())


# -- purchase -----------------------------------------------------------------------------------------

@action("initialize_purchase", InitParams)
def initialize_purchase(case: CardCase, p: InitParams) -> ResponseApdu:
    keys, amount, index, data = _init_data(case, p)
    kind = "capp" if p.capp else "purchase"
    resp = case.send(_apdu(p, 0x80, 0x50, 0x03 if p.capp else 0x01, 0x02, data, 0x0F))
    case.pending = None
    if resp.sw != 0x9000 or p.malformed:
        return resp
    r = resp.data
    name = "INITIALIZE FOR CAPP PURCHASE" if p.capp else "INITIALIZE FOR PURCHASE"
    if len(r) != 15:
        case.fail(f"{name} answered {len(r)} bytes; the reference's answer is 15")
        return resp
    balance, counter, limit, version, alg, random = (int.from_bytes(r[0:4], "big"), int.from_bytes(r[4:6], "big"),
                                                     int.from_bytes(r[6:9], "big"), r[9], r[10], r[11:15])
    if alg != keys.algorithm.wire_id:
        case.fail(f"{name} with key index {index:02X} ({keys.algorithm.value}) reports algorithm {alg:02X}, "
                  f"not {keys.algorithm.wire_id:02X} (wrong algorithm byte, D1/D16)")
    if version != keys.version("purchase"):
        case.fail(f"{name} reports key version {version:02X}, the key set's purchase key is version "
                  f"{keys.version('purchase'):02X}")
    case.pending = Pending(kind, keys, amount, case.s.terminal_id, counter, random, balance, limit)
    case.saved["init"] = {"balance": balance, "counter": counter, "overdraft_limit": limit}
    return resp


class CappParams(Malform):
    record: int = Field(default=2, ge=0, le=255)    # P1: the EF1A record ID (00 for EF1E)
    sfi: int = Field(default=0x1A, ge=1, le=30)
    template: str = "bus"                           # bus, metro, history, blank, or hex


@action("update_capp_cache", CappParams)
def update_capp_cache(case: CardCase, p: CappParams) -> ResponseApdu:
    data = record_for(case, p.template, p.record)
    pend = case.pending
    resp = case.send(_apdu(p, 0x80, 0xDC, p.record, p.sfi << 3, data))
    if resp.sw == 0x9000 and pend is not None and not p.malformed:
        pend.cache.append((p.sfi, p.record, data))
        case.written["ef1e" if p.sfi == 0x1E else f"capp:{p.record}"] = data
    else:
        case.pending = None if resp.sw != 0x9000 else pend
    return resp


class DebitParams(Malform):
    mac1: Literal["correct", "wrong"] = "correct"
    mac1_seq: Literal["same", "other"] = "same"     # other: MAC1 computed for another terminal sequence


@action("debit", DebitParams)
def debit(case: CardCase, p: DebitParams) -> ResponseApdu:
    pend = case.pending if case.pending is not None and case.pending.kind in ("purchase", "capp") else None
    seq = case.s.next_terminal_seq()
    when = case.s.now()
    mac1 = bytes(4)
    session = None
    if pend is not None:
        k = pend.keys
        session = PurchaseSession.derive(k.algorithm, k.value("purchase"), pend.random, pend.counter,
                                         seq if p.mac1_seq == "same" else seq + 1)
        mac1 = session.mac1(pend.amount, pend.tx_type, pend.terminal, when)
    if p.mac1 == "wrong":
        mac1 = _flip(mac1)
    resp = case.send(_apdu(p, 0x80, 0x54, 0x01, 0x00, seq.to_bytes(4, "big") + when + mac1, 0x08))
    case.pending = None
    if resp.sw != 0x9000 or pend is None or p.malformed:
        return resp
    _judge_debit(case, pend, session, seq, when, resp.data)
    return resp


def _judge_debit(case: CardCase, pend: Pending, session: Any, seq: int, when: bytes, data: bytes) -> None:
    """Check DEBIT's TAC ‖ MAC2 as the PSAM (8072) and the clearing centre (TAC) would."""
    if len(data) != 8:
        case.fail(f"DEBIT answered {len(data)} bytes; the reference's answer is TAC ‖ MAC2, 8 bytes")
        return
    k = pend.keys
    tac, mac2 = data[0:4], data[4:8]
    expected = purchase_tac(k.algorithm, k.value("tac"), pend.amount, pend.tx_type, pend.terminal, seq, when)
    if not hmac.compare_digest(expected, tac):
        case.fail(f"the TAC of DEBIT does not verify under the TAC key of key index {k.index:02X}: card "
                  f"{tac.hex().upper()}, clearing computes {expected.hex().upper()} (wrong purchase TAC)")
    if session is not None and not session.verify_mac2(mac2, pend.amount):
        case.fail(f"MAC2 of DEBIT {mac2.hex().upper()} does not verify under the purchase session key: the "
                  "PSAM's CREDIT SAM FOR PURCHASE (8072) would refuse it (wrong MAC2)")
    case.done["last_purchase"] = Done(pend.kind, pend.tx_type, pend.amount, pend.terminal, when, pend.counter,
                                      mac2, tac, seq, list(pend.cache))


class PurchaseParams(Model):
    amount: Amount = 1
    key: KeyChoice = "any"
    capp: bool = False
    records: list[str] = Field(default_factory=list)   # bus, metro, history (the EF1E append), blank:NN


def _record_step(spec: str) -> CappParams:
    if spec == "history":
        return CappParams(record=0, sfi=0x1E, template="history")
    if spec == "metro":
        return CappParams(record=1, template="metro")
    if spec == "bus":
        return CappParams(record=2, template="bus")
    if spec.startswith("blank:"):
        return CappParams(record=int(spec[6:], 0), template="blank")
    raise Inconclusive(f"records: {spec!r} is not bus, metro, history or blank:NN")


@action("purchase", PurchaseParams)
def purchase(case: CardCase, p: PurchaseParams) -> ResponseApdu:
    capp = p.capp or bool(p.records)
    resp = initialize_purchase(case, InitParams(amount=p.amount, key=p.key, capp=capp))
    if resp.sw != 0x9000 or case.pending is None:
        return resp
    for spec in p.records:
        resp = update_capp_cache(case, _record_step(spec))
        if resp.sw != 0x9000:
            return resp
    return debit(case, DebitParams())


class ProveParams(Malform):
    of: Literal["last_purchase", "last_load"] = "last_purchase"
    type: int | None = Field(default=None, ge=0, le=255)
    counter: Literal["after", "before"] | int = "after"
    verify: bool = True


@action("get_transaction_prove", ProveParams)
def get_transaction_prove(case: CardCase, p: ProveParams) -> ResponseApdu:
    done = case.done_or_inconclusive(p.of)
    tx = done.tx_type if p.type is None else p.type
    counter = {"after": done.counter_after, "before": done.counter_before}.get(p.counter, p.counter)  # type: ignore[arg-type]
    resp = case.send(_apdu(p, 0x80, 0x5A, 0x00, tx, int(counter).to_bytes(2, "big"), 0x08))
    if resp.sw == 0x9000 and p.verify and not p.malformed and tx == done.tx_type and counter == done.counter_after:
        expected = done.mac2 + done.tac
        if resp.data != expected:
            case.fail(f"GET TRANSACTION PROVE for counter {counter:04X} answered {resp.data.hex().upper()}, not "
                      f"the MAC2 ‖ TAC {expected.hex().upper()} of that transaction (proof not kept, or wrong)")
    return resp


# -- secure messaging ---------------------------------------------------------------------------------

class SmParams(Malform):
    mac: Literal["correct", "wrong"] = "correct"
    challenge: Literal["fresh", "none", "spent"] = "fresh"
    key: KeyChoice = "any"


def _challenge(case: CardCase, p: SmParams, size: int = 4) -> bytes:
    if p.challenge == "none":
        return bytes(size)
    resp = case.send(CommandApdu(0x00, 0x84, 0x00, 0x00, le=size), remember=False)
    if resp.sw != 0x9000 or len(resp.data) != size:
        raise Inconclusive(f"GET CHALLENGE for secure messaging answered {resp.sw:04X}")
    if p.challenge == "spent":
        case.send(bytes.fromhex("805C000204"), remember=False)  # any command spends it (D18)
    return resp.data


def _sm_send(case: CardCase, p: SmParams, role: str, cla: int, ins: int, p1: int, p2: int,
             body: bytes) -> ResponseApdu:
    keys = case.s.key(p.key)
    challenge = _challenge(case, p)
    header = bytes((cla, ins, p1, p2, len(body) + 4))
    mac = secure_messaging_mac(keys.algorithm, keys.sm_key(role), challenge, header + body)
    if p.mac == "wrong":
        mac = _flip(mac)
    return case.send(_apdu(p, cla, ins, p1, p2, body + mac))


class UpdateBinaryParams(SmParams):
    sfi: int = Field(default=0x16, ge=1, le=30)
    offset: int = Field(default=0, ge=0, le=255)
    data: str = "modified"        # modified (the original bytes inverted), original, or hex
    length: int = Field(default=4, ge=1, le=64)


def _original(case: CardCase, where: tuple[str, int, int], cmd: bytes) -> bytes:
    if where not in case.originals:
        resp = case.send(cmd, remember=False)
        if resp.sw != 0x9000:
            raise Inconclusive(f"could not read the original content of {where[0]} {where[1]:02X} "
                               f"({resp.sw:04X})")
        case.originals[where] = resp.data
    return case.originals[where]


def _content(spec: str, original: bytes) -> bytes:
    if spec == "original":
        return original
    if spec == "modified":
        return bytes(b ^ 0xFF for b in original)
    return bytes.fromhex(spec)


@action("update_binary_sm", UpdateBinaryParams)
def update_binary_sm(case: CardCase, p: UpdateBinaryParams) -> ResponseApdu:
    original = _original(case, ("binary", p.sfi, 0), bytes((0x00, 0xB0, 0x80 | p.sfi, 0x00, 0x00)))
    window = original[p.offset:p.offset + p.length]
    body = _content(p.data, window)
    resp = _sm_send(case, p, "app_maintenance", 0x04, 0xD6, 0x80 | p.sfi, p.offset, body)
    if resp.sw == 0x9000:
        case.written[f"ef{p.sfi:02x}"] = original[:p.offset] + body + original[p.offset + len(body):]
    return resp


class UpdateRecordParams(SmParams):
    sfi: int = Field(default=0x1A, ge=1, le=30)
    record: int = Field(default=2, ge=1, le=254)
    data: str = "modified"        # modified: the body (after the 6-byte header) inverted; original; hex


@action("update_record_sm", UpdateRecordParams)
def update_record_sm(case: CardCase, p: UpdateRecordParams) -> ResponseApdu:
    original = _original(case, ("record", p.sfi, p.record),
                         bytes((0x00, 0xB2, p.record, (p.sfi << 3) | 4, 0x00)))
    if p.data == "modified":
        body = original[:6] + bytes(b ^ 0xFF for b in original[6:])
    else:
        body = _content(p.data, original)
    resp = _sm_send(case, p, "app_maintenance", 0x04, 0xDC, p.record, (p.sfi << 3) | 4, body)
    if resp.sw == 0x9000:
        case.written["ef1e" if p.sfi == 0x1E else f"capp:{p.record}" if p.sfi == 0x1A else f"ef{p.sfi:02x}"] = body
    return resp


class BlockParams(SmParams):
    permanent: bool = False


@action("application_block", BlockParams)
def application_block(case: CardCase, p: BlockParams) -> ResponseApdu:
    return _sm_send(case, p, "app_block", 0x84, 0x1E, 0x00, 0x01 if p.permanent else 0x00, b"")


@action("application_unblock", SmParams)
def application_unblock(case: CardCase, p: SmParams) -> ResponseApdu:
    return _sm_send(case, p, "app_unblock", 0x84, 0x18, 0x00, 0x00, b"")


@action("external_authenticate", SmParams)
def external_authenticate(case: CardCase, p: SmParams) -> ResponseApdu:
    keys = case.s.key(p.key)
    if not keys.keys.has("external_auth"):
        raise Inconclusive(f"key set {keys.name} has no external_auth key")
    entry = keys.keys.entry("external_auth")
    challenge = _challenge(case, p)
    bs = keys.algorithm.block_size
    crypt = keys.algorithm.cipher(entry.key.value).encrypt(challenge + bytes(bs - len(challenge)))
    if p.mac == "wrong":
        crypt = _flip(crypt)
    return case.send(_apdu(p, 0x00, 0x82, 0x00, entry.index, crypt))


# -- anything else ------------------------------------------------------------------------------------

class RawParams(Model):
    apdu: str     # hex with fields: {key_index} {unknown_key_index} {terminal} {aid}

    @field_validator("apdu")
    @classmethod
    def _hex(cls, v: str) -> str:
        probe = re.sub(r"\{[a-z_]+\}", "00", v).replace(" ", "")
        if not re.fullmatch(r"(?:[0-9A-Fa-f]{2}){4,}", probe):
            raise problem("an APDU in hex (whole bytes, at least CLA INS P1 P2), fields in braces")
        return v


@action("raw", RawParams)
def raw(case: CardCase, p: RawParams) -> ResponseApdu:
    s = case.s
    text = p.apdu.format(key_index=f"{s.keys[0].index:02X}", unknown_key_index=f"{s.unknown_key_index():02X}",
                         terminal=s.terminal_id.hex().upper(), aid=AID.hex().upper())
    return case.send(bytes.fromhex(text.replace(" ", "")))


@action("resend")
def resend(case: CardCase, _: None) -> ResponseApdu:
    """The last command again, byte for byte (a replay)."""
    if case.last_command is None:
        raise Inconclusive("nothing to resend")
    return case.send(case.last_command)


class TearParams(Model):
    transaction: Literal["purchase", "capp", "load"] = "purchase"
    amount: Amount = 1
    key: KeyChoice = "any"
    max_cuts: int = Field(default=64, ge=1, le=256)


@action("tear", TearParams)
def tear(case: CardCase, p: TearParams) -> ResponseApdu | None:
    """Cut the power inside the committing command at every internal write step in turn (D7).

    After each cut the card is powered again and must show the complete state before or the complete
    state after: balance, counter, EF18 newest, (CAPP: EF1A record 02 and EF1E newest), never a mix.
    """
    if "tear" not in case.s.dut.features:
        raise Inconclusive("the DUT offers no tearing inside a command")
    counter = "online_counter" if p.transaction == "load" else "offline_counter"
    items = ["balance", counter, "ef18"] + (["capp:2", "ef1e"] if p.transaction == "capp" else [])
    for cut in range(p.max_cuts):
        before = read_state(case, items)
        amount = case.value(p.amount)
        if p.transaction == "load":
            resp = initialize_load(case, InitParams(amount=amount, key=p.key))
        else:
            resp = initialize_purchase(case, InitParams(amount=amount, key=p.key, capp=p.transaction == "capp"))
            for spec in (["bus", "history"] if p.transaction == "capp" else []):
                if resp.sw == 0x9000:
                    resp = update_capp_cache(case, _record_step(spec))
        if resp.sw != 0x9000 or case.pending is None:
            raise Inconclusive(f"the {p.transaction} to tear could not start ({resp.sw:04X})")
        pend = case.pending
        case.s.dut.arm_tear(cut)
        torn = False
        try:
            resp = (credit_load(case, CreditParams()) if p.transaction == "load" else debit(case, DebitParams()))
        except ReaderError:
            torn = True
        fired = case.s.dut.disarm_tear()
        if not (torn or fired):
            return resp
        case.power_cycle()
        after = read_state(case, items)
        _judge_tear(case, p.transaction, cut, pend, {k: before[k] for k in items}, {k: after[k] for k in items})
        if case.failures:
            raise CaseFailed(case.failures[-1])
    raise CaseFailed(f"the {p.transaction} was still torn after {p.max_cuts} cut points")


def _judge_tear(case: CardCase, transaction: str, cut: int, pend: Pending, before: dict, after: dict) -> None:
    sign = 1 if transaction == "load" else -1
    counter = "online_counter" if transaction == "load" else "offline_counter"
    moved = {k for k in before if before[k] != after.get(k)}
    expected_after = {"balance": before["balance"] + sign * pend.amount, counter: before[counter] + 1}
    for k, v in expected_after.items():
        if k in moved and after.get(k) != v:
            case.fail(f"torn at write step {cut}: {k} became {after.get(k)}, neither {before[k]} nor {v}")
    whole = set(before)
    if moved and moved != whole:
        stayed = sorted(whole - moved)
        case.fail(f"torn at write step {cut} of the {transaction}: {', '.join(sorted(moved))} changed but "
                  f"{', '.join(stayed)} did not: a mix of before and after (not atomic, D7)")


class TearAnswerParams(Model):
    amount: Amount = 1
    key: KeyChoice = "any"
    max_cuts: int = Field(default=64, ge=1, le=256)


@action("tear_answer", TearAnswerParams)
def tear_answer(case: CardCase, p: TearAnswerParams) -> None:
    """Tear DEBIT at the first cut after which the purchase counts (the card committed, the answer
    was lost): what a validator recovers with GET TRANSACTION PROVE (5.5). Earlier cuts roll back."""
    if "tear" not in case.s.dut.features:
        raise Inconclusive("the DUT offers no tearing inside a command")
    for cut in range(p.max_cuts):
        before = read_state(case, ["balance"])["balance"]
        resp = initialize_purchase(case, InitParams(amount=p.amount, key=p.key))
        pend = case.pending
        if resp.sw != 0x9000 or pend is None:
            raise Inconclusive(f"the purchase to tear could not start ({resp.sw:04X})")
        seq, when = case.s.terminal_seq + 1, None
        case.s.dut.arm_tear(cut)
        try:
            debit(case, DebitParams())
        except ReaderError:
            pass
        if not case.s.dut.disarm_tear():
            raise Inconclusive("the DEBIT completed before any cut left it counted but unanswered")
        when = case.exchange[-1].command[9:16]
        case.power_cycle()
        after = read_state(case, ["balance"])["balance"]
        if after == before:
            continue
        k = pend.keys
        session = PurchaseSession.derive(k.algorithm, k.value("purchase"), pend.random, pend.counter, seq)
        tac = purchase_tac(k.algorithm, k.value("tac"), pend.amount, pend.tx_type, pend.terminal, seq, when)
        case.done["last_purchase"] = Done(pend.kind, pend.tx_type, pend.amount, pend.terminal, when,
                                          pend.counter, session.mac2(pend.amount), tac, seq)
        return None
    raise CaseFailed(f"no cut within {p.max_cuts} write steps left the DEBIT counted")

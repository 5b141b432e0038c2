"""The terminal suite's actions and checks: each a function with a pydantic parameter model.

Actions: `tap` (present a test card, let the terminal transact, take it away), `scan` (show the
terminal's scanner a QR code of a named personality, made now with ykt's TEST PKI: qr_codes), `wait` (time passes:
the suite's clock moves, or with --real-time the suite waits), `tap_each_profile` (a valid card of
every shipped issuance profile, one after the other).

Checks judge a terminal only by what the card saw (its exchange), what the card keeps (its end state)
and the outcome / clearing record (with the issuer's keys: the TAC must verify):
`outcome`, `clearing`, `sequence`, `not_sent`, `command`, `balance_delta`, `counter_delta`,
`unchanged`, `lock`, `capp_record`, `history`. Each returns what is wrong (empty: nothing); the case's
`defect` text is put in front, so a reason names the defect.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, model_validator

from keysets import Algorithm, load_tac, purchase_tac
from specs.catalog import SHELVES
from ykt_card.layouts import EF1ABus, EF1AMetro, LayoutError, by_sfi
from terminal_sim.qr import unix_seconds
from ykt_files.schema import Model, problem

from ..results import Exchanged, Inconclusive
from .context import AMOUNT_FLOWS, TapRecord, TerminalCase, command_name
from .personalities import CardParams
from .qr_codes import QR_PERSONALITIES, QrCodes
from .psams import (PsamNotSentParams, PsamSequenceParams, check_psam_not_sent, check_psam_sequence,
                    psam_exchange)

__all__ = ["ACTIONS", "CHECKS", "run_action", "run_check", "COMMAND_NAMES"]

COMMAND_NAMES = (
    "initialize", "select", "read_binary", "read_record", "get_balance", "verify", "initialize_purchase", "initialize_capp",
    "initialize_load", "update_capp_cache", "debit", "credit_load", "get_transaction_prove", "get_challenge",
    "application_block", "application_unblock", "external_authenticate", "update_binary_sm",
    "update_record_sm", "write_key", "card_block",
)
Command = Literal[COMMAND_NAMES]  # type: ignore[valid-type]
TapRef = int | Literal["last"]
Expr = int | str


# ---------------------------------------------------------------------------------------------------
# actions

class TapParams(Model):
    """Present card `card`; `amount` (fen or expression) for taxi meters and load terminals."""

    card: str
    amount: Expr | None = None


class ScanParams(Model):
    """Show the scanner a code of personality `code` (qr_codes.QR_PERSONALITIES); `amount` the fare (fen or
    expression; default the terminal's own fare)."""

    code: str
    amount: Expr | None = None

    @model_validator(mode="after")
    def _known(self) -> "ScanParams":
        if self.code not in QR_PERSONALITIES:
            raise problem(f"{self.code!r}: not a QR code personality (known: {', '.join(QR_PERSONALITIES)})",
                          at="code")
        return self


class WaitParams(Model):
    seconds: Expr


class EachParams(Model):
    algorithm: Literal["3des", "sm4", "dual"] = "dual"


def tap(ctx: TerminalCase, p: TapParams) -> TapRecord:
    card = ctx.card(p.card)
    amount = ctx.value(p.amount) if p.amount is not None else None
    flow = ctx.profile.flow
    if amount is None and flow == "taxi":
        amount = ctx.s.taxi_amount()
    if amount is None and flow == "load":
        amount = ctx.vars["load"]
    if amount is not None and flow not in AMOUNT_FLOWS and flow != "load":
        amount = None                    # stations price the ride: a terminal of this flow takes no amount
    number = len(ctx.taps) + 1
    ctx.phase = f"tap {number} ({p.card})"
    card.tap = number
    if ctx.psam is not None:
        ctx.psam.tap = number
    before = card.view()
    clock = ctx.s.clock
    now = clock.now() if "clock" in ctx.s.dut.features and ctx.s.dut.kind == "command" else (
        clock.peek() if hasattr(clock, "peek") else clock.now())
    result = ctx.s.dut.tap(card, amount, ctx.mode, now)
    record = TapRecord(number, p.card, amount, before, card.view(), result, card.seen_in(number),
                       now.strftime("%Y%m%d%H%M%S"))
    ctx.taps.append(record)
    for s in record.seen:
        ctx.exchange.append(Exchanged(ctx.phase, s.command, s.response, s.note))
    if ctx.psam is not None:
        ctx.exchange.extend(psam_exchange(ctx.psam, number, ctx.phase))
    if result.outcome is not None:
        ctx.vars[f"tap{number}"] = result.outcome
    return record


def scan(ctx: TerminalCase, p: ScanParams) -> TapRecord:
    """One scan, recorded as a tap without card (its outcome is judged by `outcome` like a tap's)."""
    amount = ctx.value(p.amount) if p.amount is not None else None
    number = len(ctx.taps) + 1
    ctx.phase = f"scan {number} ({p.code})"
    clock = ctx.s.clock
    now = clock.peek() if hasattr(clock, "peek") else clock.now()
    if ctx.qr is None:
        ctx.qr = QrCodes(ctx.s.rng.fork(f"qr codes {ctx.mode}"))
    code = ctx.qr.make(p.code, unix_seconds(now))
    result = ctx.s.dut.scan(code, amount, ctx.mode, now)
    record = TapRecord(number, f"code {p.code}", amount, None, None, result, [],  # type: ignore[arg-type]
                       now.strftime("%Y%m%d%H%M%S"))
    ctx.taps.append(record)
    if result.outcome is not None:
        ctx.vars[f"tap{number}"] = result.outcome
    return record


def wait(ctx: TerminalCase, p: WaitParams) -> None:
    seconds = ctx.value(p.seconds)
    ctx.phase = f"wait {seconds} s"
    if "clock" in ctx.s.dut.features:
        ctx.s.clock.advance(seconds)
    elif ctx.s.real_time:
        import time
        time.sleep(seconds)
    else:
        raise Inconclusive("time cannot pass for this DUT (no clock option in its ICS, no --real-time)")


def tap_each_profile(ctx: TerminalCase, p: EachParams, defect: str | None = None) -> None:
    """A valid card of every shipped issuance profile: each must be charged and its TAC must verify."""
    for name in SHELVES["card-profile"].names():
        card_name = f"{name}"
        ctx.add_card(card_name, CardParams(personality="valid", profile=name, algorithm=p.algorithm))
        record = tap(ctx, TapParams(card=card_name))
        problems = _money_problems(ctx, record, record)
        out = record.outcome
        if out is None:
            problems.insert(0, f"no outcome ({record.result.problem})")
        elif out.get("status") != "approved":
            problems.insert(0, f"status {out.get('status')!r} ({out.get('reason', 'no reason')})")
        for problem in problems:
            ctx.fail(f"{ctx.phase}: {defect + ': ' if defect else ''}card of profile {name}: {problem}")


ACTIONS: dict[str, tuple[type[Model] | None, Callable[..., Any]]] = {
    "tap": (TapParams, tap),
    "scan": (ScanParams, scan),
    "wait": (WaitParams, wait),
    "tap_each_profile": (EachParams, tap_each_profile),
}


def run_action(ctx: TerminalCase, name: str, params: Any, defect: str | None = None) -> None:
    fn = ACTIONS[name][1]
    if name == "tap_each_profile":
        fn(ctx, params, defect)
    else:
        fn(ctx, params)


# ---------------------------------------------------------------------------------------------------
# helpers over the exchange

def _money_command(record: TapRecord) -> Any:
    return record.find("debit") or record.find("credit_load")


def _init(record: TapRecord) -> Any:
    return record.find("initialize_purchase") or record.find("initialize_capp") or record.find("initialize_load")


def _card_tac(records: list[TapRecord]) -> str | None:
    """The TAC the card answered: DEBIT (TAC ‖ MAC2), CREDIT (TAC) or GET TRANSACTION PROVE (MAC2 ‖ TAC)."""
    tac = None
    for record in records:
        for s in record.seen:
            name = command_name(s.command)
            if s.sw != 0x9000:
                continue
            if name == "debit" and len(s.answer) == 8:
                tac = s.answer[0:4].hex().upper()
            elif name == "credit_load" and len(s.answer) == 4:
                tac = s.answer.hex().upper()
            elif name == "get_transaction_prove" and len(s.answer) == 8:
                tac = s.answer[4:8].hex().upper()
    return tac


def _expected_tac(ctx: TerminalCase, card_name: str, out: dict[str, Any]) -> str | None:
    """The TAC the issuer computes for this clearing record (reference 3.2, 3.3), or None if it cannot."""
    card = ctx.cards[card_name]
    try:
        alg = Algorithm.parse(str(out["algorithm"]))
        keys = card.card_keys[alg.value]
        dtk = keys.entry("tac").key.value
        amount, tx_type = int(out["amount"]), int(str(out["type"]), 16)
        terminal = bytes.fromhex(str(out["terminal_id"]))
        when = bytes.fromhex(str(out["datetime"]))
        if tx_type == 0x02:
            return load_tac(alg, dtk, int(out["balance_after"]) + int(out.get("overdraft_limit") or 0),
                            int(out["card_counter"]), amount, terminal, when).hex().upper()
        return purchase_tac(alg, dtk, amount, tx_type, terminal, int(out["terminal_seq"]), when).hex().upper()
    except (KeyError, TypeError, ValueError):
        return None


def _money_problems(ctx: TerminalCase, record: TapRecord, money: TapRecord) -> list[str]:
    """What is wrong with the clearing record of `record` for the money that moved in tap `money`."""
    out = record.outcome
    if out is None:
        return []
    problems: list[str] = []
    card = ctx.cards[money.card]
    init, cmd = _init(money), _money_command(money)
    load = init is not None and command_name(init.command) == "initialize_load"
    if out.get("card_no") != card.card_no:
        problems.append(f"card_no {out.get('card_no')!r}, the card's number is {card.card_no}")
    if str(out.get("issuer_id", "")).upper() != card.issuer_id:
        problems.append(f"issuer_id {out.get('issuer_id')!r}, the card's issuer is {card.issuer_id}")
    taps = [t for t in ctx.taps if money.number <= t.number <= record.number and t.card == money.card]
    card_tac = _card_tac(taps)
    tac = out.get("tac")
    if tac is None:
        problems.append("no TAC in a record of money that moved")
    elif card_tac is not None and str(tac).upper() != card_tac:
        problems.append(f"TAC {tac} stored, the card answered {card_tac}")
    expected = _expected_tac(ctx, money.card, out)
    if tac is not None and expected is not None and str(tac).upper() != expected:
        problems.append(f"the TAC does not verify with the issuer's keys over the record's fields (amount, "
                        f"type, terminal, sequence, date-time): expected {expected}")
    if init is not None:
        data = init.data
        if len(data) == 11:
            amount = int.from_bytes(data[1:5], "big")
            if out.get("amount") != amount:
                problems.append(f"amount {out.get('amount')}, the card was initialised for {amount}")
            if str(out.get("terminal_id", "")).upper() != data[5:11].hex().upper():
                problems.append(f"terminal_id {out.get('terminal_id')}, INITIALIZE carried {data[5:11].hex().upper()}")
        answer = init.answer
        if load and len(answer) == 16:
            version, alg = answer[6], answer[7]
        elif len(answer) == 15:
            version, alg = answer[9], answer[10]
        else:
            version = alg = None
        if version is not None and out.get("key_version") != version:
            problems.append(f"key_version {out.get('key_version')}, the card answered {version}")
        if alg is not None and out.get("algorithm") != ("sm4" if alg == 0x04 else "3des"):
            problems.append(f"algorithm {out.get('algorithm')}, the card answered algorithm ID {alg:02X}")
    counter = money.before.online_counter if load else money.before.offline_counter
    if out.get("card_counter") != counter:
        problems.append(f"card_counter {out.get('card_counter')}, the card's "
                        f"{'online' if load else 'offline'} counter before was {counter}")
    if out.get("overdraft_limit") not in (None, money.before.overdraft_limit) or (
            not load and out.get("overdraft_limit") is None):
        problems.append(f"overdraft_limit {out.get('overdraft_limit')}, the card's is {money.before.overdraft_limit}")
    if out.get("balance_before") != money.before.balance:
        problems.append(f"balance_before {out.get('balance_before')}, the card held {money.before.balance}")
    if out.get("balance_after") != money.after.balance:
        problems.append(f"balance_after {out.get('balance_after')}, the card holds {money.after.balance}")
    if cmd is not None and len(cmd.data) >= 11:
        if load:
            when = cmd.data[0:7].hex().upper()
        else:
            seq = int.from_bytes(cmd.data[0:4], "big")
            when = cmd.data[4:11].hex().upper()
            if out.get("terminal_seq") != seq:
                problems.append(f"terminal_seq {out.get('terminal_seq')}, DEBIT carried {seq}")
        if out.get("datetime") != when:
            problems.append(f"datetime {out.get('datetime')}, {'CREDIT' if load else 'DEBIT'} carried {when}")
    return problems


# ---------------------------------------------------------------------------------------------------
# checks

class OutcomeParams(Model):
    tap: TapRef = "last"
    status: str | list[str] | None = None
    not_status: list[str] | None = None
    amount: Expr | None = None
    type: str | None = None
    mac2_verified: bool | None = None
    tac: Literal["present", "absent"] | None = None
    reason: bool | None = None
    algorithm: Literal["3des", "sm4"] | None = None
    fields: dict[str, Any] = Field(default_factory=dict)


def check_outcome(ctx: TerminalCase, p: OutcomeParams) -> list[str]:
    out = ctx.outcome(p.tap)
    tap = ctx.tap_record(p.tap).number
    problems = []
    status = out.get("status")
    if p.status is not None:
        wanted = [p.status] if isinstance(p.status, str) else p.status
        if status not in wanted:
            why = f" ({out['reason']})" if out.get("reason") else ""
            problems.append(f"tap {tap}: status {status!r}{why}, expected {' or '.join(wanted)}")
    if p.not_status is not None and status in p.not_status:
        why = f" ({out['reason']})" if out.get("reason") else ""
        problems.append(f"tap {tap}: status {status!r}{why}")
    if p.amount is not None:
        want = ctx.value(p.amount)
        if out.get("amount") != want:
            problems.append(f"tap {tap}: amount {out.get('amount')}, expected {want}")
    if p.type is not None and out.get("type") != p.type:
        problems.append(f"tap {tap}: type {out.get('type')!r}, expected {p.type!r}")
    if p.mac2_verified is not None and out.get("mac2_verified") is not p.mac2_verified:
        problems.append(f"tap {tap}: mac2_verified {out.get('mac2_verified')!r}, expected {p.mac2_verified}")
    if p.tac == "present" and not out.get("tac"):
        problems.append(f"tap {tap}: no TAC")
    if p.tac == "absent" and out.get("tac"):
        problems.append(f"tap {tap}: a TAC ({out['tac']}) in a record of money that did not move")
    if p.reason and not out.get("reason"):
        problems.append(f"tap {tap}: no reason given")
    if p.algorithm is not None and out.get("algorithm") != p.algorithm:
        problems.append(f"tap {tap}: algorithm {out.get('algorithm')!r}, expected {p.algorithm}")
    for name, want in p.fields.items():
        want = ctx.value(want)
        if out.get(name) != want:
            problems.append(f"tap {tap}: {name} {out.get(name)!r}, expected {want!r}")
    return problems


CONTEXT_FIELDS = ("mode", "city", "operator", "line", "station", "vehicle", "direction", "list_version",
                  "card_type")


class ContextParams(Model):
    tap: TapRef = "last"
    fields: list[Literal[CONTEXT_FIELDS]] = Field(default_factory=lambda: list(CONTEXT_FIELDS))  # type: ignore[valid-type]


def check_context(ctx: TerminalCase, p: ContextParams) -> list[str]:
    """The record says where, by whom and under which black list it was made, and the card's type."""
    out = ctx.outcome(p.tap)
    record = ctx.tap_record(p.tap)
    problems = []
    for name in p.fields:
        want = ctx.cards[record.card].card_type if name == "card_type" else ctx.vars.get(name)
        if name == "list_version" and want is None:
            continue                                   # the suite does not know the DUT's list version
        have = out.get(name)
        if (str(have).upper() if have is not None else None) != (str(want).upper() if want is not None else None):
            problems.append(f"tap {record.number}: {name} {have!r}, expected {want!r}")
    return problems


class ClearingParams(Model):
    tap: TapRef = "last"
    money_at: int | None = None


def check_clearing(ctx: TerminalCase, p: ClearingParams) -> list[str]:
    record = ctx.tap_record(p.tap)
    ctx.outcome(p.tap)
    money = ctx.tap_record(p.money_at) if p.money_at is not None else record
    return [f"tap {record.number}: {x}" for x in _money_problems(ctx, record, money)]


def _is(name: str, wanted: str) -> bool:
    return name == wanted or (wanted == "initialize" and name.startswith("initialize"))


class SequenceParams(Model):
    tap: TapRef = "last"
    commands: list[Command] = Field(min_length=1)


def check_sequence(ctx: TerminalCase, p: SequenceParams) -> list[str]:
    record = ctx.tap_record(p.tap)
    sent = record.commands()
    pos = 0
    for wanted in p.commands:
        hit = next((i for i in range(pos, len(sent)) if _is(sent[i], wanted)), None)
        if hit is not None:
            pos = hit + 1
        else:
            return [f"tap {record.number}: the card saw {' → '.join(sent) or 'nothing'}; expected "
                    f"{' → '.join(p.commands)} in this order ({wanted} missing)"]
    return []


class NotSentParams(Model):
    tap: TapRef | Literal["all"] = "last"
    commands: list[Command] = Field(min_length=1)


def check_not_sent(ctx: TerminalCase, p: NotSentParams) -> list[str]:
    records = ctx.taps if p.tap == "all" else [ctx.tap_record(p.tap)]
    out = []
    for record in records:
        sent = record.commands()
        bad = [c for c in p.commands if any(_is(x, c) for x in sent)]
        if bad:
            out.append(f"tap {record.number}: the card received {', '.join(bad)} (it saw {' → '.join(sent)})")
    return out


class CommandParams(Model):
    tap: TapRef = "last"
    command: Command
    nth: int = Field(default=1, ge=1)
    key_index: Expr | None = None
    amount: Expr | None = None
    counter: Expr | None = None
    type: str | None = None


def check_command(ctx: TerminalCase, p: CommandParams) -> list[str]:
    record = ctx.tap_record(p.tap)
    seen = record.find(p.command, p.nth)
    if seen is None:
        return [f"tap {record.number}: no {p.command} (the card saw {' → '.join(record.commands()) or 'nothing'})"]
    data, out = seen.data, []
    where = f"tap {record.number}: {p.command}"
    if p.key_index is not None:
        want = ctx.value(p.key_index)
        if not data or data[0] != want:
            out.append(f"{where} used key index {data[0] if data else None}, expected {want}")
    if p.amount is not None:
        want = ctx.value(p.amount)
        have = int.from_bytes(data[1:5], "big") if len(data) >= 5 else None
        if have != want:
            out.append(f"{where} for amount {have}, expected {want}")
    if p.counter is not None:
        want = ctx.value(p.counter)
        have = int.from_bytes(data[0:2], "big") if len(data) >= 2 else None
        if have != want:
            out.append(f"{where} for counter {have}, expected {want}")
    if p.type is not None:
        want = str(ctx.value(p.type))
        if seen.command[3] != int(want, 16):
            out.append(f"{where} for type {seen.command[3]:02X}, expected {want}")
    return out


class DeltaParams(Model):
    card: str
    delta: Expr


def check_balance_delta(ctx: TerminalCase, p: DeltaParams) -> list[str]:
    card = ctx.card(p.card)
    want = ctx.value(p.delta)
    have = card.view().balance - ctx.initial[p.card].balance
    if have != want:
        verb = "charged" if have < 0 else "credited"
        return [f"card {p.card} was {verb} {abs(have)} fen in this case (balance {have:+d}), expected {want:+d}"]
    return []


class CounterParams(Model):
    card: str
    offline: int | None = None
    online: int | None = None


def check_counter_delta(ctx: TerminalCase, p: CounterParams) -> list[str]:
    card = ctx.card(p.card)
    now, then = card.view(), ctx.initial[p.card]
    out = []
    for name, want in (("offline", p.offline), ("online", p.online)):
        if want is None:
            continue
        have = getattr(now, f"{name}_counter") - getattr(then, f"{name}_counter")
        if have != want:
            out.append(f"card {p.card}: {name} counter moved by {have}, expected {want}")
    return out


class UnchangedParams(Model):
    card: str
    items: list[str] = Field(min_length=1)


def check_unchanged(ctx: TerminalCase, p: UnchangedParams) -> list[str]:
    card = ctx.card(p.card)
    now, then = card.view(), ctx.initial[p.card]
    out = []
    for item in p.items:
        a, b = then.item(item), now.item(item)
        if a != b:
            shown = (lambda v: v.hex().upper() if isinstance(v, bytes) else (len(v) if isinstance(v, tuple) else v))
            out.append(f"card {p.card}: {item} changed ({shown(a)} → {shown(b)})")
    return out


class LockParams(Model):
    card: str
    state: Literal["none", "temporary", "permanent"]


def check_lock(ctx: TerminalCase, p: LockParams) -> list[str]:
    have = ctx.card(p.card).view().lock
    return [] if have == p.state else [f"card {p.card}: application lock is {have}, expected {p.state}"]


class RecordParams(Model):
    card: str
    record: int = Field(ge=1, le=2)
    fields: dict[str, Any] = Field(default_factory=dict)
    times: dict[str, TapRef] = Field(default_factory=dict)
    written: bool | None = None


def _time_of(ctx: TerminalCase, ref: TapRef) -> str:
    stamp = str(ctx.outcome(ref).get("datetime", ""))
    return f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[8:10]}:{stamp[10:12]}:{stamp[12:14]}"


def _compare(ctx: TerminalCase, what: str, decoded: dict[str, Any], fields: dict[str, Any],
             times: dict[str, TapRef]) -> list[str]:
    out = []
    for name, want in fields.items():
        want = ctx.value(want)
        have = decoded.get(name, "<absent>")
        if isinstance(want, int) and isinstance(have, str) and have.isdigit():
            same = int(have) == want
        elif isinstance(want, str) and isinstance(have, str):
            same = have.upper() == want.upper()
        else:
            same = have == want
        if not same:
            out.append(f"{what}.{name} is {have!r}, expected {want!r}")
    for name, ref in times.items():
        want = _time_of(ctx, ref)
        if decoded.get(name) != want:
            out.append(f"{what}.{name} is {decoded.get(name)!r}, expected the outcome's date-time {want}")
    return out


def check_capp_record(ctx: TerminalCase, p: RecordParams) -> list[str]:
    card = ctx.card(p.card)
    raw = card.view().capp.get(p.record)
    before = ctx.initial[p.card].capp.get(p.record)
    if p.written is not None and (raw != before) != p.written:
        return [f"card {p.card}: EF1A record {p.record:02X} was {'not ' if p.written else ''}written"]
    if raw is None:
        return [f"card {p.card} has no EF1A record {p.record:02X}"]
    layout = EF1AMetro if p.record == 1 else EF1ABus
    try:
        decoded = layout.decode(raw)
    except LayoutError as exc:
        return [f"card {p.card}: EF1A record {p.record:02X} does not decode: {exc}"]
    return _compare(ctx, f"EF1A record {p.record:02X}", decoded, p.fields, p.times)


class HistoryParams(Model):
    card: str
    added: int | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    times: dict[str, TapRef] = Field(default_factory=dict)


def check_history(ctx: TerminalCase, p: HistoryParams) -> list[str]:
    card = ctx.card(p.card)
    now, then = card.view().history, ctx.initial[p.card].history
    out = []
    if p.added is not None:
        added = _added(then, now)
        if added != p.added:
            out.append(f"card {p.card}: {added} EF1E record(s) written, expected {p.added}")
    if not p.fields and not p.times:
        return out
    if not now:
        return out + [f"card {p.card}: EF1E holds no record"]
    layout = by_sfi(0x1E, layout=ctx.profile.ef1e_layout)
    try:
        decoded = layout.decode(now[0])
    except LayoutError as exc:
        return out + [f"card {p.card}: the newest EF1E record does not decode in layout "
                      f"{ctx.profile.ef1e_layout}: {exc}"]
    return out + _compare(ctx, "EF1E newest record", decoded, p.fields, p.times)


def _added(then: tuple[bytes, ...], now: tuple[bytes, ...]) -> int:
    """Records appended to a cyclic file, from its records before and after (newest first)."""
    for k in range(len(now) + 1):
        if now[k:] == then[:len(now) - k]:
            return k
    return len(now)


CHECKS: dict[str, tuple[type[Model] | None, Callable[..., list[str]]]] = {
    "outcome": (OutcomeParams, check_outcome),
    "context": (ContextParams, check_context),
    "clearing": (ClearingParams, check_clearing),
    "sequence": (SequenceParams, check_sequence),
    "not_sent": (NotSentParams, check_not_sent),
    "command": (CommandParams, check_command),
    "balance_delta": (DeltaParams, check_balance_delta),
    "counter_delta": (CounterParams, check_counter_delta),
    "unchanged": (UnchangedParams, check_unchanged),
    "lock": (LockParams, check_lock),
    "capp_record": (RecordParams, check_capp_record),
    "history": (HistoryParams, check_history),
    "psam_sequence": (PsamSequenceParams, check_psam_sequence),
    "psam_not_sent": (PsamNotSentParams, check_psam_not_sent),
}


def run_check(ctx: TerminalCase, name: str, params: Any) -> list[str]:
    return CHECKS[name][1](ctx, params)

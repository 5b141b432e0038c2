"""The wallet side of an over-the-air top-up (mobile.md §2.3-2.4): relay between the card and the host.

A phone wallet loads its secure element's T-Union card the way a ticket office loads a card (tunion.md
5.7), with the issuer's host at the other end of a network instead of a cable. Every contact:

    SELECT the application (its full AID: a phone card's is extended, M1)      card
    pending orders of this card?                                               host  {"op": "pending"}
      per order: GET TRANSACTION PROVE (02, counter + 1)                       card
        proof      → load_confirm with the proof's TAC and MAC2  ("proven")    host
        9406       → the load never happened: INITIALIZE FOR LOAD at the order's amount; at the order's
                     counter the host re-authorises the same order, CREDIT, confirm  ("completed")
    INITIALIZE FOR LOAD  80 50 00 02 0B keyIdx amount termID 10                card
    load_init (the 16-byte answer)  → order, date-time, MAC2                   host
    CREDIT FOR LOAD  80 52 00 00 0B date time MAC2 04  → TAC                   card
    load_confirm (sw, TAC)                                                     host

Losses and what becomes of them: a host that does not answer is asked again with the same bytes (the
host answers a repeat the same: ota.client, ota.host); a CREDIT whose answer is lost (the card left,
the phone died) leaves the order pending at the host, and the next contact proves it (the card was
credited) or completes it (it was not); a confirmation that does not reach the host leaves the order
pending too, and the next contact proves it. The card is credited at most once per order: CREDIT is
bound to one INITIALIZE session at one online counter.

The wallet holds no key: the card's MAC1 and TAC, and the host's MAC2, are checked by the host.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apdu.reader import Reader, ReaderError
from apdu.status import SW_WRONG_DATA, CardError, describe
from ykt_card.host.card import TUNION_AID, CardResponseError, LoadInit, TUnionCard
from ykt_card.status import SW_NO_PROOF

from terminal_sim.links import CardLink

from .client import HostClient, HostRefused, HostUnreachable

__all__ = ["Wallet", "TopUp", "Settlement", "CardSeen"]


def _sw(exc: CardError) -> str:
    return f"{exc.sw:04X} {describe(exc.sw)}"


@dataclass(frozen=True)
class CardSeen:
    """The card in the field: its number (EF15 bytes 10..19), issuer ID (EF15 0..7) and selected AID."""

    card_no: str
    issuer_id: str
    aid: str


@dataclass(frozen=True)
class Settlement:
    """What became of one pending order on this contact.

    `result`: ``proven`` (the card had been credited; its proof confirmed the order), ``completed`` (it
    had not; the order was loaded now), ``clearing`` (the card's proof is another load's: the host leaves
    the order to clearing) or ``pending`` (nothing settled this time; `reason` says why).
    """

    order: str
    amount: int
    result: str
    reason: str | None = None
    tac: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class TopUp:
    """The result of one top-up: ``loaded`` (money on the card, TAC held), ``refused`` (nothing loaded)
    or ``pending`` (the card may have been loaded; the order is settled on the next contact)."""

    status: str
    amount: int
    card_no: str | None = None
    order: str | None = None
    datetime: str | None = None
    balance_before: int | None = None
    balance_after: int | None = None
    tac: str | None = None
    reason: str | None = None
    settled: tuple[Settlement, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if v is not None and k != "settled"}
        data["settled"] = [s.to_dict() for s in self.settled]
        return data


@dataclass(frozen=True)
class _Credit:
    """One INITIALIZE → host → CREDIT → confirm, as far as it got."""

    status: str                 # loaded, refused, pending
    reason: str | None = None
    init: LoadInit | None = None
    order: str | None = None
    datetime: str | None = None
    tac: str | None = None


class Wallet:
    """A phone wallet: the card behind `card_reader`, the host behind `host`, its terminal number and the
    key index it asks the card for (D16: 01 3DES, 02 SM4)."""

    def __init__(self, card_reader: Reader, host: HostClient, terminal_id: bytes, key_index: int = 1,
                 aid: bytes = TUNION_AID) -> None:
        if not isinstance(terminal_id, (bytes, bytearray)) or len(terminal_id) != 6:
            raise ValueError("terminal_id: must be 6 bytes")
        if not 1 <= key_index <= 0xFF:
            raise ValueError(f"key_index: {key_index} out of range 1..255")
        self.card_reader = card_reader
        self.host = host
        self.terminal_id = bytes(terminal_id)
        self.key_index = key_index
        self.aid = bytes(aid)
        self._link = CardLink(card_reader)
        self._card = TUnionCard(self._link)

    def __repr__(self) -> str:
        return f"Wallet(card={self.card_reader.name!r}, terminal {self.terminal_id.hex().upper()})"

    # -- the two things a wallet does ----------------------------------------------------------------------
    def topup(self, amount: int) -> TopUp:
        """Settle this card's pending orders, then load `amount` fen onto it."""
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= 0xFFFFFFFF:
            raise ValueError(f"amount: expected a positive integer of fen, got {amount!r}")
        settled: list[Settlement] = []
        try:
            seen = self._contact()
            if isinstance(seen, str):
                return TopUp("refused", amount, reason=seen)
            settled, _ = self._settle(seen)
            credit = self._credit(seen, amount)
        except ReaderError as exc:
            return TopUp("refused", amount, reason=f"card removed before the load: nothing loaded ({exc})",
                         settled=tuple(settled))
        finally:
            self._link.disconnect()
        before = credit.init.balance if credit.init is not None else None
        return TopUp(credit.status, amount, seen.card_no, credit.order, credit.datetime, before,
                     before + amount if credit.status == "loaded" and before is not None else None, credit.tac,
                     credit.reason, tuple(settled))

    def sync(self) -> tuple[CardSeen | None, tuple[Settlement, ...], str | None]:
        """Settle this card's pending orders only: (the card, what became of each order, why not, if so)."""
        try:
            seen = self._contact()
            if isinstance(seen, str):
                return None, (), seen
            settled, why = self._settle(seen)
            return seen, tuple(settled), why
        except ReaderError as exc:
            return None, (), f"card removed: {exc}"
        finally:
            self._link.disconnect()

    # -- steps -----------------------------------------------------------------------------------------------
    def _contact(self) -> CardSeen | str:
        """Power and SELECT the application; the card, or why not."""
        card = self._card
        try:
            card.connect()
        except ReaderError as exc:
            return f"no card: {exc}"
        try:
            fci = card.select(self.aid)
            if fci.locked is not None:
                return f"application locked ({fci.sw:04X}): a top-up needs an open application"
            public = fci.public_data or card.read_public_data()
        except CardError as exc:
            return f"SELECT {self.aid.hex().upper()} refused: {_sw(exc)}"
        except CardResponseError as exc:
            return f"the card's answer is malformed: {exc.reason}"
        return CardSeen(public.card_no, public.issuer_id.upper(), fci.aid.upper())

    def _settle(self, seen: CardSeen) -> tuple[list[Settlement], str | None]:
        """Prove or complete the card's pending orders: what became of each, and why none, if so."""
        try:
            orders = self.host.call({"op": "pending", "card_no": seen.card_no})["orders"]
        except (HostRefused, HostUnreachable) as exc:
            return [], f"pending orders unknown: {exc}"
        return [self._settle_one(seen, str(o["order"]), int(o["counter"]), int(o["amount"])) for o in orders], None

    def _settle_one(self, seen: CardSeen, order: str, counter: int, amount: int) -> Settlement:
        try:
            proof = self._card.get_transaction_prove(0x02, counter + 1)
        except CardError as exc:
            if exc.sw != SW_NO_PROOF:
                return Settlement(order, amount, "pending", f"GET TRANSACTION PROVE answered {_sw(exc)}")
            return self._complete(seen, order, counter, amount)
        except CardResponseError as exc:
            return Settlement(order, amount, "pending", f"GET TRANSACTION PROVE malformed: {exc.reason}")
        tac = proof.tac.hex().upper()
        try:
            answer = self.host.call({"op": "load_confirm", "order": order, "sw": "9000", "tac": tac,
                                     "mac2": proof.mac2.hex().upper()})
        except (HostRefused, HostUnreachable) as exc:
            return Settlement(order, amount, "pending", f"proof not confirmed: {exc}", tac)
        state = answer.get("state")
        result = {"confirmed": "proven", "clearing": "clearing"}.get(str(state), "pending")
        return Settlement(order, amount, result, answer.get("reason"), tac if result == "proven" else None)

    def _complete(self, seen: CardSeen, order: str, counter: int, amount: int) -> Settlement:
        """No proof of the order's load: if the card still stands at its counter, load it now."""
        credit = self._credit(seen, amount, expect_counter=counter)
        if credit.status == "loaded":
            if credit.order != order:
                return Settlement(order, amount, "pending", f"the host answered order {credit.order} instead")
            return Settlement(order, amount, "completed", credit.reason, credit.tac)
        return Settlement(order, amount, "pending", credit.reason)

    def _credit(self, seen: CardSeen, amount: int, expect_counter: int | None = None) -> _Credit:
        """INITIALIZE FOR LOAD → load_init → CREDIT FOR LOAD → load_confirm."""
        card = self._card
        try:
            init = card.initialize_load(self.key_index, amount, self.terminal_id)
        except CardError as exc:
            why = ("the card refused the amount (zero, or above its maximum balance)" if exc.sw == SW_WRONG_DATA
                   else f"INITIALIZE FOR LOAD refused: {_sw(exc)}")
            return _Credit("refused", f"{why}: nothing loaded")
        except CardResponseError as exc:
            return _Credit("refused", f"INITIALIZE FOR LOAD malformed: {exc.reason}: nothing loaded")
        if expect_counter is not None and init.online_counter != expect_counter:
            return _Credit("refused", f"the card's online counter is {init.online_counter}, the order's "
                                      f"{expect_counter}, and it holds no proof: left for the host and clearing",
                           init)
        raw = (init.balance.to_bytes(4, "big") + init.online_counter.to_bytes(2, "big")
               + bytes((init.key_version, init.algorithm.wire_id)) + init.random + init.mac1)
        try:
            answer = self.host.call({"op": "load_init", "card_no": seen.card_no, "issuer_id": seen.issuer_id,
                                     "aid": seen.aid, "terminal_id": self.terminal_id.hex().upper(),
                                     "amount": amount, "init": raw.hex().upper()})
            order, when, mac2 = str(answer["order"]), str(answer["datetime"]), bytes.fromhex(answer["mac2"])
            host_datetime = bytes.fromhex(when)
        except HostRefused as exc:
            return _Credit("refused", f"{exc}: nothing loaded", init)
        except HostUnreachable as exc:
            return _Credit("refused", f"{exc}: nothing loaded now (an order the host took completes on the "
                                      "next contact)", init)
        except (KeyError, TypeError, ValueError):
            return _Credit("refused", "the host's answer lacks order, datetime or mac2: nothing loaded", init)
        try:
            tac = card.credit_load(host_datetime, mac2)
        except ReaderError:
            return _Credit("pending", f"no answer to CREDIT FOR LOAD: order {order} is proven or completed on the "
                                      "next contact", init, order, when)
        except CardError as exc:
            self._tell(order, f"{exc.sw:04X}")
            return _Credit("refused", f"CREDIT FOR LOAD refused: {_sw(exc)}: nothing loaded; order {order} stays "
                                      "pending until the card is seen again", init, order, when)
        except CardResponseError as exc:
            return _Credit("pending", f"CREDIT FOR LOAD answer malformed ({exc.reason}): order {order} is proven "
                                      "or completed on the next contact", init, order, when)
        tac_hex = tac.hex().upper()
        reason = self._tell(order, "9000", tac_hex)
        return _Credit("loaded", reason, init, order, when, tac_hex)

    def _tell(self, order: str, sw: str, tac: str | None = None) -> str | None:
        """load_confirm; None when the host confirmed, else what the next contact will settle."""
        message: dict[str, Any] = {"op": "load_confirm", "order": order, "sw": sw}
        if tac is not None:
            message["tac"] = tac
        try:
            answer = self.host.call(message)
        except (HostRefused, HostUnreachable) as exc:
            return f"the host was not told ({exc}): order {order} is proven on the next contact"
        if sw == "9000" and answer.get("state") != "confirmed":
            return f"the host left order {order} {answer.get('state')}: {answer.get('reason')}"
        return None

"""The issuer's over-the-air top-up host (mobile.md §2.4, M5): authenticates wallets, answers MAC2, keeps orders.

The cryptography is the load host's of the validator (terminal_sim.load_host.LoadHost: MAC1 checked
with the card's load key diversified from the TEST master, MAC2 and the TAC as tunion.md §3.2); this
module adds what a host on a network needs: wallet accounts (ota.credentials), the card's limit, and a
journal of orders (ota.journal) that makes every request idempotent and survives a kill.

The rules, by request (the idempotency key is the card and its online counter):

load_init
  * the account must be allowed the card and the terminal ID (403); the key set is chosen by the
    algorithm and key version the card answered (422 when the host holds none);
  * the same request again (a retry after a lost answer) gets the stored answer: the same order,
    date-time and MAC2, nothing new written;
  * otherwise MAC1 must verify (422): it proves the balance and the online counter the card reported;
    the balance after the load must not exceed the card's maximum balance (422);
  * a pending order at the same counter was never credited (the card's counter did not move): with the
    same account and amount it is completed: re-authorised with this request's session (a new MAC2,
    ``attempts`` + 1); else it is voided and a new order begins;
  * a confirmed order at the same counter cannot meet a valid MAC1 again (409).
load_confirm
  * sw 9000 with a TAC that verifies confirms the order (money on the card); the same confirmation again
    answers the same; with a proof's MAC2 that is not the order's, the load at the next counter was
    another one: the order goes to ``clearing``;
  * another sw leaves the order pending (the card answered an error, but only a later INITIALIZE at the
    same counter proves nothing was credited); the sw is kept.
pending
  * this account's pending orders of the card, oldest first.

A wallet that never hears back is safe: a retried request is answered the same, and a card whose answer
was lost is settled on its next contact (ota.wallet). No key value leaves `LoadHost`.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

from keysets import Algorithm, KeySet
from terminal_sim.load_host import LoadHost, LoadRefused, LoadRequest
from ykt_card.clock import Clock, SystemClock

from .credentials import Credentials, WalletAccount
from .journal import HostJournal, Order
from .protocol import LoadConfirm, LoadInit, PendingQuery, ProtocolError, parse_request

__all__ = ["TopUpHost", "HostRefusal", "DEFAULT_MAX_BALANCE"]

DEFAULT_MAX_BALANCE = 100_000
"""The card's maximum balance the host enforces by default: the reference card profile's (1,000 yuan)."""


class HostRefusal(Exception):
    """A request refused: the HTTP status and a one-line reason (never a key)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _stamp(clock: Clock) -> str:
    return clock.now().strftime("%Y%m%d%H%M%S")


class TopUpHost:
    """The host: TEST master key sets, the wallet accounts, the order journal, its clock and card limit."""

    def __init__(self, keysets: KeySet | Sequence[KeySet], credentials: Credentials, journal: HostJournal,
                 clock: Clock | None = None, max_balance: int = DEFAULT_MAX_BALANCE) -> None:
        if isinstance(max_balance, bool) or not isinstance(max_balance, int) or not 0 < max_balance <= 0x7FFFFFFF:
            raise ValueError(f"max_balance: {max_balance!r} out of range 1..2147483647")
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.load_host = LoadHost(keysets, self.clock)
        self.keysets = (keysets,) if isinstance(keysets, KeySet) else tuple(keysets)
        self.credentials = credentials
        self.journal = journal
        self.max_balance = max_balance

    def __repr__(self) -> str:
        return f"TopUpHost({self.load_host!r}, {len(self.credentials)} accounts, max balance {self.max_balance})"

    # -- the one entry point of both transports ---------------------------------------------------------
    def respond(self, account: str | None, signature: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
        """Authenticate and answer one request: (HTTP status, JSON object)."""
        wallet = self.credentials.authenticate(account, body, signature)
        if wallet is None:
            return 401, {"error": "authentication failed: unknown account or bad signature"}
        try:
            return 200, self.handle(wallet, parse_request(body))
        except ProtocolError as exc:
            return 400, {"error": str(exc)}
        except HostRefusal as exc:
            return exc.status, {"error": exc.reason}

    def handle(self, wallet: WalletAccount, request: LoadInit | LoadConfirm | PendingQuery) -> dict[str, Any]:
        if isinstance(request, LoadInit):
            return self._load_init(wallet, request)
        if isinstance(request, LoadConfirm):
            return self._load_confirm(wallet, request)
        return self._pending(wallet, request)

    # -- load_init ---------------------------------------------------------------------------------------
    def _keyset(self, algorithm: Algorithm, version: int) -> KeySet:
        for ks in self.keysets:
            if ks.algorithm is algorithm and ks.entry("load").version == version:
                return ks
        raise HostRefusal(422, f"no {algorithm.value} load key with version {version:02X} at this host")

    def _request(self, m: LoadInit) -> LoadRequest:
        init = m.init
        try:
            algorithm = Algorithm.from_wire(init[7])
        except ValueError as exc:
            raise HostRefusal(422, f"init: {exc}") from None
        ks = self._keyset(algorithm, init[6])
        return LoadRequest(issuer_id=bytes.fromhex(m.issuer_id), serial8=m.serial8, key_index=ks.entry("load").index,
                           key_version=init[6], algorithm=algorithm, balance=int.from_bytes(init[0:4], "big"),
                           online_counter=int.from_bytes(init[4:6], "big"), random=init[8:12], mac1=init[12:16],
                           amount=m.amount, terminal_id=bytes.fromhex(m.terminal_id))

    def _load_init(self, wallet: WalletAccount, m: LoadInit) -> dict[str, Any]:
        if not wallet.may_load(m.card_no):
            raise HostRefusal(403, f"account {wallet.id} may not top up card {m.card_no}")
        if m.terminal_id != wallet.terminal_id:
            raise HostRefusal(403, f"terminal_id {m.terminal_id} is not account {wallet.id}'s terminal")
        req = self._request(m)
        key = hashlib.sha256("|".join((m.card_no, m.issuer_id, m.aid.hex().upper(), m.terminal_id, str(m.amount),
                                       m.init.hex().upper())).encode("ascii")).hexdigest()
        with self.journal.transaction() as db:
            live = self.journal.live(db, m.card_no, req.online_counter)
            if live is not None and live.request == key and live.account == wallet.id:
                return live.answer()                       # a retry: the same order, date-time and MAC2
            if live is not None and live.state != "pending":
                raise HostRefusal(409, f"card {m.card_no} at online counter {req.online_counter}: order "
                                       f"{live.order} is already {live.state}")
            try:
                auth = self.load_host.authorise(req)       # MAC1: the card's balance and counter are genuine
            except LoadRefused as exc:
                raise HostRefusal(422, exc.reason) from None
            if req.balance + req.amount > self.max_balance:
                raise HostRefusal(422, f"amount {req.amount}: balance {req.balance} + {req.amount} would exceed the "
                                       f"card's maximum balance {self.max_balance}")
            fields = dict(account=wallet.id, card_no=m.card_no, issuer_id=m.issuer_id, aid=m.aid.hex().upper(),
                          terminal_id=m.terminal_id, counter=req.online_counter, amount=req.amount,
                          balance=req.balance, key_index=req.key_index, key_version=req.key_version,
                          algorithm=req.algorithm.value, init=m.init.hex().upper(), request=key,
                          datetime=auth.host_datetime.hex(), mac2=auth.mac2.hex().upper())
            if live is not None and live.account == wallet.id and live.amount == req.amount:
                order = self.journal.update(db, live, **{k: fields[k] for k in (
                    "aid", "balance", "key_index", "key_version", "algorithm", "init", "request", "datetime",
                    "mac2")}, attempts=live.attempts + 1, last_sw=None)
                return order.answer()                      # completed: the same order, a new session
            if live is not None:
                self.journal.update(db, live, state="void", closed=_stamp(self.clock),
                                    reason=f"never credited: the card initialised another load at online counter "
                                           f"{req.online_counter}")
            order = self.journal.insert(db, **fields, state="pending", created=_stamp(self.clock))
            return order.answer()

    # -- load_confirm ------------------------------------------------------------------------------------
    def _load_confirm(self, wallet: WalletAccount, m: LoadConfirm) -> dict[str, Any]:
        with self.journal.transaction() as db:
            order = self.journal.get(db, m.order)
            if order is None or order.account != wallet.id:
                raise HostRefusal(404, f"no order {m.order} of account {wallet.id}")
            if order.state == "confirmed":
                if m.sw == "9000" and hmac.compare_digest(m.tac or "", order.tac or ""):
                    return {"order": order.order, "state": "confirmed"}
                raise HostRefusal(409, f"order {order.order} is confirmed with another TAC")
            if order.state in ("void", "clearing"):
                return {"order": order.order, "state": order.state, "reason": order.reason}
            if m.sw != "9000":
                self.journal.update(db, order, last_sw=m.sw)
                return {"order": order.order, "state": "pending",
                        "reason": f"the card answered {m.sw}: the order stays pending until the card is seen again"}
            if m.mac2 is not None and not hmac.compare_digest(m.mac2, order.mac2):
                reason = (f"the card's load at online counter {order.counter + 1} carries another MAC2: left for "
                          "clearing")
                self.journal.update(db, order, state="clearing", reason=reason, closed=_stamp(self.clock))
                return {"order": order.order, "state": "clearing", "reason": reason}
            if not self._tac_verifies(order, bytes.fromhex(m.tac or "")):
                raise HostRefusal(422, f"order {order.order}: the TAC does not verify; the order stays pending")
            self.journal.update(db, order, state="confirmed", tac=m.tac, last_sw="9000", closed=_stamp(self.clock))
            return {"order": order.order, "state": "confirmed"}

    def _tac_verifies(self, order: Order, tac: bytes) -> bool:
        init = bytes.fromhex(order.init)
        req = LoadRequest(issuer_id=bytes.fromhex(order.issuer_id), serial8=bytes.fromhex(order.card_no[4:]),
                          key_index=order.key_index, key_version=order.key_version,
                          algorithm=Algorithm.parse(order.algorithm), balance=order.balance,
                          online_counter=order.counter, random=init[8:12], mac1=init[12:16], amount=order.amount,
                          terminal_id=bytes.fromhex(order.terminal_id))
        return self.load_host.verify_tac(req, bytes.fromhex(order.datetime), tac)

    # -- pending -------------------------------------------------------------------------------------------
    def _pending(self, wallet: WalletAccount, m: PendingQuery) -> dict[str, Any]:
        orders = self.journal.pending(m.card_no, wallet.id)
        return {"orders": [{"order": o.order, "counter": o.counter, "amount": o.amount, "datetime": o.datetime}
                           for o in orders]}

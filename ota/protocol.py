"""The OTA top-up protocol (mobile.md §2.4, M5): JSON objects between a wallet and the issuer's host.

Requests (one JSON object each, ``op`` first):

    load_init     {"op": "load_init", "card_no", "issuer_id", "aid", "terminal_id", "amount", "init"}
                  → {"order", "datetime": "YYYYMMDDhhmmss", "mac2": "<8 hex>"}
    load_confirm  {"op": "load_confirm", "order", "sw", "tac"[, "mac2"]}
                  → {"order", "state"[, "reason"]}
    pending       {"op": "pending", "card_no"}
                  → {"orders": [{"order", "counter", "amount", "datetime"}, …]}

``init`` is the 16-byte answer of INITIALIZE FOR LOAD (balance ‖ online counter ‖ key version ‖
algorithm ‖ random ‖ MAC1) in hex; ``card_no`` the 20 digits of EF15 bytes 10..19; ``issuer_id`` EF15
bytes 0..7 (16 hex); ``aid`` the selected application (5..16 bytes, RID A000000632: phone cards carry
extended AIDs, M1); ``terminal_id`` the wallet's terminal number (12 hex); ``amount`` in fen.
``load_confirm`` reports what the card answered CREDIT FOR LOAD (``sw``, and the ``tac`` with 9000), or
the proof read with GET TRANSACTION PROVE on a later contact (``sw`` 9000, ``tac`` and the proof's
``mac2``). ``pending`` is this project's addition to §2.4: it tells a wallet on its next contact which of
its orders for the card are unconfirmed, so that it can prove or complete them (step 4).

Every refusal is ``{"error": "<one line>"}`` with an HTTP status: 400 a malformed request, 401 an
unknown account or a bad signature, 403 a card or terminal the account may not use, 404 an unknown
order, 409 a conflict with the journal, 413 a body too large, 422 a refusal (MAC1, card limit, TAC, key).
Hex is accepted in either case and answered upper case.
"""
from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import model_validator

from ykt_files.schema import DocumentError, Digits, HexBytes, HexString, IntRange, Model, problem, validate

__all__ = ["ProtocolError", "LoadInit", "LoadConfirm", "PendingQuery", "Request", "parse_request", "encode",
           "TUNION_RID", "MAX_BODY"]

TUNION_RID = bytes.fromhex("A000000632")
MAX_BODY = 16 * 1024
"""The largest request body the host reads (a load_init is under 300 bytes)."""


class ProtocolError(DocumentError):
    """A request refused as malformed: `<op>: <field>: <reason>`."""


class LoadInit(Model):
    op: Literal["load_init"]
    card_no: Digits(20)
    issuer_id: HexString(16)
    aid: HexBytes(lo=5, hi=16)
    terminal_id: HexString(12)
    amount: IntRange(1, 0xFFFFFFFF)
    init: HexBytes(16)

    @model_validator(mode="after")
    def _tunion(self) -> "LoadInit":
        if not self.aid.startswith(TUNION_RID):
            raise problem(f"{self.aid.hex().upper()} is not a T-Union application (RID A000000632)", at="aid")
        return self

    @property
    def serial8(self) -> bytes:
        """EF15 bytes 12..19: the last 16 digits of the card number (the second diversification factor)."""
        return bytes.fromhex(self.card_no[4:])


class LoadConfirm(Model):
    op: Literal["load_confirm"]
    order: Digits(12)
    sw: HexString(4)
    tac: HexString(8) | None = None
    mac2: HexString(8) | None = None

    @model_validator(mode="after")
    def _tac_with_9000(self) -> "LoadConfirm":
        if self.sw == "9000" and self.tac is None:
            raise problem("required when the card answered 9000", at="tac")
        if self.sw != "9000" and (self.tac is not None or self.mac2 is not None):
            raise problem(f"the card answered {self.sw}: it gave no TAC", at="tac")
        return self


class PendingQuery(Model):
    op: Literal["pending"]
    card_no: Digits(20)


Request = LoadInit | LoadConfirm | PendingQuery
_OPS: dict[str, type[Model]] = {"load_init": LoadInit, "load_confirm": LoadConfirm, "pending": PendingQuery}


def parse_request(body: bytes) -> Request:
    """One request body → its message; ProtocolError naming the op and the field otherwise."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError("request", None, f"not a JSON object: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("request", None, f"expected a JSON object, got {type(data).__name__}")
    op = data.get("op")
    model = _OPS.get(op) if isinstance(op, str) else None
    if model is None:
        raise ProtocolError("request", "op", f"expected one of {', '.join(_OPS)}, got {op!r}")
    return validate(model, data, op, ProtocolError)  # type: ignore[return-value]


def encode(message: dict[str, Any]) -> bytes:
    """The bytes of a message on the wire: compact JSON, keys in the given order, UTF-8."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

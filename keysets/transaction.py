"""The exact MAC1, MAC2 and TAC inputs of load and purchase (reference 3.2, 3.3), in one place.

A card, a PSAM, a load host, a terminal and a clearing centre all build these byte strings from these
functions, so a field order mistake cannot hide in one of them and not the others.
"""
from __future__ import annotations

from dataclasses import dataclass

from .algorithm import Algorithm
from .derive import load_session_key, purchase_session_key, tac_key
from .mac import mac, verify_mac

TYPE_LOAD = 0x02
TYPE_PURCHASE = 0x06
TYPE_CAPP_PURCHASE = 0x09
PURCHASE_TYPES = (TYPE_PURCHASE, TYPE_CAPP_PURCHASE)


def _u32(value: int, name: str) -> bytes:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{name} {value} does not fit 4 unsigned bytes")
    return value.to_bytes(4, "big")


def _terminal(terminal_id: bytes) -> bytes:
    if len(terminal_id) != 6:
        raise ValueError(f"terminal ID must be 6 bytes, got {len(terminal_id)}")
    return terminal_id


def _datetime(dt: bytes) -> bytes:
    if len(dt) != 7:
        raise ValueError(f"date-time must be 7 BCD bytes YYYYMMDDhhmmss, got {len(dt)}")
    return dt


def _type(tx_type: int, allowed: tuple[int, ...]) -> bytes:
    if tx_type not in allowed:
        raise ValueError(f"transaction type {tx_type:02X} is not one of {', '.join(f'{t:02X}' for t in allowed)}")
    return bytes([tx_type])


# --- load (圈存), type 02 -------------------------------------------------------------------------

def load_mac1_input(balance_before: int, amount: int, terminal_id: bytes) -> bytes:
    """balance before(4) ‖ amount(4) ‖ 02 ‖ terminal ID(6)."""
    return _u32(balance_before, "balance") + _u32(amount, "amount") + bytes([TYPE_LOAD]) + _terminal(terminal_id)


def load_mac2_input(amount: int, terminal_id: bytes, host_datetime: bytes) -> bytes:
    """amount(4) ‖ 02 ‖ terminal ID(6) ‖ host date(4) ‖ host time(3)."""
    return _u32(amount, "amount") + bytes([TYPE_LOAD]) + _terminal(terminal_id) + _datetime(host_datetime)


def load_tac_input(balance_after: int, online_counter_before: int, amount: int, terminal_id: bytes, host_datetime: bytes) -> bytes:
    """balance after(4) ‖ online counter before(2) ‖ amount(4) ‖ 02 ‖ terminal ID(6) ‖ date-time(7)."""
    return (
        _u32(balance_after, "balance")
        + online_counter_before.to_bytes(2, "big")
        + _u32(amount, "amount")
        + bytes([TYPE_LOAD])
        + _terminal(terminal_id)
        + _datetime(host_datetime)
    )


# --- purchase (消费), types 06 and 09 ---------------------------------------------------------------

def purchase_mac1_input(amount: int, tx_type: int, terminal_id: bytes, tx_datetime: bytes) -> bytes:
    """amount(4) ‖ type ‖ terminal ID(6) ‖ date(4) ‖ time(3)."""
    return _u32(amount, "amount") + _type(tx_type, PURCHASE_TYPES) + _terminal(terminal_id) + _datetime(tx_datetime)


def purchase_mac2_input(amount: int) -> bytes:
    """amount(4): MAC2 of a purchase covers only the amount."""
    return _u32(amount, "amount")


def purchase_tac_input(amount: int, tx_type: int, terminal_id: bytes, terminal_seq: int, tx_datetime: bytes) -> bytes:
    """amount(4) ‖ type ‖ terminal ID(6) ‖ terminal sequence(4) ‖ date(4) ‖ time(3)."""
    return (
        _u32(amount, "amount")
        + _type(tx_type, PURCHASE_TYPES)
        + _terminal(terminal_id)
        + _u32(terminal_seq, "terminal sequence")
        + _datetime(tx_datetime)
    )


# --- sessions: the keys and MACs of one transaction ------------------------------------------------

@dataclass(frozen=True, repr=False)
class LoadSession:
    """What card and load host share for one load: SESLK and the computations under it."""

    algorithm: Algorithm
    session_key: bytes

    @classmethod
    def derive(cls, algorithm: Algorithm, dlk: bytes, random4: bytes, online_counter: int) -> "LoadSession":
        return cls(algorithm, load_session_key(algorithm, dlk, random4, online_counter))

    def mac1(self, balance_before: int, amount: int, terminal_id: bytes) -> bytes:
        return mac(self.algorithm, self.session_key, load_mac1_input(balance_before, amount, terminal_id))

    def mac2(self, amount: int, terminal_id: bytes, host_datetime: bytes) -> bytes:
        return mac(self.algorithm, self.session_key, load_mac2_input(amount, terminal_id, host_datetime))

    def verify_mac2(self, received: bytes, amount: int, terminal_id: bytes, host_datetime: bytes) -> bool:
        return verify_mac(self.algorithm, self.session_key, load_mac2_input(amount, terminal_id, host_datetime), received)

    def __repr__(self) -> str:
        return f"LoadSession({self.algorithm.value}, key=<hidden>)"


@dataclass(frozen=True, repr=False)
class PurchaseSession:
    """What card and PSAM share for one purchase: SESPK and the computations under it."""

    algorithm: Algorithm
    session_key: bytes

    @classmethod
    def derive(cls, algorithm: Algorithm, dpk: bytes, random4: bytes, offline_counter: int, terminal_seq: int) -> "PurchaseSession":
        return cls(algorithm, purchase_session_key(algorithm, dpk, random4, offline_counter, terminal_seq))

    def mac1(self, amount: int, tx_type: int, terminal_id: bytes, tx_datetime: bytes) -> bytes:
        return mac(self.algorithm, self.session_key, purchase_mac1_input(amount, tx_type, terminal_id, tx_datetime))

    def verify_mac1(self, received: bytes, amount: int, tx_type: int, terminal_id: bytes, tx_datetime: bytes) -> bool:
        data = purchase_mac1_input(amount, tx_type, terminal_id, tx_datetime)
        return verify_mac(self.algorithm, self.session_key, data, received)

    def mac2(self, amount: int) -> bytes:
        return mac(self.algorithm, self.session_key, purchase_mac2_input(amount))

    def verify_mac2(self, received: bytes, amount: int) -> bool:
        return verify_mac(self.algorithm, self.session_key, purchase_mac2_input(amount), received)

    def __repr__(self) -> str:
        return f"PurchaseSession({self.algorithm.value}, key=<hidden>)"


def load_tac(algorithm: Algorithm, dtk: bytes, balance_after: int, online_counter_before: int, amount: int,
             terminal_id: bytes, host_datetime: bytes) -> bytes:
    """The TAC a card returns for a load; the issuer recomputes it from the clearing record."""
    data = load_tac_input(balance_after, online_counter_before, amount, terminal_id, host_datetime)
    return mac(algorithm, tac_key(algorithm, dtk), data)


def purchase_tac(algorithm: Algorithm, dtk: bytes, amount: int, tx_type: int, terminal_id: bytes,
                 terminal_seq: int, tx_datetime: bytes) -> bytes:
    """The TAC a card returns for a purchase (06) or CAPP purchase (09)."""
    data = purchase_tac_input(amount, tx_type, terminal_id, terminal_seq, tx_datetime)
    return mac(algorithm, tac_key(algorithm, dtk), data)


def secure_messaging_iv(algorithm: Algorithm, challenge: bytes) -> bytes:
    """IV of a secure-messaging MAC: the card challenge (4 or 8 bytes) padded with zeros to a block."""
    if len(challenge) > algorithm.block_size:
        raise ValueError(f"challenge of {len(challenge)} bytes is longer than one {algorithm.value} block")
    return challenge + bytes(algorithm.block_size - len(challenge))


def secure_messaging_mac(algorithm: Algorithm, key: bytes, challenge: bytes, command_without_mac: bytes) -> bytes:
    """MAC of a secure-messaging command (APPLICATION BLOCK, UPDATE BINARY/RECORD, WRITE KEY...).

    The MAC covers the header, the Lc that counts the MAC, and the data, with IV = challenge ‖ 0…
    """
    return mac(algorithm, key, command_without_mac, secure_messaging_iv(algorithm, challenge))

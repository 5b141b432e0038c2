"""The host side of the PSAM: every command of reference section 4, typed, through `apdu.t0.Channel`.

Validators, recovery and tools talk to a PSAM (virtual or real) only through `Psam`, so the PSAM's APDU
bytes live in this one module. The channel deals with T=0 (61xx → GET RESPONSE, 6Cxx → resend); a
refusal raises `CardError` with the status word; an answer of the wrong shape raises
`CardResponseError` naming the command. Inputs are checked before anything is sent.

Two helpers chain 801A and 80FA the way terminals do: `recompute_purchase_tac` (reference 4.4, flash-card
recovery and clearing checks) and `block_mac` (the MAC of APPLICATION BLOCK, reference 5.1 step 4).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apdu.command import CommandApdu
from apdu.reader import Reader
from apdu.t0 import Channel
from keysets import Algorithm, pad80, purchase_tac_input

from ykt_card.host.card import CardResponseError
from ykt_card.host.args import bytes_of, int_in
from ykt_card.layouts import PsamEF15, PsamEF16, PsamEF17
from ykt_card.layouts.names import (KEY_TYPE_APP_BLOCK, KEY_TYPE_APP_UNBLOCK, KEY_TYPE_TAC, PSAM_DF_TUNION,
                                    PSAM_MF)

__all__ = ["Psam", "PsamPurchase", "CardResponseError", "usage_byte"]


@dataclass(frozen=True)
class PsamPurchase:
    """The answer of INIT SAM FOR PURCHASE: what DEBIT FOR PURCHASE carries to the card."""

    terminal_seq: int
    mac1: bytes


def usage_byte(levels: int, key_type: int) -> int:
    """The 801A key-usage byte: levels in the high 3 bits, key type in the low 5 (reference 4.2)."""
    _int(levels, "levels", 0, 7)
    _int(key_type, "key_type", 0, 0x1F)
    return (levels << 5) | key_type


_int = int_in
_bytes = bytes_of


class Psam:
    """A PSAM in a reader. Call `reader.connect()` first (a PSAM answers after its ATR)."""

    def __init__(self, reader: Reader) -> None:
        self.channel = Channel(reader)

    def _expect(self, command: str, data: bytes, length: int) -> bytes:
        if len(data) != length:
            raise CardResponseError(command, f"expected {length} bytes, got {len(data)}", len(data), length)
        return data

    # -- files -----------------------------------------------------------------------------------
    def select_mf(self) -> None:
        """SELECT MF `00 A4 00 00 02 3F00` (after a reset the MF is current anyway)."""
        self.channel.check(CommandApdu(0x00, 0xA4, 0x00, 0x00, PSAM_MF.to_bytes(2, "big")))

    def select_tunion(self) -> None:
        """SELECT the T-Union DF `00 A4 00 00 02 8011`: needed before any purse command."""
        self.channel.check(CommandApdu(0x00, 0xA4, 0x00, 0x00, PSAM_DF_TUNION.to_bytes(2, "big")))

    def _read(self, command: str, sfi: int, length: int) -> bytes:
        data = self.channel.check(CommandApdu(0x00, 0xB0, 0x80 | sfi, 0x00, le=length))
        return self._expect(command, data, length)

    def read_public(self) -> bytes:
        """MF EF15 (14 bytes: serial ‖ versions), decode with ykt_card.layouts.psam.PsamEF15."""
        return self._read("READ BINARY PSAM EF15", PsamEF15.sfi, PsamEF15.size)

    def read_terminal_id(self) -> bytes:
        """MF EF16 `00 B0 96 00 06`: the 6-byte terminal number of every purchase."""
        return self._read("READ BINARY PSAM EF16", PsamEF16.sfi, PsamEF16.size)

    def read_app_data(self) -> bytes:
        """DF 8011 EF17 (25 bytes: key index, issuer, receiver, dates)."""
        return self._read("READ BINARY PSAM EF17", PsamEF17.sfi, PsamEF17.size)

    def read_key_index(self) -> int:
        """DF 8011 EF17 byte 0 `00 B0 97 00 01`: the purchase key index for INITIALIZE FOR PURCHASE."""
        return self._read("READ BINARY PSAM EF17", PsamEF17.sfi, PsamEF17.field_size("key_index"))[0]

    def get_challenge(self, length: int = 4) -> bytes:
        """GET CHALLENGE `00 84 00 00 04|08`."""
        if length not in (4, 8):
            raise ValueError(f"challenge length must be 4 or 8, got {length}")
        data = self.channel.check(CommandApdu(0x00, 0x84, 0x00, 0x00, le=length))
        return self._expect("GET CHALLENGE", data, length)

    # -- purchase --------------------------------------------------------------------------------
    def init_purchase(self, random4: bytes, offline_counter: int, amount: int, tx_type: int,
                      tx_datetime: bytes, key_version: int, algorithm_id: int, serial8: bytes,
                      issuer_id8: bytes | None) -> PsamPurchase:
        """INIT SAM FOR PURCHASE `80 70 00 00 24` (`1C` without the issuer factor), Le 08.

        random4, offline_counter, key_version, algorithm_id: from the card's INITIALIZE response;
        tx_datetime: 7 BCD bytes; serial8 = EF15[12..19], issuer_id8 = EF15[0..7] (D2).
        """
        data = (_bytes(random4, "random4", 4) + _int(offline_counter, "offline_counter", 0, 0xFFFF).to_bytes(2, "big")
                + _int(amount, "amount", 0, 0xFFFFFFFF).to_bytes(4, "big")
                + bytes((_int(tx_type, "tx_type", 0, 0xFF),)) + _bytes(tx_datetime, "tx_datetime", 7)
                + bytes((_int(key_version, "key_version", 0, 0xFF), _int(algorithm_id, "algorithm_id", 0, 0xFF)))
                + _bytes(serial8, "serial8", 8)
                + (b"" if issuer_id8 is None else _bytes(issuer_id8, "issuer_id8", 8)))
        answer = self.channel.check(CommandApdu(0x80, 0x70, 0x00, 0x00, data, le=8))
        answer = self._expect("INIT SAM FOR PURCHASE", answer, 8)
        return PsamPurchase(int.from_bytes(answer[:4], "big"), answer[4:])

    def verify_mac2(self, mac2: bytes) -> None:
        """CREDIT SAM FOR PURCHASE `80 72 00 00 04 MAC2`; a wrong MAC2 raises CardError(9302)."""
        self.channel.check(CommandApdu(0x80, 0x72, 0x00, 0x00, _bytes(mac2, "mac2", 4)))

    # -- general crypto --------------------------------------------------------------------------
    def diversify(self, usage: int, version: int, factor: bytes) -> None:
        """DES INIT `80 1A usage version Lc factor`: factor = serial8 (1 level) or serial8 ‖ issuer8."""
        _int(usage, "usage", 0, 0xFF)
        _int(version, "version", 0, 0xFF)
        self.channel.check(CommandApdu(0x80, 0x1A, usage, version, _bytes(factor, "factor", 8, 16)))

    def mac_with_iv(self, iv: bytes, data: bytes) -> bytes:
        """DES COMPUTE `80 FA 05 00 Lc IV ‖ data` under the current key: the 4-byte MAC.

        The PSAM pads only when `data` is not a whole number of blocks; pre-pad with 80 00.. as the
        reference's callers do.
        """
        body = _bytes(iv, "iv", 8, 16) + _bytes(data, "data")
        if not data or len(body) > 255:
            raise ValueError(f"data must be 1..{255 - len(iv)} bytes, got {len(data)}")
        answer = self.channel.check(CommandApdu(0x80, 0xFA, 0x05, 0x00, body, le=4))
        return self._expect("DES COMPUTE (MAC)", answer, 4)

    def encrypt(self, data: bytes) -> bytes:
        """DES COMPUTE `80 FA 00 00 Lc data`: ECB encryption under the current key (padded if unaligned)."""
        data = _bytes(data, "data")
        if not 1 <= len(data) <= 248:
            raise ValueError(f"data must be 1..248 bytes, got {len(data)}")
        answer = self.channel.check(CommandApdu(0x80, 0xFA, 0x00, 0x00, data, le=256))
        if not answer or len(answer) % 8:
            raise CardResponseError("DES COMPUTE (encrypt)", "cipher text is not whole blocks", len(answer))
        return answer

    def _factor(self, serial8: bytes, issuer_id8: bytes | None) -> tuple[int, bytes]:
        factor = _bytes(serial8, "serial8", 8)
        if issuer_id8 is None:
            return 1, factor
        return 2, factor + _bytes(issuer_id8, "issuer_id8", 8)

    def recompute_purchase_tac(self, serial8: bytes, issuer_id8: bytes | None, amount: int, tx_type: int,
                               terminal_id: bytes, terminal_seq: int, tx_datetime: bytes, *,
                               algorithm: Algorithm, key_index: int = 0) -> bytes:
        """The TAC of a purchase, recomputed by the PSAM (reference 4.4): `801A 44 P2 10 serial‖issuer`,
        then `80FA 05 00 Lc 00..00 ‖ TAC input ‖ 80 00..`.

        algorithm: the card's (the TAC record's) algorithm, which fixes the block size; key_index: 801A
        P2 (00 = the PSAM's default key set).
        """
        levels, factor = self._factor(serial8, issuer_id8)
        message = pad80(purchase_tac_input(amount, tx_type, terminal_id, terminal_seq, tx_datetime),
                        algorithm.block_size)
        self.diversify(usage_byte(levels, KEY_TYPE_TAC), _int(key_index, "key_index", 0, 0xFF), factor)
        return self.mac_with_iv(bytes(algorithm.block_size), message)

    def block_mac(self, serial8: bytes, issuer_id8: bytes | None, challenge: bytes, *,
                  algorithm: Algorithm, permanent: bool = False, unblock: bool = False,
                  key_index: int = 0) -> bytes:
        """The MAC of APPLICATION BLOCK `84 1E 00 P2 04` (or UNBLOCK `84 18 00 00 04`, `unblock=True`).

        `801A (levels|09) P2 serial‖issuer` selects the card's block key (its `app_block`, else its
        `app_maintenance`, the key the card checks), then `80FA 05 00 Lc challenge‖0.. ‖ header ‖ 80 00..`.
        challenge: the card's GET CHALLENGE answer (4 or 8 bytes).
        """
        challenge = _bytes(challenge, "challenge", 4, 8)
        levels, factor = self._factor(serial8, issuer_id8)
        if unblock:
            key_type, header = KEY_TYPE_APP_UNBLOCK, bytes.fromhex("8418000004")
        else:
            key_type, header = KEY_TYPE_APP_BLOCK, bytes((0x84, 0x1E, 0x00, 0x01 if permanent else 0x00, 0x04))
        bs = algorithm.block_size
        self.diversify(usage_byte(levels, key_type), _int(key_index, "key_index", 0, 0xFF), factor)
        return self.mac_with_iv(challenge + bytes(bs - len(challenge)), pad80(header, bs))

    def __repr__(self) -> str:
        return f"Psam({self.channel.name!r})"

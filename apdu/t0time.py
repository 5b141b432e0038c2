"""How long one APDU takes on a contact link with T=0 (ISO/IEC 7816-3): characters, procedure bytes, GET RESPONSE.

Why: a validator's PSAM sits on its own contact link, often at the default 9600 bit/s, and a MAC1 there costs
milliseconds of the tap's budget before the card even sees DEBIT. The host side records only APDUs; this module
prices them as the T=0 TPDUs that carried them.

Model: each character is 10 etu (start bit, 8 data bits, parity) plus the guard time (2 etu at N = 0: 12 etu between
leading edges, ISO/IEC 7816-3:2006 §7.2); where the direction changes, leading edges are at least 16 etu apart
(§7.2), 4 etu more than a character. A command with data is header (5 characters), the INS procedure byte, the data,
then the status word; a case-4 command whose answer carries data is answered `61xx` and fetched with GET RESPONSE
(header, procedure byte, data, status word) (§10.3). One etu is F/D clock cycles (§7.1).
"""
from __future__ import annotations

from dataclasses import dataclass

from apdu.command import ApduError, CommandApdu

__all__ = ["T0Link", "DEFAULT_CLOCK_HZ", "DEFAULT_F", "DEFAULT_D"]

#: Bits of a character: start bit, 8 data bits, parity (ISO/IEC 7816-3:2006 §7.1).
CHARACTER_ETU = 10
#: Guard time of a character at extra guard time N = 0: 12 etu between leading edges (§7.2).
GUARD_ETU = 2
#: Leading edges of two characters sent in opposite directions are at least 16 etu apart (§7.2).
TURNAROUND_ETU = 16
#: Header of a T=0 command TPDU: CLA INS P1 P2 P3 (§10.3.2).
HEADER_CHARACTERS = 5
#: Status word SW1 SW2 (§10.3.3).
SW_CHARACTERS = 2
#: Default clock rate conversion and baud rate adjustment factors Fd = 372, Dd = 1 (§7.1, §8.3).
DEFAULT_F = 372
DEFAULT_D = 1
#: A clock of 3.5712 MHz, which with F = 372, D = 1 gives 9600 bit/s: a usual PSAM slot clock.
DEFAULT_CLOCK_HZ = 3_571_200


@dataclass(frozen=True)
class T0Link:
    """A T=0 link: clock `clock_hz`, factors `f` and `d`, extra guard time `n` etu."""

    clock_hz: float = DEFAULT_CLOCK_HZ
    f: int = DEFAULT_F
    d: int = DEFAULT_D
    n: int = 0

    @property
    def etu_us(self) -> float:
        return self.f / self.d / self.clock_hz * 1e6

    @property
    def baud(self) -> float:
        return 1e6 / self.etu_us

    def character_us(self) -> float:
        return (CHARACTER_ETU + GUARD_ETU + self.n) * self.etu_us

    def _time(self, characters: int, turnarounds: int) -> float:
        extra = TURNAROUND_ETU - (CHARACTER_ETU + GUARD_ETU + self.n)
        return characters * self.character_us() + turnarounds * max(0, extra) * self.etu_us

    def exchange_us(self, capdu: bytes, rapdu: bytes) -> float:
        """Link time of one APDU (not the card's processing), the response fetched by GET RESPONSE when
        both command and response carry data."""
        try:
            command = CommandApdu.parse(capdu)
        except ApduError:
            return self._time(len(capdu) + 1 + len(rapdu), 2)
        data_in, data_out = len(command.data), max(0, len(rapdu) - SW_CHARACTERS)
        if data_in and data_out:  # case 4: 61xx, then GET RESPONSE
            first = HEADER_CHARACTERS + 1 + data_in + SW_CHARACTERS
            fetch = HEADER_CHARACTERS + 1 + data_out + SW_CHARACTERS
            return self._time(first + fetch, 5)
        if data_in or data_out:  # cases 3 and 2: header, procedure byte, data, SW
            return self._time(HEADER_CHARACTERS + 1 + data_in + data_out + SW_CHARACTERS,
                              3 if data_in else 1)
        return self._time(HEADER_CHARACTERS + SW_CHARACTERS, 1)  # case 1

"""A T-Union tap, timed: each APDU of a trace laid on the air (card), the T=0 link (PSAM) and the host's gaps.

Why: vendors ask whether a flow with this card and this reader fits the 300/400 ms budget. The trace says which
commands went where and how long the host took between them; `apdu.airtime` and `apdu.t0time` price the
frames; the card and PSAM timing profiles (or, with `measured`, the trace itself) give the processing times. The
T-Union knowledge lives here: which reader is the PSAM, the phases (select, read, initialize, MAC1, debit, MAC2),
the algorithm from INITIALIZE, and that a DEBIT commits the CAPP records cached before it.

What is counted: activation, the card's APDUs, the PSAM's APDUs from the first card command on, the host's gaps
between them, and DESELECT. PSAM commands before the first card command (the terminal's PSAM start-up) are listed
but not counted: a validator does them once, not per card.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from typing import Literal

from apdu.airtime import BIT_RATES, AirModel, Segment, Timeline, pcd_frame, picc_frame
from apdu.command import ApduError, CommandApdu
from apdu.iso14443 import Ats
from apdu.trace import Exchange

from ..host.annotate import describe_command
from .profile import MEASURED, CardTiming, PsamTiming

__all__ = ["PHASES", "TapSettings", "ApduTiming", "TapTiming", "Pair", "pairs_of", "model_tap", "phase_of",
           "algorithm_of", "psam_readers", "WhatIf", "what_if", "short_name", "REFERENCE_ATS"]

PHASES = ("activation", "select", "read", "initialize", "update", "MAC1", "debit", "credit", "MAC2", "other",
          "host", "deselect")
"""Phases in the order a purchase goes through them ("update" = UPDATE CAPP DATA CACHE)."""

REFERENCE_ATS = bytes.fromhex("12788080024D54009D0040869B19705D1401")
"""The reference card's ATS (ykt_card.card.state: FSCI 8, 106 kbit/s only, FWI 8, CIDs; the reference
profile's historical bytes): the model's card when the trace does not say."""

_PSAM_ONLY = {(0x80, 0x70), (0x80, 0x72), (0x80, 0x1A), (0x80, 0xFA)}
_PHASE_BY_INS = {
    (0x00, 0xA4): "select", (0x00, 0xB0): "read", (0x00, 0xB2): "read", (0x80, 0x5C): "read",
    (0x80, 0x5A): "read", (0x80, 0x50): "initialize", (0x80, 0xDC): "update", (0x80, 0x54): "debit",
    (0x80, 0x52): "credit", (0x80, 0x70): "MAC1", (0x80, 0x72): "MAC2",
}
_CAPP = (0x80, 0xDC)
_DEBIT = (0x80, 0x54)
_GET_RESPONSE = (0x00, 0xC0)
PPS_D_115200 = 12
"""Di = 12 with Fi = 372: 115200 bit/s at a 3.5712 MHz clock (ISO/IEC 7816-3 table 8), a rate PSAM slots offer."""
_SHORT = re.compile(r",| key [0-9A-F]{2}| terminal seq | at \d| \(verify| card ctr| offset \d+$")


def _header(capdu: bytes) -> tuple[int, int]:
    return (capdu[0], capdu[1]) if len(capdu) >= 2 else (-1, -1)


def phase_of(capdu: bytes, lane: str) -> str:
    """The phase of one command; PSAM reads and selects are its own, MAC1 and MAC2 by INS."""
    phase = _PHASE_BY_INS.get(_header(capdu), "other")
    if lane == "psam" and phase not in ("MAC1", "MAC2"):
        return "other"
    return phase


def short_name(capdu: bytes) -> str:
    """The command's name without its amounts and keys: what a timeline labels an exchange with."""
    return _SHORT.split(describe_command(capdu), 1)[0].strip()


@dataclass(frozen=True)
class Pair:
    """A command and its response (None: none recorded, the card left) as the trace holds them."""

    reader: str
    command: Exchange
    response: Exchange | None
    host_before_us: float = 0.0  # the host's time since the record before the command, when that was a response

    @property
    def capdu(self) -> bytes:
        return self.command.data

    @property
    def rapdu(self) -> bytes:
        return self.response.data if self.response is not None else b""


def pairs_of(exchanges: list[Exchange]) -> list[Pair]:
    """Commands with the response that followed on the same reader; a response without command is refused."""
    pairs: list[Pair] = []
    open_: dict[str, int] = {}
    for number, x in enumerate(exchanges, 1):
        if x.direction == "C":
            before = exchanges[number - 2] if number > 1 else None
            host = (x.t - before.t) * 1e6 if before is not None and before.direction == "R" else 0.0
            open_[x.reader] = len(pairs)
            pairs.append(Pair(x.reader, x, None, max(0.0, host)))
        else:
            at = open_.pop(x.reader, None)
            if at is None:
                raise ValueError(f"exchange {number} (R< at t={x.t}): a response without a command before it")
            pairs[at] = replace(pairs[at], response=x)
    return pairs


def psam_readers(pairs: list[Pair]) -> set[str]:
    """Readers that were sent a PSAM-only command (MAC1, MAC2, diversify, PSAM MAC/encrypt)."""
    return {p.reader for p in pairs if _header(p.capdu) in _PSAM_ONLY}


def algorithm_of(pairs: list[Pair]) -> str | None:
    """3des or sm4 from the first answered INITIALIZE (purchase: byte 10, load: byte 7 of the answer)."""
    for p in pairs:
        if _header(p.capdu) == (0x80, 0x50) and p.rapdu[-2:] == b"\x90\x00" and len(p.capdu) > 2:
            at = 7 if p.capdu[2] == 0x00 else 10
            if len(p.rapdu) > at + 2:
                return {0x00: "3des", 0x04: "sm4"}.get(p.rapdu[at])
    return None


@dataclass(frozen=True)
class TapSettings:
    """What the model assumes: bit rate, card and PSAM timing (a profile or `measured`), the card's ATS."""

    card: CardTiming | str
    psam: PsamTiming | str
    kbps: int = 106
    ats: Ats = field(default_factory=lambda: Ats.parse(REFERENCE_ATS))
    uid_length: int = 4
    fsd: int = 256
    algorithm: str | None = None  # None: from the trace, else 3des

    def __post_init__(self) -> None:
        for name, value in (("card", self.card), ("psam", self.psam)):
            if isinstance(value, str) and value != MEASURED:
                raise ValueError(f"{name} timing: {value!r} is neither a profile nor {MEASURED!r}")


@dataclass(frozen=True)
class ApduTiming:
    """One APDU of the tap: where it went, its phase, when it ran and what its time was spent on (µs)."""

    index: int
    lane: Literal["card", "psam"]
    name: str
    phase: str
    start_us: float
    end_us: float
    link_us: float
    process_us: float
    host_us: float
    wtx: int
    frames: int
    counted: bool = True

    @property
    def duration_us(self) -> float:
        return self.end_us - self.start_us


@dataclass(frozen=True)
class TapTiming:
    """The modelled tap: its APDUs, every segment of the timeline, the totals by phase and by lane."""

    apdus: tuple[ApduTiming, ...]
    segments: tuple[Segment, ...]
    phases: dict[str, float]
    total_us: float
    kbps: int
    algorithm: str
    algorithm_source: str
    card_timing: str
    psam_timing: str
    fwt_us: float

    @property
    def lanes(self) -> dict[str, float]:
        """Time on the air (reader frames and waits plus the card's frames), in the card, in the PSAM, in the host."""
        totals = {"air": 0.0, "card": 0.0, "psam": 0.0, "host": 0.0}
        for s in self.segments:
            if s.lane == "psam" or s.lane == "host":
                totals[s.lane] += s.duration_us
            elif s.kind == "process":
                totals["card"] += s.duration_us
            else:
                totals["air"] += s.duration_us
        return totals


def _process_us(settings: TapSettings, pair: Pair, lane: str, algorithm: str, capp_bytes: int,
                measured_us: float) -> float:
    cla, ins = _header(pair.capdu)
    timing = settings.card if lane == "card" else settings.psam
    if isinstance(timing, str):  # measured: what the trace saw, less the modelled link
        return measured_us
    if lane == "psam":
        return timing.command_us(cla, ins, algorithm)
    extra = capp_bytes if (cla, ins) == _DEBIT else 0
    return timing.card_us(cla, ins, algorithm, extra)  # type: ignore[union-attr]


def _window_us(pair: Pair) -> float:
    if pair.response is None:
        return 0.0
    return max(0.0, (pair.response.t - pair.command.t) * 1e6)


def model_tap(exchanges: list[Exchange] | list[Pair], settings: TapSettings,
              psam: set[str] | None = None) -> TapTiming:
    """Lay the trace's APDUs on a timeline. `psam` names the PSAM's readers (default: `psam_readers`)."""
    pairs = exchanges if exchanges and isinstance(exchanges[0], Pair) else pairs_of(exchanges)  # type: ignore[arg-type]
    psam = psam_readers(pairs) if psam is None else psam  # type: ignore[arg-type]
    found = algorithm_of(pairs)  # type: ignore[arg-type]
    algorithm = settings.algorithm or found or "3des"
    source = "given" if settings.algorithm else ("INITIALIZE answer" if found else "assumed (no INITIALIZE)")
    air = AirModel(settings.ats, settings.kbps, settings.fsd, settings.uid_length)
    t = Timeline()
    air.activation(t)
    activation_end = t.cursor
    rows: list[ApduTiming] = []
    previous: Pair | None = None
    started = False
    capp_bytes = 0
    for index, pair in enumerate(pairs, 1):  # type: ignore[arg-type]
        lane = "psam" if pair.reader in psam else "card"
        started = started or lane == "card"
        if not started:
            rows.append(ApduTiming(index, "psam", short_name(pair.capdu), "other", 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0,
                                   counted=False))
            continue
        host = pair.host_before_us if previous is not None else 0.0
        if host:
            t.add("host", host, "host", "host")
        header = _header(pair.capdu)
        if header == (0x80, 0x50):
            capp_bytes = 0
        elif header == _CAPP:
            capp_bytes += _data_length(pair.capdu)
        start = t.cursor
        if lane == "card":
            link, process, wtx, frames = _card_apdu(air, t, pair, settings, algorithm, capp_bytes)
        else:
            link, process, wtx, frames = _psam_apdu(t, pair, settings, algorithm)
        phase = phase_of(pair.capdu, lane)
        if header == _GET_RESPONSE and rows and rows[-1].lane == lane:  # T=0 fetch: its command's phase
            phase = rows[-1].phase
        rows.append(ApduTiming(index, lane, short_name(pair.capdu), phase, start, t.cursor,
                               link, process, host, wtx, frames))
        previous = pair
    if started:
        air.deselect(t)
    phases = dict.fromkeys(PHASES, 0.0)
    phases["activation"] = activation_end
    for row in rows:
        if row.counted:
            phases[row.phase] += row.duration_us
            phases["host"] += row.host_us
    phases["deselect"] = t.cursor - (rows[-1].end_us if rows and rows[-1].counted else activation_end)
    return TapTiming(tuple(rows), tuple(t.segments), phases, t.cursor, settings.kbps, algorithm, source,
                     _name(settings.card), _name(settings.psam), air.fwt_us)


def _name(timing: CardTiming | PsamTiming | str) -> str:
    return timing if isinstance(timing, str) else timing.name


def _data_length(capdu: bytes) -> int:
    try:
        return len(CommandApdu.parse(capdu).data)
    except ApduError:
        return 0


def _card_apdu(air: AirModel, t: Timeline, pair: Pair, settings: TapSettings, algorithm: str,
               capp_bytes: int) -> tuple[float, float, int, int]:
    label = short_name(pair.capdu)
    measured = 0.0
    if isinstance(settings.card, str):  # the link alone, on a copy of the model, then the rest is the card's
        scratch, model = Timeline(), copy.deepcopy(air)
        model.exchange(scratch, pair.capdu, pair.rapdu or b"\x6F\x00", 0.0, label)
        measured = max(0.0, _window_us(pair) - (scratch.cursor - model.card_slot_us))
    process = _process_us(settings, pair, "card", algorithm, capp_bytes, measured)
    first = len(t.segments)
    if pair.response is None:  # no answer: the command's frames, then the reader waits FWT in vain
        for pcd_to_picc, data in air.command_frames(pair.capdu):
            frame = pcd_frame(data, air.kbps) if pcd_to_picc else picc_frame(data, air.kbps)
            t.add("reader" if pcd_to_picc else "card", frame.duration_us, label, "frame", frame)
        t.add("reader", air.fwt_us, f"{label}: no answer within FWT", "wait")
        wtx = 0
    else:
        wtx = air.exchange(t, pair.capdu, pair.rapdu, process, label)
    added = t.segments[first:]
    card = sum(s.duration_us for s in added if s.kind == "process")
    link = sum(s.duration_us for s in added) - card
    return link, card, wtx, sum(1 for s in added if s.frame is not None)


def _psam_apdu(t: Timeline, pair: Pair, settings: TapSettings, algorithm: str) -> tuple[float, float, int, int]:
    label = short_name(pair.capdu)
    if isinstance(settings.psam, str):
        whole = _window_us(pair)
        t.add("psam", whole, f"{label} (measured)", "process")
        return 0.0, whole, 0, 0
    link = settings.psam.t0.exchange_us(pair.capdu, pair.rapdu or b"\x6F\x00")
    process = _process_us(settings, pair, "psam", algorithm, 0, 0.0)
    t.add("psam", link, label, "frame")
    t.add("psam", process, f"{label}: PSAM", "process")
    return link, process, 0, 0


# --- what would bring the tap back into its budget ----------------------------------------------------


@dataclass(frozen=True)
class WhatIf:
    """One change and the total it would give (µs); `note` says what the change needs or assumes."""

    change: str
    total_us: float
    fits: bool
    note: str = ""


def what_if(exchanges: list[Exchange], settings: TapSettings, budget_us: float,
            psam: set[str] | None = None) -> list[WhatIf]:
    """Computed alternatives: higher bit rates, fewer reads (the costliest first, until it fits), and a
    simple purchase instead of CAPP (no UPDATE CAPP DATA CACHE, nothing extra committed at DEBIT)."""
    pairs = pairs_of(exchanges)
    psam = psam_readers(pairs) if psam is None else psam
    base = model_tap(pairs, settings, psam)
    options: list[WhatIf] = []
    for kbps in (k for k in (212, 424, 848) if k > settings.kbps):
        total = model_tap(pairs, replace(settings, kbps=kbps), psam).total_us
        d = kbps // 106
        offered = d in settings.ats.divisors_pcd_to_picc and d in settings.ats.divisors_picc_to_pcd
        note = "" if offered else (f"the card's ATS does not offer {kbps} kbit/s "
                                   f"(TA(1) {settings.ats.ta if settings.ats.ta is not None else 0:02X})")
        options.append(WhatIf(f"{kbps} kbit/s after activation", total, total <= budget_us, note))
    faster = settings
    if not isinstance(settings.psam, str) and settings.psam.link.d < PPS_D_115200:
        link = settings.psam.link.model_copy(update={"f": 372, "d": PPS_D_115200})
        faster = replace(settings, psam=settings.psam.model_copy(update={"link": link}))
        total = model_tap(pairs, faster, psam).total_us
        options.append(WhatIf(f"PSAM link at {faster.psam.t0.baud:.0f} bit/s", total,  # type: ignore[union-attr]
                              total <= budget_us, "PPS to F 372, D 12 on the SAM slot"))
    reads = sorted((row for row in base.apdus if row.counted and row.lane == "card" and row.phase == "read"),
                   key=lambda row: (-(row.duration_us + row.host_us), row.index))
    dropped: list[int] = []
    for row in reads:
        dropped.append(row.index)
        kept = [p for i, p in enumerate(pairs, 1) if i not in dropped]
        total = model_tap(kept, settings, psam).total_us
        if total <= budget_us or len(dropped) == len(reads):
            names = ", ".join(base.apdus[i - 1].name for i in dropped)
            options.append(WhatIf(f"{len(dropped)} read(s) fewer", total, total <= budget_us, f"without {names}"))
            break
    if any(_header(p.capdu) == _CAPP for p in pairs):
        kept = [p for p in pairs if _header(p.capdu) != _CAPP]
        total = model_tap(kept, settings, psam).total_us
        n = len(pairs) - len(kept)
        options.append(WhatIf("simple purchase instead of CAPP", total, total <= budget_us,
                              f"no UPDATE CAPP DATA CACHE ({n}), no records committed with DEBIT"))
    if len(options) > 1:
        kept = [p for i, p in enumerate(pairs, 1) if _header(p.capdu) != _CAPP
                and not (i in {r.index for r in reads})]
        fastest = replace(faster, kbps=max(BIT_RATES))
        total = model_tap(kept, fastest, psam).total_us
        parts = [f"{max(BIT_RATES)} kbit/s", "no reads"]
        parts += ["no CAPP"] if len(kept) + len(reads) < len(pairs) else []
        parts += ["the faster PSAM link"] if faster is not settings else []
        options.append(WhatIf("all of these together", total, total <= budget_us, ", ".join(parts)))
    return options

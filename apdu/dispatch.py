"""Instruction dispatch for card OSes: the one place where exceptions become status words.

Card handlers only see a parsed `CommandApdu` and either return response data or raise `CardError`;
`respond` owns everything else (parsing, CLA and INS checks, turning results and errors into response
bytes), so every virtual card answers malformed or unknown commands the same way, vsmartcard-vicc style.

    class Pocket(CardApplication):
        @instruction(0xB0, cla=0x00)
        def read_binary(self, cmd: CommandApdu) -> bytes: ...

    Pocket().process(bytes.fromhex("00B0950000"))
"""
from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import Any, ClassVar, TypeVar, Union

from apdu.command import ApduError, CommandApdu
from apdu.status import (SW_CLA_NOT_SUPPORTED, SW_INS_NOT_SUPPORTED, SW_OK, SW_UNKNOWN, SW_WRONG_LENGTH,
                     CardError, is_valid_sw)

__all__ = ["Handler", "HandlerResult", "InstructionTable", "respond", "instruction", "CardApplication"]

log = logging.getLogger(__name__)

#: What a handler returns: response data (answered with 9000), None (9000 alone), or (data, sw) for
#: warnings such as 6283 with the FCI of a locked application.
HandlerResult = Union[bytes, bytearray, None, tuple[bytes, int]]
Handler = Callable[[CommandApdu], HandlerResult]
F = TypeVar("F", bound=Callable[..., Any])


def _byte(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFF:
        raise ValueError(f"{what} {value!r} out of range 0..255")
    return value


def _classes(cla: int | Iterable[int] | None) -> tuple[int | None, ...]:
    if cla is None:
        return (None,)
    if isinstance(cla, int):
        return (_byte(cla, "CLA"),)
    out = tuple(_byte(c, "CLA") for c in cla)
    if not out:
        raise ValueError("cla=() would register the handler for no class at all; use None for any")
    return out


class InstructionTable:
    """(CLA, INS) → handler. A handler registered with `cla=None` serves its INS under every CLA
    the table accepts. The table accepts the CLAs given to the constructor plus every CLA named in
    a registration; a table that names no CLA at all accepts any CLA.
    """

    def __init__(self, classes: Iterable[int] = ()) -> None:
        self._handlers: dict[tuple[int | None, int], Handler] = {}
        self._classes: set[int] = {_byte(c, "CLA") for c in classes}

    def add(self, ins: int, handler: Handler, cla: int | Iterable[int] | None = None) -> None:
        """Register `handler` for INS `ins` under CLA `cla` (one byte, several, or None for any)."""
        ins = _byte(ins, "INS")
        if not callable(handler):
            raise TypeError(f"handler for INS {ins:02X} is not callable: {handler!r}")
        classes = _classes(cla)
        for c in classes:  # check all first: a refused registration changes nothing
            if (c, ins) in self._handlers:
                where = "any CLA" if c is None else f"CLA {c:02X}"
                raise ValueError(f"INS {ins:02X} under {where} already handled by "
                                 f"{_name(self._handlers[(c, ins)])}")
        for c in classes:
            self._handlers[(c, ins)] = handler
            if c is not None:
                self._classes.add(c)

    def register(self, ins: int, cla: int | Iterable[int] | None = None) -> Callable[[F], F]:
        """Decorator form of `add` for plain functions."""
        def mark(fn: F) -> F:
            self.add(ins, fn, cla)
            return fn
        return mark

    def accepts_cla(self, cla: int) -> bool:
        return not self._classes or cla in self._classes

    def lookup(self, cla: int, ins: int) -> Handler | None:
        """The handler for this CLA and INS: a CLA-specific one first, else the any-CLA one."""
        return self._handlers.get((cla, ins)) or self._handlers.get((None, ins))

    def __len__(self) -> int:
        return len(self._handlers)


def _name(handler: Any) -> str:
    return getattr(handler, "__qualname__", None) or type(handler).__name__


def _sw(sw: int) -> bytes:
    return sw.to_bytes(2, "big")


class _HandlerBug(Exception):
    """A handler returned something that is not a response; answered like a crash (6F00)."""


def _encode(result: HandlerResult) -> bytes:
    if result is None:
        return _sw(SW_OK)
    if isinstance(result, (bytes, bytearray, memoryview)):
        data, sw = bytes(result), SW_OK
    elif isinstance(result, tuple) and len(result) == 2:
        data, sw = result
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise _HandlerBug(f"returned data of type {type(data).__name__}")
        data = bytes(data)
        if not is_valid_sw(sw):
            raise _HandlerBug(f"returned an invalid status word {sw!r}")
        if data and 0x64 <= sw >> 8 <= 0x6F:
            raise _HandlerBug(f"returned data with error status {sw:04X} (ISO: errors carry no data)")
    else:
        raise _HandlerBug(f"returned {type(result).__name__}, not bytes, None or (data, sw)")
    if len(data) > 65536:
        raise _HandlerBug(f"returned {len(data)} bytes of data, at most 65536")
    return data + _sw(sw)


def respond(table: InstructionTable, capdu: bytes,
            before: Callable[[CommandApdu], None] | None = None) -> bytes:
    """Answer one command APDU from `table`; never raises for anything the card receives.

    Order of checks: length faults (6700), CLA (6E00), then `before(cmd)` (a card-wide hook, e.g.
    to spend a challenge on every command), INS (6D00), the handler. A `CardError` becomes its status
    word with no data; any other exception is a bug in the card: it is logged (type and stack, never
    the APDU or the exception text, which may hold secrets) and answered 6F00.
    """
    try:
        cmd = CommandApdu.parse(capdu)
    except ApduError:
        return _sw(SW_WRONG_LENGTH)
    if not table.accepts_cla(cmd.cla):
        return _sw(SW_CLA_NOT_SUPPORTED)
    handler: Any = before
    try:
        if before is not None:
            before(cmd)
        handler = table.lookup(cmd.cla, cmd.ins)
        if handler is None:
            return _sw(SW_INS_NOT_SUPPORTED)
        return _encode(handler(cmd))
    except CardError as exc:
        if is_valid_sw(exc.sw):
            return _sw(exc.sw)
        log.error("card bug: %s for CLA %02X INS %02X raised CardError with invalid status word "
                  "%04X; answered 6F00", _name(handler), cmd.cla, cmd.ins, exc.sw)
        return _sw(SW_UNKNOWN)
    except _HandlerBug as exc:  # our own message: types and status words only, no data
        log.error("card bug: %s for CLA %02X INS %02X %s; answered 6F00",
                  _name(handler), cmd.cla, cmd.ins, exc)
        return _sw(SW_UNKNOWN)
    except Exception as exc:  # noqa: BLE001 - the one place a card turns its own bugs into 6F00
        log.error("card bug: %s for CLA %02X INS %02X raised %s; answered 6F00\n%s",
                  _name(handler), cmd.cla, cmd.ins, type(exc).__name__,
                  "".join(traceback.format_tb(exc.__traceback__)).rstrip())
        return _sw(SW_UNKNOWN)


def instruction(ins: int, cla: int | Iterable[int] | None = None) -> Callable[[F], F]:
    """Mark a `CardApplication` method as the handler of INS `ins` (under `cla`, default any).

    Stack it to serve several instructions or classes with one method.
    """
    ins = _byte(ins, "INS")
    classes = _classes(cla)

    def mark(fn: F) -> F:
        marks = fn.__dict__.setdefault("_apdu_instructions", [])
        marks.extend((c, ins) for c in classes)
        return fn
    return mark


class CardApplication:
    """Base class for a card application whose handlers are methods marked with `@instruction`.

    Subclasses inherit and may override handlers (the table binds method names, so an override of
    a marked method keeps its instruction). `classes` lists extra CLAs accepted for any-CLA
    handlers; `before_command` runs for every well-formed command with an accepted CLA.
    """

    classes: ClassVar[tuple[int, ...]] = ()
    _instruction_names: ClassVar[dict[tuple[int | None, int], str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names: dict[tuple[int | None, int], str] = {}
        for klass in reversed(cls.__mro__):
            mine: dict[tuple[int | None, int], str] = {}
            for attr, member in vars(klass).items():
                for key in getattr(member, "_apdu_instructions", ()):
                    if key in mine and mine[key] != attr:
                        c, i = key
                        where = "any CLA" if c is None else f"CLA {c:02X}"
                        raise TypeError(f"{klass.__name__}: INS {i:02X} under {where} marked on both "
                                        f"{mine[key]} and {attr}")
                    mine[key] = attr
            names.update(mine)
        cls._instruction_names = names

    @cached_property
    def instructions(self) -> InstructionTable:
        """This object's table, bound to its methods (built on first use)."""
        table = InstructionTable(self.classes)
        for (cla, ins), attr in self._instruction_names.items():
            table.add(ins, getattr(self, attr), cla)
        return table

    def before_command(self, cmd: CommandApdu) -> None:
        """Hook run before every dispatched command; raise CardError to refuse it. Default: nothing."""

    def process(self, capdu: bytes) -> bytes:
        """Answer one command APDU (data ‖ SW1 SW2). Never raises."""
        return respond(self.instructions, capdu, before=self.before_command)

"""The terminal suite: validators of any maker, tested with the suite's own test cards (Card OS personalities).

`--dut ykt[:PROFILE]`, `python:MODULE:FACTORY` or `command:CMD` (terminal.dut); the test cards live in
`personalities`, the only module that knows ykt's card internals.
"""
from .dut import CommandDut, InProcessDut, TapResult, TerminalDut, open_terminal_dut
from .personalities import PERSONALITIES, CardParams, TestCard
from .suite import COMMANDS, CONDITIONS, TerminalSuite

__all__ = ["TerminalSuite", "COMMANDS", "CONDITIONS", "TerminalDut", "InProcessDut", "CommandDut", "TapResult",
           "open_terminal_dut", "PERSONALITIES", "CardParams", "TestCard"]

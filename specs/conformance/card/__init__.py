"""The card suite: T-Union cards of any maker, behind any reader, tested as a PSAM and a load host would."""
from .context import CardCase, CardSession
from .dut import CardDut, open_dut
from .suite import COMMANDS, CONDITIONS, CardSuite

__all__ = ["CardCase", "CardSession", "CardDut", "open_dut", "CardSuite", "COMMANDS", "CONDITIONS"]

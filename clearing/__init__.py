"""The back office of T-Union clearing: verify uploaded clearing files, settle between parties, report.

Terminals upload every transaction to the provincial clearing and settlement platform, which trusts
nothing it receives. This package is that platform's test double: it reads the design's clearing records
(JSON Lines and CSV, as `ykt journal export` writes them), recomputes every TAC from the master keys,
judges counters, balances, duplicates and grey records card by card (`verify`), keeps what it accepted
in a store (`store`), settles a day between issuers and acquirers (`settle`), and writes the provincial
monthly return (`report`).

Layer: above `terminal_sim` (it reads its record format), below `specs` and `tools`.
"""
from .tac import ClearingError, expected_tac, tac_verifies

__all__ = ["ClearingError", "expected_tac", "tac_verifies"]

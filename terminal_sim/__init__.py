"""terminal_sim: the validator firmware (fare policies, transaction flows, recovery, lists, journal, upload file).

The names most callers need, from their modules: `make_terminal` and the `Terminal` seam (terminal.py),
`Validator` (validator.py), `load` (flows.py, the online load), `LoadHost` (load_host.py), `Outcome`
(outcome.py), `Journal` (journal.py: opened with its soundness check; `readonly=True` for readers),
`salvage` (salvage.py: the readable records of a damaged journal), `load_terminal_profile` (profile.py). The transaction skeleton
is terminal.py's subject: transaction.py (base fields, stages, grey record, endings), recovery.py (one
grey-record recovery), plan.py (pure fare planning), links.py (reader wrappers).
"""
from .flows import load
from .journal import Journal, JournalError
from .load_host import LoadHost
from .outcome import Outcome
from .profile import load_terminal_profile
from .salvage import salvage
from .terminal import Terminal, make_terminal
from .validator import TerminalError, Validator

__all__ = ["make_terminal", "Terminal", "Validator", "TerminalError", "load", "LoadHost", "Outcome", "Journal",
           "JournalError", "salvage", "load_terminal_profile"]

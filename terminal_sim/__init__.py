"""terminal_sim: the validator firmware (fare policies, transaction flows, recovery, lists, journal, upload file).

The names most callers need, from their modules: `make_terminal` and the `Terminal` seam (terminal.py),
`Validator` (validator.py), `load` (flows.py, the online load), `LoadHost` (load_host.py), `Outcome`
(outcome.py), `Journal` (journal.py), `load_terminal_profile` (profile.py). The transaction skeleton
is terminal.py's subject: transaction.py (base fields, stages, grey record, endings), recovery.py (one
grey-record recovery), plan.py (pure fare planning), links.py (reader wrappers).
"""
from .flows import load
from .journal import Journal
from .load_host import LoadHost
from .outcome import Outcome
from .profile import load_terminal_profile
from .terminal import Terminal, make_terminal
from .validator import TerminalError, Validator

__all__ = ["make_terminal", "Terminal", "Validator", "TerminalError", "load", "LoadHost", "Outcome", "Journal",
           "load_terminal_profile"]

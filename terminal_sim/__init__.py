"""terminal_sim: the validator firmware (fare policies, transaction flows, recovery, lists, journal, upload file).

The names most callers need, from their modules: `Validator` (validator.py), `load` and the flows
(flows.py), `LoadHost` (load_host.py), `Outcome` (outcome.py), `Journal` (journal.py),
`load_terminal_profile` (profile.py).
"""
from .flows import load
from .journal import Journal
from .load_host import LoadHost
from .outcome import Outcome
from .profile import load_terminal_profile
from .validator import TerminalError, Validator

__all__ = ["Validator", "TerminalError", "load", "LoadHost", "Outcome", "Journal", "load_terminal_profile"]

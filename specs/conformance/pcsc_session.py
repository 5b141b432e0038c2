"""How ykt's own processes share this machine's pcscd and vpcd slots: one lock file, inherited by children.

The conformance suite serving test cards to a `command:` terminal, test sessions (tests/conftest.py) and
benchmarks that drive pcscd (benchmarks/conformance.py) hold it with
`vpcd_session()` (the mechanism is `apdu.transport.pcsc.daemon.session_lock`). The file's name is what every
checkout's test runs on this machine agree on: renaming it would let two runs use the slots at once.
"""
from __future__ import annotations

import tempfile
from contextlib import AbstractContextManager
from pathlib import Path

from apdu.transport.pcsc.daemon import session_lock

#: Lock file that serialises the sessions sharing this machine's pcscd and vpcd slots.
VPCD_SESSION_LOCK = Path(tempfile.gettempdir()) / "ykt-vpcd.lock"
#: Set while a process holds the lock; its children see it and share the lock instead of waiting.
VPCD_LOCK_HOLDER_ENV = "YKT_VPCD_LOCK_HOLDER"


def vpcd_session(timeout: float = 900.0) -> AbstractContextManager[None]:
    """Hold the lock for the block (inherited from a parent that holds it)."""
    return session_lock(VPCD_SESSION_LOCK, VPCD_LOCK_HOLDER_ENV, timeout)

"""The machine-wide pcscd/vpcd session lock: one holder at a time, shared with its children and its own
nested blocks (a conformance run inside a test session must not wait for the lock its own process holds)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from apdu.transport.pcsc.daemon import session_lock

ENV = "YKT_TEST_SESSION_LOCK_HOLDER"


@pytest.fixture(autouse=True)
def _no_inherited_holder(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)


def test_a_nested_block_of_the_holder_does_not_wait(tmp_path):
    lock = tmp_path / "lock"
    with session_lock(lock, ENV, timeout=1.0):
        with session_lock(lock, ENV, timeout=1.0):
            assert os.environ[ENV] == str(os.getpid())
        assert os.environ[ENV] == str(os.getpid()), "the inner block must not release the outer one"
    assert ENV not in os.environ
    assert (lock.read_text().strip()) == f"pid {os.getpid()}"


def test_another_process_waits_then_gives_up_naming_the_holder(tmp_path):
    lock = tmp_path / "lock"
    probe = ("import sys; from apdu.transport.pcsc.daemon import session_lock, PcscdError\n"
             "try:\n"
             f"    with session_lock(sys.argv[1], {ENV!r}, timeout=0.5): print('got it')\n"
             "except PcscdError as e: print('refused:', e)\n")
    env = {k: v for k, v in os.environ.items() if k != ENV}
    with session_lock(lock, ENV, timeout=1.0):
        out = subprocess.run([sys.executable, "-c", probe, str(lock)], capture_output=True, text=True,
                             env=env, check=True).stdout
        assert out.startswith("refused:") and f"pid {os.getpid()}" in out
        inherited = subprocess.run([sys.executable, "-c", probe, str(lock)], capture_output=True, text=True,
                                   env={**env, ENV: str(os.getpid())}, check=True).stdout
        assert inherited.strip() == "got it"
    out = subprocess.run([sys.executable, "-c", probe, str(lock)], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert out.strip() == "got it"


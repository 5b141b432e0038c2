"""The top-up host as its own process on a loopback port (`ykt host serve`), the wallet over HTTP.

What must hold whatever the network or the host does: a request retried after a lost answer is answered
the same (the same order and MAC2); a host killed with SIGKILL in the middle of a request, or after it
committed but before its answer left, comes back from its journal; and in every case the card is
credited exactly once and the host's journal holds one confirmed order for it.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import threading

from ota import HostJournal, HttpHostClient, Wallet

from tests.terminal_sim.test_flows import make_world

from .helpers import (CREDENTIALS, HOST_CLOCK, ROOT, WALLET_TID, HostProcess, Proxy, Recorder, free_port, mac2_of,
                      table)


def books(journal_path, w, amount: int) -> None:
    """One confirmed order of `amount`, credited once: the card's balance and online counter agree."""
    with HostJournal(journal_path) as journal:
        orders = journal.all()
        assert journal.integrity() == "ok"
    assert [(o.state, o.amount, o.counter) for o in orders] == [("confirmed", amount, 0)]
    assert w.balance == 5000 + amount and w.state.purse.online_counter == 1


def http_wallet(w, url: str, log: list | None = None, **client) -> Wallet:
    http = HttpHostClient(url, CREDENTIALS["wallet-0001"], **client)
    return Wallet(w.card_reader, Recorder(http, log if log is not None else w.log), WALLET_TID)


def test_a_top_up_over_http_and_a_retried_request_answered_the_same(tmp_path):
    host = HostProcess.start(tmp_path / "host.db", free_port())
    try:
        w = make_world()
        result = http_wallet(w, host.url).topup(1000)
        assert result.status == "loaded" and result.balance_after == 6000
        assert table(w.log)[1:] == [("host", "pending"), ("card", "80500002"), ("host", "load_init"),
                                    ("card", "80520000"), ("host", "load_confirm")]
        request, answer = next((m, a) for who, m, a in w.log if who == "host" and m["op"] == "load_init")
        client = HttpHostClient(host.url, CREDENTIALS["wallet-0001"])
        assert client.call(request) == answer                       # the same request later: the same answer
        assert answer["mac2"] == mac2_of(w.state, bytes.fromhex(request["init"]), 1000, WALLET_TID, HOST_CLOCK)
        host.wait_for("answered 200 load_init")
        host.wait_for("answered 200 load_init")
    finally:
        host.stop()
    books(tmp_path / "host.db", w, 1000)
    from tests.test_no_key_leaks import assert_clean, secrets
    assert_clean("".join(host.log), secrets(w.state) | {CREDENTIALS["wallet-0001"]._secret.hex().upper()})
    assert any("received load_init card 03105810000000001234 counter 0 amount 1000 from wallet-0001" in line
               for line in host.log)


def test_a_lost_http_answer_is_retried_with_the_same_bytes_and_the_same_mac2(tmp_path):
    host = HostProcess.start(tmp_path / "host.db", free_port())
    lost = []

    def drop_first_load_init(request: bytes, response: bytes) -> bool:
        if b'"op":"load_init"' in request and not lost:
            lost.append(response)
            return False
        return True

    proxy = Proxy(host.port, drop_first_load_init)
    try:
        w = make_world()
        result = http_wallet(w, proxy.url, backoff=0.05).topup(1000)
        assert result.status == "loaded"
        inits = [(q, r) for q, r in proxy.exchanges if b'"op":"load_init"' in q]
        assert len(inits) == 2 and inits[0] == inits[1]              # the same request, the same answer bytes
    finally:
        proxy.close()
        host.stop()
    books(tmp_path / "host.db", w, 1000)


def test_a_host_killed_mid_request_comes_back_and_the_card_is_credited_once(tmp_path):
    """The host is killed while its load_init waits inside the journal (another connection holds the
    write lock): nothing of that request was written; the wallet retries the same bytes against the
    restarted host, which authorises it afresh."""
    port = free_port()
    journal = tmp_path / "host.db"
    host = HostProcess.start(journal, port)
    blocker = sqlite3.connect(journal, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    w = make_world()
    results = []
    worker = threading.Thread(target=lambda: results.append(
        http_wallet(w, host.url, timeout=20, retries=40, backoff=0.1).topup(1000)))
    worker.start()
    try:
        host.wait_for("received load_init")
        host.kill()
        blocker.execute("ROLLBACK")
        blocker.close()
        host = HostProcess.start(journal, port)
        worker.join(60)
        assert not worker.is_alive()
        result, = results
        assert result.status == "loaded" and result.balance_after == 6000
        host.wait_for("answered 200 load_init")
    finally:
        host.stop()
    books(journal, w, 1000)


def test_a_host_killed_after_it_committed_answers_the_retry_from_its_journal(tmp_path):
    """The host wrote the order and its MAC2, then died before the answer reached the wallet: after the
    restart the retried request gets the stored order and MAC2, and the card is credited once."""
    port = free_port()
    journal = tmp_path / "host.db"
    host = HostProcess.start(journal, port)
    killed = []

    def kill_after_commit(request: bytes, response: bytes) -> bool:
        if b'"op":"load_init"' in request and not killed:
            killed.append(response.split(b"\r\n\r\n", 1)[1])
            host.kill()
            return False
        return True

    proxy = Proxy(port, kill_after_commit)
    restarted = None
    w = make_world()
    results = []
    worker = threading.Thread(target=lambda: results.append(
        http_wallet(w, proxy.url, timeout=20, retries=40, backoff=0.1).topup(1000)))
    worker.start()
    try:
        for _ in range(600):
            if killed:
                break
            worker.join(0.05)
        assert killed, "the host never answered load_init"
        restarted = HostProcess.start(journal, port)
        worker.join(60)
        assert not worker.is_alive()
        result, = results
        assert result.status == "loaded"
        first = json.loads(killed[0])
        retried = next(a for who, m, a in w.log if who == "host" and m["op"] == "load_init")
        assert retried == first                                      # the answer the dead host wrote
    finally:
        proxy.close()
        host.stop()
        if restarted is not None:
            restarted.stop()
    books(journal, w, 1000)


def test_a_wallet_killed_between_credit_and_confirm_is_settled_by_the_next_sync(tmp_path):
    """`ykt wallet topup` killed right after the host's MAC2 left (before or after CREDIT: either way):
    the next `ykt wallet sync` proves or completes the order; the card holds the amount once."""
    from ykt_card.card.image import load_card
    from .test_cli import issue_card_image

    card = issue_card_image(tmp_path)
    journal = tmp_path / "host.db"
    host = HostProcess.start(journal, free_port())
    try:
        wallet = subprocess.Popen(
            [*ykt_args(), "wallet", "topup", "--card", f"image:{card}", "--host", host.url, "--amount", "1000",
             "--account", "wallet-0001"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        host.wait_for("answered 200 load_init")
        wallet.kill()
        wallet.communicate()
        sync = subprocess.run([*ykt_args(), "wallet", "sync", "--card", f"image:{card}", "--host", host.url,
                               "--account", "wallet-0001", "--json"], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        assert sync.returncode == 0, sync.stderr
        settled = json.loads(sync.stdout)["settled"]
        assert [s["result"] for s in settled] in ([], ["proven"], ["completed"])
    finally:
        host.stop()
    state = load_card(card)
    with HostJournal(journal) as j:
        orders = j.all()
    assert [(o.state, o.amount) for o in orders] == [("confirmed", 1000)]
    assert state.purse.balance == 6000 and state.purse.online_counter == 1


def ykt_args() -> list[str]:
    from tests.tools.cli import YKT_ARGS
    return list(YKT_ARGS)

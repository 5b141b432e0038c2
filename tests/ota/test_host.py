"""The top-up host's rules, message by message: authentication, the protocol's checks, MAC1, the card's
limit, idempotency by card and online counter, confirmation by TAC, and every refusal as one line.

Requests carry genuine INITIALIZE FOR LOAD answers of the virtual card; they go through
`TopUpHost.respond`, the entry point the HTTP server uses too, as signed bytes.
"""
from __future__ import annotations

import json

import pytest

from keysets import TEST_KEYSET_DIR
from ota import CredentialError, load_credentials
from ota.credentials import sign
from ota.protocol import encode
from ykt_card.host.card import TUnionCard

from tests.terminal_sim.test_flows import make_world

from .helpers import CARD, CREDENTIALS, HOST_CLOCK, ISSUER, WALLET_TID, mac2_of, make_host, tac_of


def post(host, message, account: str = "wallet-0001", signature: str | None = None) -> tuple[int, dict]:
    body = encode(message) if isinstance(message, dict) else message
    sig = signature if signature is not None else CREDENTIALS[account].sign(body)
    return host.respond(account, sig, body)


def init_of(w, amount: int, key_index: int = 1) -> bytes:
    card = TUnionCard(w.card_reader)
    card.connect()
    card.select()
    i = card.initialize_load(key_index, amount, WALLET_TID)
    return (i.balance.to_bytes(4, "big") + i.online_counter.to_bytes(2, "big")
            + bytes((i.key_version, i.algorithm.wire_id)) + i.random + i.mac1)


def load_init(init_answer: bytes, fen: int, **changes) -> dict:
    return {"op": "load_init", "card_no": CARD, "issuer_id": ISSUER, "aid": "A000000632010105",
            "terminal_id": WALLET_TID.hex().upper(), "amount": fen, "init": init_answer.hex().upper(), **changes}


def test_load_init_answers_order_datetime_and_mac2_and_a_retry_the_same(tmp_path):
    w = make_world()
    host = make_host(tmp_path)
    init = init_of(w, 1000)
    status, answer = post(host, load_init(init, 1000))
    assert status == 200 and answer == {"order": "000000000001", "datetime": HOST_CLOCK,
                                        "mac2": mac2_of(w.state, init, 1000, WALLET_TID, HOST_CLOCK)}
    assert post(host, load_init(init, 1000)) == (200, answer)              # the host's clock moved; the answer not
    assert post(host, load_init(init, 1000, issuer_id=ISSUER.lower(), init=init.hex().lower())) == (200, answer)
    order, = host.journal.all()
    assert (order.state, order.attempts, order.counter, order.balance) == ("pending", 1, 0, 5000)


def test_confirm_checks_the_tac_and_is_idempotent(tmp_path):
    w = make_world()
    host = make_host(tmp_path)
    init = init_of(w, 1000)
    _, answer = post(host, load_init(init, 1000))
    tac = tac_of(w.state, init, 1000, WALLET_TID, HOST_CLOCK)
    wrong = f"{int(tac, 16) ^ 1:08X}"
    assert post(host, {"op": "load_confirm", "order": answer["order"], "sw": "9000", "tac": wrong}) == (
        422, {"error": "order 000000000001: the TAC does not verify; the order stays pending"})
    confirm = {"op": "load_confirm", "order": answer["order"], "sw": "9000", "tac": tac}
    assert post(host, confirm) == (200, {"order": "000000000001", "state": "confirmed"})
    assert post(host, confirm) == (200, {"order": "000000000001", "state": "confirmed"})
    assert post(host, {**confirm, "tac": wrong}) == (409, {"error": "order 000000000001 is confirmed with another TAC"})
    assert post(host, load_init(init, 1000)) == (200, answer)               # a late retry of the request
    other = init_of(w, 1000)                                                 # the card never credited: counter 0
    assert post(host, load_init(other, 1000)) == (409, {
        "error": f"card {CARD} at online counter 0: order 000000000001 is already confirmed"})


def test_a_pending_order_at_the_same_counter_is_completed_or_voided(tmp_path):
    w = make_world()
    host = make_host(tmp_path)
    _, first = post(host, load_init(init_of(w, 1000), 1000))
    again = init_of(w, 1000)                     # a new INITIALIZE at counter 0: the first was never credited
    status, second = post(host, load_init(again, 1000))
    assert status == 200 and second["order"] == first["order"] and second["mac2"] != first["mac2"]
    assert second["mac2"] == mac2_of(w.state, again, 1000, WALLET_TID, second["datetime"])
    assert host.journal.all()[0].attempts == 2
    _, third = post(host, load_init(init_of(w, 300), 300))                  # another amount: a new order
    assert third["order"] == "000000000002"
    old, new = host.journal.all()
    assert (old.state, old.reason) == ("void", "never credited: the card initialised another load at online counter 0")
    assert (new.state, new.amount) == ("pending", 300)
    assert post(host, {"op": "pending", "card_no": CARD}) == (200, {"orders": [
        {"order": "000000000002", "counter": 0, "amount": 300, "datetime": third["datetime"]}]})
    assert post(host, {"op": "pending", "card_no": CARD}, account="wallet-0003") == (200, {"orders": []})


def test_an_error_sw_leaves_the_order_pending(tmp_path):
    w = make_world()
    host = make_host(tmp_path)
    _, answer = post(host, load_init(init_of(w, 1000), 1000))
    status, reply = post(host, {"op": "load_confirm", "order": answer["order"], "sw": "9302"})
    assert status == 200 and reply["state"] == "pending"
    assert reply["reason"] == "the card answered 9302: the order stays pending until the card is seen again"
    assert host.journal.all()[0].last_sw == "9302"


@pytest.mark.parametrize("change, status, error", [
    ({"amount": 0}, 400, "load_init: amount: 0 out of range 1..4294967295"),
    ({"card_no": "3105810000000001234"}, 400, "load_init: card_no: must be 20 decimal digits, got '3105810000000001234'"),
    ({"aid": "A000000333010101"}, 400, "load_init: aid: A000000333010101 is not a T-Union application (RID A000000632)"),
    ({"init": "00"}, 400, "load_init: init: must be 16 bytes, got 1"),
    ({"colour": "red"}, 400, "load_init: colour: unknown field"),
    ({"terminal_id": "FF0000000002"}, 403, "terminal_id FF0000000002 is not account wallet-0001's terminal"),
    ({"amount": 999}, 422, "MAC1 does not verify: the card did not prove the request"),
])
def test_load_init_refusals(tmp_path, change, status, error):
    w = make_world()
    host = make_host(tmp_path)
    assert post(host, load_init(init_of(w, 1000), 1000, **change)) == (status, {"error": error})
    assert host.journal.all() == []


def test_a_load_above_the_card_s_maximum_balance_is_refused(tmp_path):
    w = make_world(balance=99_500)
    host = make_host(tmp_path)
    assert post(host, load_init(init_of(w, 400), 400))[0] == 200
    w2 = make_world(card_no="03105810000000005678", balance=99_500)
    low = make_host(tmp_path, max_balance=99_800, name="low.db")
    assert post(low, load_init(init_of(w2, 400), 400, card_no="03105810000000005678")) == (422, {
        "error": "amount 400: balance 99500 + 400 would exceed the card's maximum balance 99800"})


def test_a_host_without_the_card_s_key_version_refuses(tmp_path):
    from keysets import KeySet
    from ota import HostJournal, TopUpHost
    from ykt_card.clock import SimulatedClock

    w = make_world()
    sm4_only = TopUpHost([KeySet.load(TEST_KEYSET_DIR / "gd-test-sm4.toml")], CREDENTIALS,
                         HostJournal(tmp_path / "h.db"), SimulatedClock.parse(HOST_CLOCK))
    assert post(sm4_only, load_init(init_of(w, 1000), 1000)) == (422, {
        "error": "no 3des load key with version 01 at this host"})


@pytest.mark.parametrize("account, signature, body", [
    ("wallet-0001", "00" * 32, None),
    ("wallet-0009", None, None),
    (None, None, None),
    ("wallet-0001", None, b'{"op":"pending","card_no":"03105810000000001234"} '),
])
def test_unauthenticated_requests_are_refused_alike(tmp_path, account, signature, body):
    host = make_host(tmp_path)
    message = encode({"op": "pending", "card_no": CARD})
    sig = signature if signature is not None else sign(b"\x11" * 32, message)
    if account == "wallet-0001" and signature is None:
        sig = CREDENTIALS["wallet-0001"].sign(message)                      # signed, then the body changed
    assert host.respond(account, sig, body or message) == (401, {
        "error": "authentication failed: unknown account or bad signature"})


def test_orders_of_other_accounts_and_unknown_orders_are_not_found(tmp_path):
    w = make_world()
    host = make_host(tmp_path)
    _, answer = post(host, load_init(init_of(w, 1000), 1000))
    for account, order in (("wallet-0003", answer["order"]), ("wallet-0001", "000000000099")):
        assert post(host, {"op": "load_confirm", "order": order, "sw": "9000", "tac": "00000000"},
                    account=account) == (404, {"error": f"no order {order} of account {account}"})
    assert post(host, b"[1]") == (400, {"error": "request: expected a JSON object, got list"})
    assert post(host, b'{"op": "refund"}') == (400, {
        "error": "request: op: expected one of load_init, load_confirm, pending, got 'refund'"})
    assert post(host, {"op": "load_confirm", "order": answer["order"], "sw": "9000"}) == (400, {
        "error": "load_confirm: tac: required when the card answered 9000"})


# ---------------------------------------------------------------------------------------------------
# the TEST credential file

def test_the_shipped_credentials_and_their_secrets_stay_out_of_sight(tmp_path):
    assert sorted(CREDENTIALS) == ["wallet-0001", "wallet-0002", "wallet-0003"]
    account = CREDENTIALS["wallet-0002"]
    assert account.cards == frozenset({CARD}) and account.terminal_id == "FF0000000002"
    secret = account._secret.hex().upper()
    assert secret not in repr(account) and secret not in repr(CREDENTIALS) and secret not in str(account)
    body = b'{"op":"pending"}'
    assert account.verifies(body, account.sign(body).lower()) and not account.verifies(body, "00")


@pytest.mark.parametrize("text, message", [
    ('name = "TEST x"\ntest_only = false\n[accounts.a]\nsecret = "{s}"\nterminal_id = "FF0000000001"\n',
     "c.toml: test_only: must be true: ykt keeps wallet secrets in clear, so it takes TEST credentials only"),
    ('name = "wallets"\ntest_only = true\n[accounts.a]\nsecret = "{s}"\nterminal_id = "FF0000000001"\n',
     "c.toml: name: a test_only credential file must say TEST in its name"),
    ('name = "TEST x"\ntest_only = true\n[accounts.a]\nsecret = "00"\nterminal_id = "FF0000000001"\n',
     "c.toml: accounts.a.secret: must be 16..64 bytes, got 1"),
    ('name = "TEST x"\ntest_only = true\n[accounts.a]\nsecret = "{s}"\nterminal_id = "FF00"\n',
     "c.toml: accounts.a.terminal_id: must be 12 hex digits, got 'FF00'"),
    ('name = "TEST x"\ntest_only = true\n[accounts.a]\nsecret = "{s}"\nterminal_id = "FF0000000001"\ncards = ["12"]\n',
     "c.toml: accounts.a.cards[0]: must be 20 decimal digits (EF15 bytes 10..19), got '12'"),
    ('name = "TEST x"\ntest_only = true\n["accounts"."a b"]\nsecret = "{s}"\nterminal_id = "FF0000000001"\n',
     "c.toml: accounts.a b: an account ID is 1 to 64 of A-Z a-z 0-9 _ . -"),
    ('name = "TEST x"\ntest_only = true\naccounts = {{}}\n', "c.toml: accounts: no account"),
])
def test_credential_file_refusals_are_one_line_without_the_secret(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    secret = "5A" * 32
    (tmp_path / "c.toml").write_text(text.format(s=secret), encoding="utf-8")
    with pytest.raises(CredentialError) as info:
        load_credentials("c.toml")
    assert str(info.value) == message and secret not in str(info.value)
    with pytest.raises(CredentialError, match=r"^c\.toml: accounts: no account 'nobody'$"):
        CREDENTIALS.__class__({}, "TEST", "c.toml").account("nobody")


def test_no_key_and_no_secret_in_answers_journal_or_reprs(tmp_path):
    from tests.test_no_key_leaks import assert_clean, secrets
    from tests.ota.helpers import wallet

    w = make_world()
    host = make_host(tmp_path)
    result = wallet(w, host).topup(1000)
    text = " ".join([repr(host), repr(host.journal), repr(CREDENTIALS), json.dumps(result.to_dict()),
                     *(json.dumps(o.to_dict()) for o in host.journal.all()),
                     *(repr(a) for _, _, a in w.log)])
    values = secrets(w.state) | {a._secret.hex().upper() for a in CREDENTIALS.values()}
    assert_clean(text, values)

"""Challenges (D18), secure messaging, application block/unblock, PIN (D11), external auth, WRITE KEY."""
import pytest

from keysets import Algorithm, SecretKey, secure_messaging_mac
from keysets.mac import pad80
from ykt_card.card.state import Lock

from tests.ykt_card.helpers import (
    EF15, SELECT_AID, HostTerminal, ScriptedRandom, computed_master_keyset, gd_keyset, h, make_card,
    run_table, state_fingerprint,
)

FCI_PREFIX = "6F318408A000000632010105A5259F0801029F0C1E"


def selected(card):
    assert card.process(h(SELECT_AID))[-2:] == b"\x90\x00"
    return card


def unchanged(card, action):
    before = state_fingerprint(card)
    result = action()
    assert state_fingerprint(card) == before
    return result


@pytest.mark.parametrize("alg,mac", [("3des", "2E0BCC34"), ("sm4", "9840D1C3")])
def test_application_block_with_the_computed_sm_vector(alg, mac):
    """vectors.json computed.*.secure_messaging_mac: APPLICATION BLOCK under the app maintenance key."""
    card = selected(make_card([computed_master_keyset(alg)], rng=ScriptedRandom("5A6B7C8D")))
    run_table(card, [
        ("0084000004", "5A6B7C8D9000"),
        ("841E000004" + mac, "9000"),
        (SELECT_AID, FCI_PREFIX + EF15.hex().upper() + "6283"),
    ])
    assert card.state.lock is Lock.TEMPORARY


def test_challenge_is_good_for_the_next_command_only_d18():
    card = selected(make_card([computed_master_keyset("3des")], rng=ScriptedRandom("5A6B7C8D", "5A6B7C8D")))
    unchanged(card, lambda: run_table(card, [
        ("841E0000042E0BCC34", "6984"),          # no challenge yet
        ("0084000004", "5A6B7C8D9000"),
        ("805C000204", "000000009000"),          # any command spends it
        ("841E0000042E0BCC34", "6984"),
        ("0084000004", "5A6B7C8D9000"),
        ("841E0000042E0BCC35", "6988"),          # wrong MAC spends it too
        ("841E0000042E0BCC34", "6984"),          # ... so the right one is now late
    ]))


def test_replayed_secure_messaging_command_is_refused():
    card = selected(make_card([computed_master_keyset("3des")], rng=ScriptedRandom("5A6B7C8D")))
    run_table(card, [("0084000004", "5A6B7C8D9000"), ("841E0000042E0BCC34", "9000")])
    assert unchanged(card, lambda: card.process(h("841E0000042E0BCC34"))).hex() == "6984"


def test_block_unblock_use_their_own_keys_when_the_card_has_them():
    card = selected(make_card([gd_keyset("3des")]))
    t = HostTerminal.for_card(card, [gd_keyset("3des")])
    # the GD set names app_block and app_unblock: the app maintenance key does not lock the card
    assert unchanged(card, lambda: t.sm_command(h("841E000004"), b"", role="app_maintenance")).sw == 0x6988
    assert t.sm_command(h("841E000004"), b"", role="app_block").sw == 0x9000
    assert card.state.lock is Lock.TEMPORARY
    assert t.select().sw == 0x6283
    assert t.init_purchase(1).sw == 0x6985                   # temporarily locked: no transactions
    assert t.sm_command(h("8418000004"), b"", role="app_block").sw == 0x6988
    assert t.sm_command(h("8418000004"), b"", role="app_unblock").sw == 0x9000
    assert card.state.lock is Lock.NONE and t.select().sw == 0x9000


def test_permanent_block_cannot_be_undone():
    card = selected(make_card([gd_keyset("3des")]))
    t = HostTerminal.for_card(card, [gd_keyset("3des")])
    assert t.sm_command(h("841E000104"), b"", role="app_block").sw == 0x9000
    assert t.select().sw == 0x9303
    assert unchanged(card, lambda: t.sm_command(h("8418000004"), b"", role="app_unblock")).sw == 0x9303
    assert t.x("805C000204").sw == 0x9303 and t.x("00B095001E").sw == 0x9303


def test_block_on_a_dual_key_set_card_accepts_either_algorithm():
    card = selected(make_card())
    t = HostTerminal.for_card(card, [gd_keyset("3des"), gd_keyset("sm4")])
    assert t.sm_command(h("841E000004"), b"", role="app_block", key_index=2).sw == 0x9000
    assert t.sm_command(h("8418000004"), b"", role="app_unblock", key_index=1, challenge_len=8).sw == 0x9000


def test_block_and_unblock_header_checks():
    card = selected(make_card([gd_keyset("3des")]))
    unchanged(card, lambda: run_table(card, [
        ("841E000204" + "00" * 4, "6A86"), ("841E010004" + "00" * 4, "6A86"),
        ("841E000003" + "00" * 3, "6700"), ("8418000104" + "00" * 4, "6A86"),
        ("8418000005" + "00" * 5, "6700"), ("801E000004" + "00" * 4, "6E00"),
    ]))


def test_update_binary_with_secure_messaging():
    card = selected(make_card([gd_keyset("3des")]))
    t = HostTerminal.for_card(card, [gd_keyset("3des")])
    new17 = h("00000156" "4400" "5810" "0001" "01" "00000001") + bytes(45)
    r = t.sm_command(bytes((0x04, 0xD6, 0x97, 0x00, 60 + 4)), new17)
    assert r.sw == 0x9000 and t.x("00B0970000").data == new17
    r = t.sm_command(bytes((0x04, 0xD6, 0x97, 0x3A, 2 + 4)), b"\xAB\xCD")
    assert r.sw == 0x9000 and t.x("00B0973A02").data == b"\xAB\xCD"
    # EF15 changes the FCI's 9F0C (the FCI is built from the file)
    r = t.sm_command(bytes((0x04, 0xD6, 0x95, 0x1C, 2 + 4)), b"\x12\x34")
    assert r.sw == 0x9000 and t.select().data.endswith(b"\x12\x34")


@pytest.mark.parametrize("header,body,sw", [
    ("04D6973B", b"\x00\x00", 0x6700),        # runs past the end of EF17
    ("04D6973C", b"\x00", 0x6B00),            # offset at the end
    ("04D69800", b"\x00", 0x6981),            # EF18 is not binary
    ("04D69C00", b"\x00", 0x6A82),
    ("04D6B700", b"\x00", 0x6A86),
])
def test_update_binary_refusals(header, body, sw):
    card = selected(make_card([gd_keyset("3des")]))
    t = HostTerminal.for_card(card, [gd_keyset("3des")])
    r = unchanged(card, lambda: t.sm_command(h(header) + bytes((len(body) + 4,)), body))
    assert r.sw == sw


def test_update_binary_mac_challenge_and_plain_class():
    card = selected(make_card([gd_keyset("3des")]))
    t = HostTerminal.for_card(card, [gd_keyset("3des")])
    assert unchanged(card, lambda: t.sm_command(h("04D6970005"), b"\x01", tamper=True)).sw == 0x6988
    assert unchanged(card, lambda: t.x("04D697000501AABBCCDD")).sw == 0x6984
    assert unchanged(card, lambda: t.x("00D697000101")).sw == 0x6982
    assert unchanged(card, lambda: t.x("00DC01D40100")).sw == 0x6982
    assert unchanged(card, lambda: t.x("04D6970004AABBCCDD")).sw == 0x6700


def test_update_record_ef1a_and_cyclic_with_secure_messaging():
    card = selected(make_card([gd_keyset("3des")], balance=100))
    t = HostTerminal.for_card(card, [gd_keyset("3des")])
    rec2 = bytes((0x27, 0x02, 0x7D, 0x01, 0x01, 0x01)) + bytes(122)     # lock flag set by the issuer
    assert t.sm_command(bytes((0x04, 0xDC, 0x02, 0xD4, 128 + 4)), rec2).sw == 0x9000
    assert t.x("00B202D400").data == rec2
    assert t.purchase(1, capp=[bytes((0x80, 0xDC, 0, 0xF0, 0x30)) + bytes(48)])["sw"] == 0x9000
    assert t.sm_command(bytes((0x04, 0xDC, 0x01, 0xF4, 48 + 4)), b"\x06" * 48).sw == 0x9000
    assert t.x("00B201F400").data == b"\x06" * 48
    for header, body, sw in [((0x04, 0xDC, 0x03, 0xD4), bytes(128), 0x6A83),
                             ((0x04, 0xDC, 0x01, 0xD4), bytes(127), 0x6700),
                             ((0x04, 0xDC, 0x01, 0xC4), bytes(23), 0x6982),
                             ((0x04, 0xDC, 0x02, 0xF4), bytes(48), 0x6A83),
                             ((0x04, 0xDC, 0x01, 0xAC), bytes(30), 0x6981),
                             ((0x04, 0xDC, 0x01, 0xD0), bytes(128), 0x6A86)]:
        r = unchanged(card, lambda: t.sm_command(bytes(header) + bytes((len(body) + 4,)), body))
        assert r.sw == sw, header


def test_verify_pin_tries_then_blocked():
    card = selected(make_card([gd_keyset("3des")]))
    run_table(card, [
        ("0020000000", "63C3"),                      # no data: tries left
        ("0020000003123457", "63C2"),
        ("0020000003123456", "9000"),                # right PIN resets the counter
        ("0020000000", "9000"),
        ("0020000003111111", "63C2"),
        ("0020000003111111", "63C1"),
        ("0020000003111111", "63C0"),
        ("0020000003123456", "6983"),                # D11: blocked even for the right PIN
        ("0020000000", "6983"),
    ])
    assert card.state.pin.tries_left == 0


def test_verify_pin_format_checks_do_not_count():
    card = selected(make_card([gd_keyset("3des")], pin="12345"))
    unchanged(card, lambda: run_table(card, [
        ("00200000031234AF", "6A80"), ("0020000007" + "12" * 7, "6700"), ("00200001033612345F", "6A86"),
        ("0020010003123456", "6A86"), ("8020000003123456", "6E00"),
    ]))
    assert card.process(h("002000000312345F")).hex() == "9000"


def ext_auth_crypt(key: SecretKey, challenge: bytes) -> bytes:
    block = challenge + bytes(key.algorithm.block_size - len(challenge))
    return key.algorithm.cipher(key.value).encrypt(block)


@pytest.mark.parametrize("alg,index", [("3des", 1), ("sm4", 2)])
def test_external_authenticate(alg, index):
    card = selected(make_card())
    t = HostTerminal.for_card(card, [gd_keyset("3des"), gd_keyset("sm4")])
    key = t.keys[index].entry("external_auth").key
    ch = t.x("0084000004").data
    crypt = ext_auth_crypt(key, ch)
    assert t.x(bytes((0x00, 0x82, 0x00, index, len(crypt))) + crypt).sw == 0x9000
    ch = t.x("0084000008").data
    assert t.x(bytes((0x00, 0x82, 0x00, index, len(crypt))) + ext_auth_crypt(key, ch)).sw == 0x9000
    t.x("0084000004")
    assert t.x(bytes((0x00, 0x82, 0x00, index, len(crypt))) + crypt).sw == 0x6300      # old cryptogram
    assert t.x(bytes((0x00, 0x82, 0x00, index, len(crypt))) + crypt).sw == 0x6984      # no challenge
    t.x("0084000004")
    assert t.x(bytes((0x00, 0x82, 0x00, 0x07, len(crypt))) + crypt).sw == 0x6A88
    t.x("0084000004")
    assert t.x(bytes((0x00, 0x82, 0x00, index, 4)) + crypt[:4]).sw == 0x6700
    assert t.x(bytes((0x00, 0x82, 0x01, index, len(crypt))) + crypt).sw == 0x6A86


def test_get_challenge_lengths():
    card = make_card([gd_keyset("3des")], rng=ScriptedRandom("01020304", "0102030405060708"))
    run_table(card, [("0084000004", "010203049000"), ("0084000008", "01020304050607089000"),
                     ("0084000010", "6700"), ("0084000000", "6700"), ("0084000104", "6A86"),
                     ("008400", "6700"), ("0084000001AA04", "6700")])


# --- WRITE KEY ------------------------------------------------------------------------------------

def write_key(t: HostTerminal, protector: SecretKey, p1: int, p2: int, key: SecretKey, version: int = 1,
              plain: bytes | None = None, tamper: bool = False):
    ch = t.x("0084000004").data
    if plain is None:
        plain = bytes((0x14, key.algorithm.wire_id, version, 0, 0)) + key.value
    enc = protector.algorithm.cipher(protector.value).encrypt(pad80(plain, protector.algorithm.block_size))
    header = bytes((0x84, 0xD4, p1, p2, len(enc) + 4))
    m = secure_messaging_mac(protector.algorithm, protector.value, ch, header + enc)
    if tamper:
        m = bytes((m[0] ^ 1,)) + m[1:]
    return t.x(header + enc + m)


def test_write_key_replaces_a_purchase_key_under_the_card_master_key():
    card = selected(make_card([gd_keyset("3des")], balance=100))
    t = HostTerminal.for_card(card, [gd_keyset("3des")])
    master = t.keys[1].entry("card_master").key
    new = SecretKey(Algorithm.TDES, h("00112233445566778899AABBCCDDEEFF"))
    assert write_key(t, master, 0x3E, 0x01, new, version=2).sw == 0x9000
    entry = card.state.key_sets[1].entry("purchase")
    assert entry.key == new and entry.version == 2 and entry.index == 1
    assert t.purchase(1)["sw"] == 0x9302           # the terminal still holds the old key
    from dataclasses import replace
    from keysets import KeyEntry
    t.keys[1] = replace(t.keys[1], keys={**t.keys[1].keys, "purchase": KeyEntry("purchase", 1, 2, new)})
    r = t.purchase(1)
    assert r["sw"] == 0x9000
    assert t.init_purchase(1).data[9] == 2           # INITIALIZE reports the new key version


def test_write_key_builds_a_new_sm4_key_set_under_the_transport_key():
    transport = SecretKey(Algorithm.TDES, b"\xFF" * 16)
    card = selected(make_card([gd_keyset("3des")], transport_key=transport, balance=100))
    t = HostTerminal.for_card(card, [gd_keyset("3des")])
    sm4 = gd_keyset("sm4").card_keys(card.state.issuer_id, card.state.serial8)
    for role, p1 in (("purchase", 0x3E), ("load", 0x3F), ("tac", 0x34), ("app_maintenance", 0x36),
                     ("card_master", 0x30)):
        assert write_key(t, transport, p1, 0x03, sm4.entry(role).key).sw == 0x9000
    assert card.state.key_sets[3].algorithm is Algorithm.SM4
    t.keys[3] = card.state.key_sets[3]
    assert t.init_purchase(1, key_index=3).data[10] == 0x04
    assert t.purchase(5, key_index=3)["sw"] == 0x9000
    # from now on key set 03 is protected by its own card_master (SM4), not by the transport key
    assert write_key(t, transport, 0x3E, 0x03, sm4.entry("purchase").key).sw == 0x6700
    assert write_key(t, sm4.entry("card_master").key, 0x3E, 0x03, sm4.entry("purchase").key).sw == 0x9000
    # and the transport key itself can be replaced (P2 00)
    new_transport = SecretKey(Algorithm.TDES, h("0F0E0D0C0B0A09080706050403020100"))
    assert write_key(t, transport, 0x30, 0x00, new_transport).sw == 0x9000
    assert card.state.transport_key == new_transport


def test_write_key_refusals_change_nothing():
    transport = SecretKey(Algorithm.TDES, b"\xFF" * 16)
    card = selected(make_card([gd_keyset("3des")], transport_key=transport))
    t = HostTerminal.for_card(card, [gd_keyset("3des")])
    master = t.keys[1].entry("card_master").key
    k = SecretKey(Algorithm.TDES, h("00112233445566778899AABBCCDDEEFF"))
    sm4k = SecretKey(Algorithm.SM4, h("00112233445566778899AABBCCDDEEFF"))

    def check(sw, *args, **kw):
        assert unchanged(card, lambda: write_key(t, *args, **kw)).sw == sw

    check(0x6A86, master, 0x99, 0x01, k)                          # unknown key type
    check(0x6A86, master, 0x3E, 0x00, k)                          # P2 00 is the transport key only
    check(0x6988, master, 0x3E, 0x01, k, tamper=True)
    check(0x6988, transport, 0x3E, 0x01, k)                       # set 01 has its own card_master
    check(0x6A80, master, 0x3E, 0x01, sm4k)                       # SM4 key into the 3DES set
    check(0x6A80, master, 0x3E, 0x01, k, plain=b"\x15\x00\x01\x00\x00" + k.value)
    check(0x6A80, master, 0x3E, 0x01, k, plain=b"\x14\x07\x01\x00\x00" + k.value)   # algorithm 07
    check(0x6A80, master, 0x3E, 0x01, k, plain=b"\x14\x00\x01\x00\x00" + k.value + b"\x01")
    assert unchanged(card, lambda: t.x("84D43E011C" + "00" * 28)).sw == 0x6984
    assert unchanged(card, lambda: t.x("84D43E0110" + "00" * 16)).sw == 0x6700
    card2 = selected(make_card([gd_keyset("sm4")]))               # no transport key, no set 05
    t2 = HostTerminal.for_card(card2, [gd_keyset("sm4")])
    assert t2.x("84D43E051C" + "00" * 28).sw == 0x6A88

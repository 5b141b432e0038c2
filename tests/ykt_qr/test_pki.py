"""The TEST PKI (Q13): codes it makes pass the independent implementation; files repeat under a seed; guards."""
from __future__ import annotations

import pytest

from keysets import RandomSource
from ykt_qr import TEST_PKI_DIR, RootStore, Verifier
from ykt_qr.pki import (Issuer, PkiError, RootCa, account_number, load_account, load_issuer, load_root)

from . import independent as ind
from .conftest import NOW, T0


def _point(xy: bytes):
    return int.from_bytes(xy[:32], "big"), int.from_bytes(xy[32:], "big")


@pytest.mark.parametrize("uid_mode", ["default", "shanghai"])
@pytest.mark.parametrize("custom", [b"", bytes(range(32))])
def test_generated_codes_verify_under_the_independent_implementation(uid_mode, custom):
    rng = RandomSource(11)
    ca = RootCa.create(0xF3, bytes.fromhex("1249"), rng)
    issuer = Issuer.create(ca, bytes.fromhex("02002900"), bytes.fromhex("31047700"), bytes.fromhex("1239"),
                           b"\x00\x00\x07", uid_mode, rng)
    account = issuer.new_account(b"SH00000000000042", account_number("3104870395346358827"), T0 + 86400, rng,
                                 custom=custom, version=0x81, account_type=0x02, limit=500, validity=120)
    code = account.show(T0, rng).to_bytes()
    n = len(custom)
    assert len(code) == 332 + n and int.from_bytes(code[1:3], "big") == 329 + n
    assert code[136:146].hex().upper() == "3104870395346358827F"
    shanghai = uid_mode == "shanghai"
    root = _point(ca.record[16:80])
    assert ind.verify(root, ca.record[:80], ca.record[80:])
    assert ind.verify(root, code[9:56], code[56:120], code[4:9] if shanghai else ind.DEFAULT_ID)
    assert ind.verify(ind.decompress(code[23:56]), code[3:198 + n], code[199 + n:263 + n],
                      code[146:154] if shanghai else ind.DEFAULT_ID)
    assert ind.verify(ind.decompress(code[158:191]), code[:267 + n], code[268 + n:],
                      code[136:146] if shanghai else ind.DEFAULT_ID)
    assert (code[198 + n], code[267 + n]) == (0x15, 0x15)
    assert int.from_bytes(code[263 + n:267 + n], "big") == T0


def test_a_seed_repeats_every_byte_and_another_seed_does_not():
    def make(seed: int) -> tuple[bytes, bytes, bytes]:
        rng = RandomSource(seed)
        ca = RootCa.create(0xF0, bytes.fromhex("1249"), rng)
        issuer = Issuer.create(ca, bytes(4), bytes(4), bytes.fromhex("1239"), bytes(3), "default", rng)
        account = issuer.new_account(b"0000000000000000", account_number("1"), T0 + 60, rng)
        return ca.record, issuer.certificate, account.show(T0, rng).to_bytes()
    assert make(5) == make(5)
    assert all(a != b for a, b in zip(make(5), make(6)))


def test_the_shipped_pki_loads_and_its_code_verifies():
    root = load_root(TEST_PKI_DIR / "test-root-f0.toml")
    issuer = load_issuer(TEST_PKI_DIR / "test-issuer.toml")
    account = load_account(TEST_PKI_DIR / "test-account.toml")
    store = RootStore.load(TEST_PKI_DIR / "roots-test.json")
    assert list(store) == [0xF0] and store[0xF0].record == root.record
    assert account.authorisation.certificate == issuer.certificate
    code = account.show(T0, RandomSource(1)).to_bytes()
    assert Verifier(store).verify(code, NOW).accepted


def _write(tmp_path, text: str):
    path = tmp_path / "f.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _shipped(name: str) -> str:
    return (TEST_PKI_DIR / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("file, change, loader, message", [
    ("test-root-f0.toml", ("test_only = true", "test_only = false"), load_root,
     "test_only: ykt keeps QR keys in clear: only TEST PKI files (test_only = true) are accepted"),
    ("test-root-f0.toml", ("YKT-TEST-QR-ROOT-F0 (test key", "YKT-QR-ROOT-F0 (a key"), load_root,
     "name: a TEST PKI file must say TEST in its name"),
    ("test-root-f0.toml", ('index = "F0"', 'index = "02"'), load_root, "index: 02: TEST roots use F0..FF (Q13)"),
    ("test-root-f0.toml", ('index = "F0"', 'index = "F1"'), load_root, "record: the record says index F0, the file F1"),
    ("test-root-f0.toml", ('private_key = "1E', 'private_key = "1F'), load_root,
     "private_key: does not match the record's public key"),
    ("test-root-f0.toml", ('kind = "qr-root"', 'kind = "qr-issuer"'), load_root, "kind: must be 'qr-root', got 'qr-issuer': not a QR root CA file"),
    ("test-issuer.toml", ('private_key = "5C', 'private_key = "5D'), load_issuer,
     "private_key: does not match the certificate's public key"),
    ("test-issuer.toml", ('uid_mode = "default"', 'uid_mode = "beijing"'), load_issuer,
     "uid_mode: must be 'default' or 'shanghai'"),
    ("test-account.toml", ('authorisation = "80', 'authorisation = "'), load_account,
     "authorisation: must be 263..295 bytes, got 262"),
    ("test-account.toml", ('private_key = "79', 'private_key = "00'), load_account,
     "private_key: does not match the authorisation's user key"),
])
def test_pki_files_are_refused_in_one_line_naming_the_field(tmp_path, file, change, loader, message):
    text = _shipped(file)
    assert change[0] in text
    path = _write(tmp_path, text.replace(change[0], change[1], 1))
    with pytest.raises(PkiError) as info:
        loader(path)
    assert str(info.value) == f"{path}: {message}"
    secret = next(line for line in text.splitlines() if line.startswith("private_key"))[15:-1]
    assert secret not in str(info.value)


def test_the_generator_refuses_what_no_terminal_would_take():
    rng = RandomSource(3)
    with pytest.raises(ValueError, match="root index 02: TEST roots use F0..FF"):
        RootCa.create(0x02, bytes.fromhex("1249"), rng)
    issuer = load_issuer(TEST_PKI_DIR / "test-issuer.toml")
    for kw, message in (({"validity": 1201}, "validity: must be 0..1200 s"),
                        ({"custom": bytes(33)}, "custom: at most 32 bytes"),
                        ({"version": 0x40}, "version: must be 80..FF")):
        with pytest.raises(ValueError, match=message):
            issuer.new_account(b"0000000000000000", account_number("1"), T0, rng, **kw)
    with pytest.raises(ValueError, match="支付账户号 must be 16 printable ASCII"):
        issuer.new_account(b"short", account_number("1"), T0, rng)
    with pytest.raises(ValueError, match="expected 1 to 20 decimal digits"):
        account_number("12345678901234567890123")


def test_reprs_of_the_parties_name_keys_by_fingerprint_only():
    parties = [load_root(TEST_PKI_DIR / "test-root-f0.toml"), load_issuer(TEST_PKI_DIR / "test-issuer.toml"),
               load_account(TEST_PKI_DIR / "test-account.toml")]
    for party in parties:
        text = repr(party) + str(party)
        assert party.key.value.hex().upper() not in text.upper()
        assert party.key.public_key.fingerprint in text

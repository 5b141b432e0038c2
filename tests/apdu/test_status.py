"""ResponseApdu, the status-word table, describe(), is_valid_sw() and CardError."""
from __future__ import annotations

import pickle
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

import apdu.status as status
from apdu.command import ApduError
from apdu.status import (STATUS_WORDS, CardError, ResponseApdu, describe, is_valid_sw,
                         pin_tries_sw)


ISO_REQUIRED = [0x6200, 0x6281, 0x6282, 0x6283, 0x6284, 0x6400, 0x6581, 0x6700, 0x6881, 0x6882,
                0x6900, *range(0x6981, 0x6989), *range(0x6A80, 0x6A89), 0x6B00, 0x6D00, 0x6E00, 0x6F00, 0x9000]


@pytest.mark.parametrize("sw", ISO_REQUIRED, ids=lambda sw: f"{sw:04X}")
def test_standard_status_words_are_in_the_table(sw):
    assert STATUS_WORDS[sw] == describe(sw)
    assert describe(sw) != "unknown status word"


def test_named_constants():
    expected = dict(
        SW_OK=0x9000, SW_WRONG_LENGTH=0x6700, SW_SECURITY_STATUS=0x6982, SW_AUTH_BLOCKED=0x6983,
        SW_REF_DATA_INVALID=0x6984, SW_CONDITIONS=0x6985, SW_SM_MAC=0x6988, SW_WRONG_DATA=0x6A80,
        SW_FUNC_NOT_SUPPORTED=0x6A81, SW_FILE_NOT_FOUND=0x6A82, SW_RECORD_NOT_FOUND=0x6A83,
        SW_NO_SPACE=0x6A84, SW_WRONG_P1P2=0x6A86, SW_KEY_NOT_FOUND=0x6A88, SW_WRONG_OFFSET=0x6B00,
        SW_INS_NOT_SUPPORTED=0x6D00, SW_CLA_NOT_SUPPORTED=0x6E00, SW_UNKNOWN=0x6F00,
        SW_FILE_INVALIDATED=0x6283, SW_FCI_NOT_FORMATTED=0x6284,
        SW_FILE_INCOMPATIBLE=0x6981, SW_MEMORY_FAILURE=0x6581,
    )
    assert {name: getattr(status, name) for name in expected} == expected
    constants = {name: value for name, value in vars(status).items() if name.startswith("SW_")}
    assert set(constants) <= set(status.__all__)
    for name, value in constants.items():
        assert is_valid_sw(value) and describe(value) != "unknown status word", name


def test_describe_patterns():
    assert describe(0x6110) == "16 more response bytes available (GET RESPONSE)"
    assert describe(0x6100) == "256 more response bytes available (GET RESPONSE)"
    assert describe(0x6C0F) == "wrong Le: 15 bytes available"
    assert describe(0x6C00) == "wrong Le: 256 bytes available"
    assert describe(0x63C2) == "verification failed, 2 tries left"
    assert describe(0x63C0) == "verification failed, 0 tries left"
    assert describe(0x9FFF) == "unknown status word"
    assert describe(0x6B01) == "unknown status word"
    assert describe(0x1234) == "invalid status word (SW1 must be 61..6F or 90..9F)"
    assert describe(0x6000) == "invalid status word (SW1 must be 61..6F or 90..9F)"
    assert describe(0x10000) == "not a status word (65536)"


def test_is_valid_sw():
    assert all(is_valid_sw(sw) for sw in (0x6100, 0x6FFF, 0x9000, 0x9FFF, 0x6283))
    assert not any(is_valid_sw(sw) for sw in (0x6000, 0x60FF, 0x7000, 0x8FFF, 0xA000, 0x0000,
                                               -1, 0x10000, True, "9000"))


def test_pin_tries_sw():
    assert pin_tries_sw(2) == 0x63C2
    with pytest.raises(ValueError, match="tries_left 16 out of range 0..15"):
        pin_tries_sw(16)


# -- ResponseApdu ----------------------------------------------------------------------------------
def test_response_parse_and_views():
    resp = ResponseApdu.parse(bytes.fromhex("000003E89000"))
    assert resp.data == bytes.fromhex("000003E8") and resp.sw == 0x9000
    assert (resp.sw1, resp.sw2, resp.ok) == (0x90, 0x00, True)
    assert resp.to_bytes() == bytes(resp) == bytes.fromhex("000003E89000")
    assert resp.hex() == "000003E89000"
    assert str(resp) == "000003E8 9000 OK"
    assert resp.check() == bytes.fromhex("000003E8")


def test_response_error_and_warning():
    resp = ResponseApdu.parse(bytes.fromhex("6A82"))
    assert (resp.data, resp.sw1, resp.sw2, resp.ok) == (b"", 0x6A, 0x82, False)
    assert str(resp) == "6A82 file or application not found"
    with pytest.raises(CardError) as err:
        resp.check()
    assert err.value.sw == 0x6A82
    locked = ResponseApdu(bytes.fromhex("6F00"), 0x6283)
    assert not locked.ok and locked.to_bytes() == bytes.fromhex("6F006283")


@pytest.mark.parametrize("raw, message", [
    ("", "response too short: 0 bytes, SW1 SW2 need 2"),
    ("90", "response too short: 1 byte, SW1 SW2 need 2"),
])
def test_response_too_short(raw, message):
    with pytest.raises(ApduError, match=f"^{re.escape(message)}$"):
        ResponseApdu.parse(bytes.fromhex(raw))


def test_response_field_validation():
    with pytest.raises(ApduError, match=r"^SW 65536 out of range 0000..FFFF$"):
        ResponseApdu(b"", 0x10000)
    with pytest.raises(ApduError, match=r"^response data must be bytes, not str$"):
        ResponseApdu("00", 0x9000)  # type: ignore[arg-type]
    with pytest.raises(ApduError, match=r"^response data is 65537 bytes, at most 65536$"):
        ResponseApdu(bytes(65537), 0x9000)


@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_response_round_trip(data, sw):
    resp = ResponseApdu(data, sw)
    assert ResponseApdu.parse(resp.to_bytes()) == resp
    assert resp.to_bytes()[-2:] == bytes([resp.sw1, resp.sw2])


# -- CardError -------------------------------------------------------------------------------------
def test_card_error_str_and_fields():
    err = CardError(0x6A82)
    assert (err.sw, err.detail, err.sw1, err.sw2) == (0x6A82, None, 0x6A, 0x82)
    assert str(err) == "6A82 file or application not found"
    detailed = CardError(0x6985, "no INITIALIZE")
    assert str(detailed) == "6985 conditions of use not satisfied: no INITIALIZE"
    assert str(CardError(0x63C1)) == "63C1 verification failed, 1 tries left"


def test_card_error_survives_pickling():
    err = pickle.loads(pickle.dumps(CardError(0x6985, "no INITIALIZE")))
    assert (err.sw, err.detail, str(err)) == (0x6985, "no INITIALIZE",
                                             "6985 conditions of use not satisfied: no INITIALIZE")


@pytest.mark.parametrize("sw, message", [
    (0x9000, "CardError needs an error status word, not 9000"),
    (0x10000, "CardError needs a status word 0000..FFFF, got 65536"),
    ("6A82", "CardError needs a status word 0000..FFFF, got '6A82'"),
])
def test_card_error_refuses_non_errors(sw, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        CardError(sw)

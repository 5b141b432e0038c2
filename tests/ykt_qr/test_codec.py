"""The codec against the reference's tables (mobile.md §1.1-1.3) and the real vectors, plus round trips."""
from __future__ import annotations

import datetime as dt
import re

from hypothesis import given, strategies as st

from tests.reference import reference_text
from ykt_qr import vectors
from ykt_qr.codec import (CERTIFICATE, HEAD, ROOT_RECORD, Authorisation, Certificate, CodecError, QrCode, RootRecord,
                          mmyy)

import pytest


def _layout(struct) -> list[tuple[int, int]]:
    """(offset, size) of every named field of a construct Struct, in order."""
    out, offset = [], 0
    for sub in struct.subcons:
        if not sub.name:
            continue
        size = sub.sizeof()
        out.append((offset, size))
        offset += size
    return out


def _section(title: str, end: str) -> str:
    text = reference_text("mobile.md")
    return text[text.index(title):text.index(end)]


def test_the_head_has_the_offsets_of_the_reference_table():
    """§1.1: every fixed row `| off | len | …` up to the custom field, in order."""
    rows = re.findall(r"^\| (\d+) \| (\d+) \|", _section("### 1.1", "### 1.2"), flags=re.MULTILINE)
    assert [(int(o), int(n)) for o, n in rows] == _layout(HEAD)
    assert _layout(HEAD)[-1] == (197, 1)


def test_the_certificate_has_the_offsets_of_the_reference_table():
    """§1.2: `| cert | QR | len | field |`, the QR offset being cert + 3."""
    rows = re.findall(r"^\| (\d+) \| (\d+) \| (\d+) \|", _section("### 1.2", "### 1.3"), flags=re.MULTILINE)
    assert [(int(c), int(n)) for c, _, n in rows] == _layout(CERTIFICATE)
    assert all(int(q) == int(c) + 3 for c, q, _ in rows)


def test_the_root_record_has_the_offsets_of_the_reference_text():
    """§1.3: index at 10, expiry at 11, X‖Y at 16, self-signature at 80; 144 bytes."""
    layout = dict(zip([s.name for s in ROOT_RECORD.subcons if s.name], _layout(ROOT_RECORD)))
    assert layout["index"] == (10, 1) and layout["expiry"] == (11, 2)
    assert layout["public_key"] == (16, 64) and layout["signature"] == (80, 64)


def test_the_shipped_vectors_are_the_reference_copy(real_code, real_root_02):
    assert vectors.REAL_CODE == real_code
    assert vectors.REAL_ROOT_02 == real_root_02


def test_the_real_sample_decodes_to_the_fields_of_1_7(real_code):
    code = QrCode.parse(real_code)
    a = code.authorisation
    cert = Certificate.parse(a.certificate)
    utc = dt.timezone.utc
    assert (a.version, a.length, len(a.custom)) == (0x81, 332 - 3, 0)
    assert (cert.root_index, cert.issuer_id.hex(), cert.expiry.hex(), cert.expiry_month) == (0x17, "02113450", "0620",
                                                                                            (2020, 6))
    assert (cert.header, cert.format, cert.algorithms.hex(), cert.key_length) == (0x24, 0x12, "0404", 0x21)
    assert a.pay_account == b"2088702372862094"
    assert a.account_no.hex() == "90012088702372862094"
    assert (a.issuer.hex(), a.platform.hex(), a.account_type, a.limit, a.validity) == ("02113450", "50023301", 0,
                                                                                      2000, 600)
    assert dt.datetime.fromtimestamp(code.gen_time, utc) == dt.datetime(2020, 6, 23, 6, 18, 20, tzinfo=utc)
    assert a.auth_expiry - code.gen_time == 604800
    assert (code.gen_time, a.auth_expiry) == (vectors.REAL_CODE_GEN_TIME, vectors.REAL_CODE_AUTH_EXPIRY)
    assert (a.issuer_sig_format, code.user_sig_format) == (0x15, 0x15)
    assert code.to_bytes() == real_code
    assert code.user_signed_part == real_code[:267] and a.issuer_signed_part == real_code[3:198]
    assert cert.signed_part == real_code[9:56] and cert.to_bytes() == real_code[3:120]


def test_the_real_root_record_decodes(real_root_02):
    rec = RootRecord.parse(real_root_02)
    assert (rec.header, rec.service.hex(), rec.rid.hex().upper(), rec.index) == (0x21, "01010000", "A000000632", 2)
    assert (rec.expiry_month, rec.algorithm, rec.parameter, rec.key_length) == ((2040, 12), 4, 0x11, 0x40)
    assert rec.to_bytes() == real_root_02 and rec.signed_part == real_root_02[:80]


@pytest.mark.parametrize("data, what", [
    (vectors.REAL_CODE[:-1], "code: 331 bytes"),
    (vectors.REAL_CODE + b"\x00", "code: 333 bytes"),
    (vectors.REAL_ROOT_02[:100], "root record: 100 bytes"),
    (bytes(116), "certificate: 116 bytes"),
])
def test_bytes_that_do_not_fit_are_refused_naming_the_part(data, what):
    parser = {"code": QrCode.parse, "root record": RootRecord.parse, "certificate": Certificate.parse}[what.split(":")[0]]
    with pytest.raises(CodecError, match=f"^{what} do not fit its layout"):
        parser(data)


@pytest.mark.parametrize("raw, result", [("0620", (2020, 6)), ("1240", (2040, 12)), ("0100", (2000, 1))])
def test_mmyy(raw, result):
    assert mmyy(bytes.fromhex(raw)) == result


@pytest.mark.parametrize("raw", ["1320", "0020", "1A20", "06"])
def test_mmyy_refuses_what_is_not_a_month(raw):
    with pytest.raises(ValueError, match="is not a BCD MMYY date"):
        mmyy(bytes.fromhex(raw))


fixed = st.binary
authorisations = st.builds(
    Authorisation,
    version=st.integers(0x80, 0xFF), length=st.integers(0, 0xFFFF), certificate=fixed(min_size=117, max_size=117),
    pay_account=fixed(min_size=16, max_size=16), account_no=fixed(min_size=10, max_size=10),
    issuer=fixed(min_size=4, max_size=4), platform=fixed(min_size=4, max_size=4), account_type=st.integers(0, 255),
    limit=st.integers(0, 0xFFFFFF), user_key=fixed(min_size=33, max_size=33), auth_expiry=st.integers(0, 2**32 - 1),
    validity=st.integers(0, 0xFFFF), custom=fixed(max_size=32), issuer_sig_format=st.integers(0, 255),
    issuer_signature=fixed(min_size=64, max_size=64))


@given(authorisations, st.integers(0, 2**32 - 1), st.integers(0, 255), fixed(min_size=64, max_size=64))
def test_codes_round_trip(auth, gen_time, fmt, signature):
    code = QrCode(auth, gen_time, fmt, signature)
    data = code.to_bytes()
    assert len(data) == 332 + len(auth.custom)
    assert QrCode.parse(data) == code
    assert Authorisation.parse(auth.to_bytes()) == auth
    assert data[263 + len(auth.custom):267 + len(auth.custom)] == gen_time.to_bytes(4, "big")

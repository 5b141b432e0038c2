"""`clearing.records`: the fast path of `JsonReader.parse` says what the straightforward reader says.

The fast path (`records._fast_parse`) only ever accepts: it returns a record's tuple, or None to let the
reference (`records._reference_parse`: decode every field, `check` with the per-field patterns) give the verdict
and the message. So the reader must be the reference, line for line: the same tuple, the same Malformed
message, the same QR ride. These tests generate well-formed records of every status and medium, mutate them
(characters of the wrong class, lower-case hex, unicode, JSON escapes, empty strings, nulls, missing fields,
QR fields on a card record, unknown and duplicate keys, spacing) and compare the two.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import event, given, settings, strategies as st

from clearing import records
from clearing.records import FIELDS_OF_TUPLE, JsonReader, Malformed, QrRideLine
from terminal_sim.outcome import FIELDS, QR_FIELDS
from tests.clearing.test_records import GOOD
from tests.terminal_sim.test_outcome import RIDE

BUS = {"status": "approved", "type": "06", "card_no": "03104870300000000009", "issuer_id": "02205810FFFFFFFF",
       "amount": 450, "balance_before": 5000, "balance_after": 4550, "overdraft_limit": 0, "card_counter": 53,
       "terminal_id": "440300000000", "terminal_seq": 1, "datetime": "20261124060838", "key_version": 1,
       "algorithm": "sm4", "tac": "5707BC0C", "mac2_verified": True, "list_version": "2026112401", "mode": "bus",
       "city": "5810", "operator": "0301", "line": "0002", "vehicle": "B00000", "card_type": "01", "full_fare": 450}
LOAD = {"status": "approved", "type": "02", "card_no": "03104870300000000017", "issuer_id": "02205810FFFFFFFF",
        "amount": 5000, "balance_before": 100, "balance_after": 5100, "card_counter": 7, "terminal_id": "440300000009",
        "datetime": "20261124235959", "key_version": 2, "algorithm": "3des", "tac": "0A0B0C0D", "mode": "load",
        "medium": "virtual"}
TORN = {"status": "torn", "type": "09", "reason": "card left the field", "card_no": "03104870300000000024",
        "amount": 300, "card_counter": 12, "terminal_id": "440300000001", "terminal_seq": 99,
        "datetime": "20240229120000", "station": "03", "entry_station": "0102030405060708",
        "entry_terminal": "AB", "entry_time": "20240229115900", "medium": "physical"}
FAILED = {"status": "failed", "type": "06", "reason": "PSAM refused MAC2", "card_no": "03104870300000000031",
          "issuer_id": "02205810FFFFFFFF", "amount": 200, "balance_before": 900, "card_counter": 4, "key_version": 1,
          "algorithm": "sm4", "tac": "14CBF2C8", "terminal_id": "440300000002", "terminal_seq": 5,
          "datetime": "20261124085104", "vehicle": "!~\"\\'Zz9", "overdraft_limit": 1000}
RECOVERED = dict(GOOD, status="recovered", mode="ferry", direction="BA")
TEMPLATES = {"metro": GOOD, "bus": BUS, "load": LOAD, "torn": TORN, "failed": FAILED, "recovered": RECOVERED,
             "qr ride": RIDE}


def _verdict(parse, line: bytes):
    try:
        return "accepted", parse(line)
    except Malformed as exc:
        return "malformed", str(exc)
    except QrRideLine as exc:
        return "qr ride", exc.ride


@pytest.mark.parametrize("name", [n for n in TEMPLATES if n != "qr ride"])
def test_the_fast_path_takes_each_kind_of_well_formed_card_record(name):
    line = json.dumps(TEMPLATES[name]).encode()
    fast = records._fast_parse(line)
    assert fast is not None
    assert fast == records._reference_parse(line) == JsonReader().parse(line)
    assert len(fast) == len(FIELDS_OF_TUPLE)


@pytest.mark.parametrize("line", [
    json.dumps(dict(BUS, tac="5707bc0c")), json.dumps(dict(BUS, status="torn", reason="r")),
    json.dumps(dict(BUS, city=None)), json.dumps(dict(TORN, tac=None)), json.dumps(dict(BUS, qr_code=None)),
    json.dumps(dict(BUS, status="declined", reason="black list")), json.dumps(RIDE),
])
def test_what_the_fast_path_leaves_to_the_reference(line):
    """Lower case, a TAC on a torn record, nulls, QR fields, a declined record, a QR ride: the reference's."""
    assert records._fast_parse(line.encode()) is None
    assert _verdict(JsonReader().parse, line.encode()) == _verdict(records._reference_parse, line.encode())


# -- mutations: every field, any value the decoder might meet, written the ways JSON allows ---------------------

_HEXISH = "0123456789ABCDEFabcdef"
_CHARS = st.sampled_from(_HEXISH + "GZgz !~\"\\'\x00\x1e\x1f\x7f\u00e9\u0663\uff10\u00b2\U0001f600")
_TEXT = st.one_of(st.text(st.sampled_from("0123456789"), min_size=0, max_size=22),
                  st.text(st.sampled_from("0123456789ABCDEF"), min_size=0, max_size=22),
                  st.text(st.sampled_from(_HEXISH), min_size=1, max_size=22), st.text(_CHARS, max_size=22))
_NULL = object()   # an explicit JSON null (None removes the field)
_VALUES = st.one_of(
    st.none(), st.just(_NULL), _TEXT, st.booleans(), st.integers(-2**32, 2**33),
    st.sampled_from([0, 1, 255, 256, 65535, 65536, 0xFFFFFF, 0x1000000, 2**31 - 1, -2**31, 2**32 - 1, 1.5, 2.0,
                     "approved", "recovered", "torn", "failed", "declined", "02", "06", "09", "2", "3des", "sm4",
                     "bus", "metro", "ferry", "taxi", "load", "AB", "BA", "physical", "virtual", "qr", "",
                     "20260230120000", "20261124240000", "20261124236000", "20261124235960", "20000229000000",
                     "19000229000000", "00000101000000", "440300000001", "02205810ffffffff", "A10002", " x",
                     "  ", "\t", "a\nb"]))
_FIELD_NAMES = st.sampled_from(FIELDS + ("colour", "Status"))


def _json_text(value: str, escape: int | None) -> str:
    """A JSON string, one character written as a \\u escape when asked (as another writer may)."""
    parts = []
    for i, c in enumerate(value):
        if i == escape:
            parts.append(json.dumps(c, ensure_ascii=True)[1:-1] if ord(c) > 0xFFFF else f"\\u{ord(c):04x}")
        else:
            parts.append(json.dumps(c, ensure_ascii=False)[1:-1])
    return '"' + "".join(parts) + '"'


_PARTS = {0: ("0000", "0001", "1900", "2000", "2023", "9999"), 4: ("00", "02", "12", "13", "99"),
          6: ("00", "28", "29", "30", "31", "32"), 8: ("00", "23", "24", "99"), 10: ("00", "59", "60", "99"),
          12: ("00", "59", "60", "61", "99")}


@st.composite
def _datetimes(draw) -> str:
    """A real date-time with one part at or past its bound (a 30 February, a 24th hour, a 60th second)."""
    base = draw(st.sampled_from(["20261124085104", "20240229235959", "20230228000000"]))
    at = draw(st.sampled_from(sorted(_PARTS)))
    part = draw(st.sampled_from(_PARTS[at]))
    return base[:at] + part + base[at + len(part):]


@st.composite
def _near_miss(draw, name: str, value: str) -> str:
    """The value with one small fault (or none): a character of another class, one more or less, case."""
    if name in ("datetime", "entry_time") and draw(st.booleans()):
        return draw(_datetimes())
    i = draw(st.integers(0, len(value)))
    edit = draw(st.sampled_from(["insert", "delete", "replace", "lower", "blank", "same"]))
    if edit == "insert":
        return value[:i] + draw(_CHARS) + value[i:]
    if edit == "delete":
        return value[:i] + value[i + 1:]
    if edit == "replace":
        return value[:i] + draw(_CHARS) + value[i + 1:]
    if edit == "lower":
        return value.lower()
    if edit == "blank":
        return draw(st.sampled_from(["", " ", "\t", "\u3000", "\x7f", "a\x00"]))
    return value


_DIGIT, _HEX, _VISIBLE = "0123456789", "0123456789ABCDEF", "".join(map(chr, range(0x21, 0x7F)))
_VARIABLE = (0, 1, 2, 3, 4, 15, 16, 17, 18)   # hex of 1 to 8 bytes
_FORMS = {   # each text field's alphabet and the lengths to try (its own, and one off)
    "terminal_id": (_HEX, (11, 12, 13)), "datetime": (_DIGIT, (13, 14, 15)), "card_no": (_DIGIT, (19, 20, 21)),
    "issuer_id": (_HEX, (15, 16, 17)), "tac": (_HEX, (7, 8, 9)), "list_version": (_DIGIT, (9, 10, 11)),
    "city": (_DIGIT, (3, 4, 5)), "operator": (_HEX, (3, 4, 5)), "line": (_HEX, (3, 4, 5)),
    "station": (_HEX, _VARIABLE), "vehicle": (_VISIBLE, (0, 1, 2, 7, 8, 9)), "card_type": (_HEX, (1, 2, 3)),
    "entry_city": (_DIGIT, (3, 4, 5)), "entry_station": (_HEX, _VARIABLE),
    "entry_terminal": (_HEX, _VARIABLE), "entry_time": (_DIGIT, (13, 14, 15)),
}
assert set(_FORMS) == {name for name, _ in records._TEXT}


@st.composite
def _field_values(draw) -> tuple[str, str]:
    """A text field and a value of its alphabet, of its length or one off, maybe with one foreign character."""
    name = draw(st.sampled_from(sorted(_FORMS)))
    alphabet, lengths = _FORMS[name]
    length = draw(st.sampled_from(lengths))
    value = draw(st.text(st.sampled_from(alphabet), min_size=length, max_size=length))
    if value and draw(st.booleans()):
        i = draw(st.integers(0, len(value) - 1))
        value = value[:i] + draw(_CHARS) + value[i + 1:]
    return name, value


@st.composite
def _lines(draw) -> bytes:
    """A template with one kind of fault at most (so that the fast path meets lines one fault from good)."""
    record = dict(TEMPLATES[draw(st.sampled_from(sorted(TEMPLATES)))])
    fault = draw(st.sampled_from(["none", "near miss", "field", "field", "date-time", "kind", "status", "values",
                                        "missing", "qr", "twice"]))
    if fault == "field":
        name, value = draw(_field_values())
        record[name] = value
    elif fault == "kind":
        record["type"] = draw(st.sampled_from(["02", "06", "09", None]))
        record["mode"] = draw(st.sampled_from(["bus", "metro", "ferry", "taxi", "load", None]))
        record["terminal_seq"] = draw(st.sampled_from([record.get("terminal_seq"), None, 7]))
    elif fault == "status":
        record["status"] = draw(st.sampled_from(["approved", "declined", "torn", "recovered", "failed"]))
        for name in draw(st.sets(st.sampled_from(["reason", "tac", "issuer_id", "balance_after"]), max_size=2)):
            record[name] = {"reason": "a reason", "tac": "0A0B0C0D", "issuer_id": "02205810FFFFFFFF",
                            "balance_after": 10}[name] if name not in record else None
    elif fault == "date-time":
        record[draw(st.sampled_from(["datetime", "entry_time"]))] = draw(_datetimes())
    elif fault == "near miss":
        name = draw(st.sampled_from(sorted(k for k, v in record.items() if isinstance(v, str))))
        record[name] = draw(_near_miss(name, record[name]))
    elif fault == "values":
        record.update(draw(st.dictionaries(_FIELD_NAMES, _VALUES, min_size=1, max_size=3)))
    elif fault == "missing":
        for name in draw(st.sets(st.sampled_from(sorted(record)), min_size=1, max_size=2)):
            del record[name]
    elif fault == "qr":        # a QR field on whatever it is
        record[draw(st.sampled_from(QR_FIELDS))] = RIDE[draw(st.sampled_from(QR_FIELDS))]
    pairs = [(k, v) for k, v in record.items() if v is not None]
    if fault == "twice":       # a key given twice: the last one counts
        pairs.insert(draw(st.integers(0, len(pairs))), (draw(st.sampled_from(pairs))[0], draw(_VALUES)))
    space = draw(st.sampled_from(["", " ", "\t"]))
    escaped = draw(st.sampled_from([None, *range(len(pairs))]))       # one text written with a \u escape
    at = draw(st.integers(0, 21))
    items = []
    for i, (key, value) in enumerate(pairs):
        if isinstance(value, str):
            text = _json_text(value, at % max(len(value), 1) if i == escaped else None)
        else:
            text = "null" if value is _NULL else json.dumps(value)
        items.append(f'"{key}"{space}:{space}{text}')
    return ("{" + f",{space}".join(items) + "}").encode()


def _edits(name: str, value: str | None) -> list[str]:
    """Every small fault of one text field, and a few right values: the bounds the fast path must keep."""
    alphabet, lengths = _FORMS[name]
    right = value or dict(GOOD, vehicle="B00012")[name]
    out = [right[:i] + right[i + 1:] for i in (0, len(right) - 1)]              # one short
    out += [right + alphabet[-1], right + right[-1] * 2, ""]                    # one or two long, empty
    out += [right[:-1] + c for c in "Fa Gz\x00\x1f\x7f\u00e9\u0663\uff10\u00b2"]      # a foreign last character
    out += [right.lower(), " " + right[1:], right[:-1] + "\t"]
    out += ["".join(alphabet[i % len(alphabet)] for i in range(n)) for n in lengths]
    if name in ("datetime", "entry_time"):
        out += [right[:at] + part + right[at + len(part):] for at, parts in _PARTS.items() for part in parts]
    return out


def test_every_text_field_at_its_bounds_reads_as_the_reference_reads():
    """Deterministic: each template, each text field, each small fault (the hypothesis tests roam wider)."""
    fast = 0
    for template in TEMPLATES.values():
        for name in _FORMS:
            for value in _edits(name, template.get(name)):
                line = json.dumps(dict(template, **{name: value}), ensure_ascii=False).encode()
                done = records._fast_parse(line)
                reference = _verdict(records._reference_parse, line)
                if done is not None:
                    fast += 1
                    assert reference == ("accepted", done), line
                assert _verdict(JsonReader().parse, line) == reference, line
    assert fast > 400          # the fast path did meet these lines


@pytest.mark.parametrize("status", ["approved", "declined", "torn", "recovered", "failed"])
def test_each_field_missing_or_null_under_each_status_reads_as_the_reference_reads(status):
    """Deterministic: what each status requires, field by field (absent, or given as null)."""
    for name, template in TEMPLATES.items():
        base = dict(template, status=status)
        for field in sorted(base):
            for record in ({k: v for k, v in base.items() if k != field}, dict(base, **{field: None})):
                line = json.dumps(record).encode()
                done = records._fast_parse(line)
                reference = _verdict(records._reference_parse, line)
                assert done is None or reference == ("accepted", done), line
                assert _verdict(JsonReader().parse, line) == reference, line


@pytest.mark.parametrize("template", sorted(TEMPLATES))
@pytest.mark.parametrize("reason", ["", " ", "\t", "\u3000", "a\x7f", "a\x00b", "ok", "卡"])
def test_a_reason_reads_as_the_reference_reads(template, reason):
    line = json.dumps(dict(TEMPLATES[template], reason=reason)).encode()
    assert _verdict(JsonReader().parse, line) == _verdict(records._reference_parse, line)
    done = records._fast_parse(line)
    assert done is None or _verdict(records._reference_parse, line) == ("accepted", done)


@settings(max_examples=2000, deadline=None)
@given(_lines())
def test_the_reader_says_what_the_reference_says_of_any_line(line):
    fast = records._fast_parse(line)
    reference = _verdict(records._reference_parse, line)
    event("fast path" if fast is not None else "reference")
    if fast is not None:
        assert reference == ("accepted", fast), line
    assert _verdict(JsonReader().parse, line) == reference, line


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(TEMPLATES)), st.data())
def test_a_well_formed_record_with_escaped_characters_reads_the_same(name, data):
    """JSON escapes (\\u0041 for A) change nothing: the fast path decodes them as the reference does."""
    record = TEMPLATES[name]
    items = []
    for key, value in record.items():
        if isinstance(value, str):
            text = _json_text(value, data.draw(st.one_of(st.none(), st.integers(0, max(len(value) - 1, 0)))))
        else:
            text = json.dumps(value)
        items.append(f'"{key}":{text}')
    line = ("{" + ",".join(items) + "}").encode()
    plain = json.dumps(record).encode()
    assert _verdict(JsonReader().parse, line) == _verdict(records._reference_parse, plain)
    if name != "qr ride":
        assert records._fast_parse(line) == records._reference_parse(plain)

"""The monthly return (附表3): both tables from known inputs, three renderings, byte-for-byte repeatable."""
from __future__ import annotations

import json
import re

import pytest

from clearing.report import RegistryLineError, build_return, read_issuance_registry
from clearing.terminals import RegistryError, TerminalRegistry
from specs.programme import load_programme

REGISTRY = [
    {"card_no": "03104870300000000001", "issuer_id": "02205810FFFFFFFF", "city": "5810", "medium": "physical",
     "card_type": "01", "issued_on": "2026-10-02", "price": 2000, "profile": "gd-guangzhou"},
    {"card_no": "03104870300000000002", "issuer_id": "02205810FFFFFFFF", "city": "5810", "medium": "physical",
     "card_type": "03", "issued_on": "2026-11-30", "price": 0, "profile": "gd-guangzhou"},
    {"card_no": "03104870300000000003", "issuer_id": "02205810FFFFFFFF", "city": "5810", "medium": "virtual",
     "card_type": "01", "issued_on": "2026-11-03", "price": 0, "profile": "gd-guangzhou-phone"},
    {"card_no": "03104870300000000004", "issuer_id": "02205810FFFFFFFF", "city": "5810", "medium": "qr",
     "card_type": "01", "issued_on": "2026-11-03", "price": 0, "profile": "qr"},
    {"card_no": "03104870300000000005", "issuer_id": "02205810FFFFFFFF", "city": "5810", "medium": "physical",
     "card_type": "01", "issued_on": "2026-12-01", "price": 2000, "profile": "gd-guangzhou"},   # after the month
    {"card_no": "03104870400000000001", "issuer_id": "02215840FFFFFFFF", "city": "5840", "medium": "physical",
     "card_type": "01", "issued_on": "2026-10-02", "price": 2000, "profile": "gd-shenzhen"},    # another city
]
TERMINALS = """terminal_id,city,operator,mode,line,vehicle,interoperable
440300000001,5810,0301,bus,0002,A10002,true
440300000002,5810,0301,bus,0002,A10002,true
440300000003,5810,0301,bus,0002,A10003,false
440300000004,5810,0301,bus,0005,A50001,false
440300000101,5810,0101,metro,0003,G0301-1,true
440300000102,5810,0101,tram,0101,T01,false
440300000201,5810,0601,taxi,,YUE-A123,true
440300009001,5810,0220,load,,OFFICE1,true
440400000001,5840,0301,bus,0001,B1,true
"""
USAGE = [("03104870300000000001", "02205810FFFFFFFF", 10, 2300), ("03104870300000000003", "02205810FFFFFFFF", 2, 400),
         ("03104870300000000099", "02205810FFFFFFFF", 1, 200),       # not in the registry: physical, with a note
         ("03104870400000000001", "02215840FFFFFFFF", 5, 1000)]      # a Shenzhen card: not Guangzhou's return


@pytest.fixture
def inputs(tmp_path):
    reg = tmp_path / "issued.jsonl"
    reg.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in REGISTRY))
    terms = tmp_path / "terminals.csv"
    terms.write_text(TERMINALS)
    return read_issuance_registry(reg), list(TerminalRegistry.load(terms).terminals.values())


def guangzhou(inputs):
    issuance, terminals = inputs
    city = load_programme().city("广州")
    return build_return("2026-11", city.code, city.name, city.name_en, usage=USAGE, issuance=issuance,
                        terminals=terminals, target_cards=city.target_cards, target_year=2020)


def test_issuance_by_medium(inputs):
    r = guangzhou(inputs)
    assert r.issuance == {"physical": {"issued": 2, "sold": 1, "transactions": 11, "amount": 2500},
                          "virtual": {"issued": 1, "sold": 0, "transactions": 2, "amount": 400},
                          "qr": {"issued": 1, "sold": None, "transactions": 0, "amount": 0}}
    assert r.issuance_rows()[3] == ["交易金额（元） amount (yuan)", "25.00", "4.00", "0.00"]
    assert r.issuance_rows()[1][3] == "—"
    assert r.notes == ["1 card(s) of the city used this month are not in the issuance registry; counted as "
                       "physical cards."]
    assert r.target_cards == 1_500_000


def test_virtual_cards_from_their_records_and_qr_rides_of_the_city_are_counted(inputs):
    """M4: a card the registry does not know but whose records said virtual counts as virtual; the month's
    accepted QR rides at the city's terminals count under QR (another city's do not)."""
    issuance, terminals = inputs
    city = load_programme().city("广州")
    r = build_return("2026-11", city.code, city.name, city.name_en, usage=USAGE, issuance=issuance,
                     terminals=terminals, virtual_cards={"03104870300000000099", "03104870300000000001"},
                     qr_usage=[("5810", 3, 600), ("5840", 7, 1400), ("", 1, 200)])
    assert r.issuance["virtual"]["transactions"] == 3 and r.issuance["virtual"]["amount"] == 600
    assert r.issuance["physical"]["transactions"] == 10      # the registry's word stands for card ...0001
    assert r.issuance["qr"] == {"issued": 1, "sold": None, "transactions": 3, "amount": 600}
    assert r.notes == []


def test_coverage_by_mode(inputs):
    r = guangzhou(inputs)
    assert r.coverage["bus"] == {"all": (3, 4, 2), "covered": (1, 2, 1)}     # a bus with two terminals counts once
    assert r.coverage["rail"] == {"all": (2, 2, 2), "covered": (1, 1, 1)}    # metro and tram
    assert r.coverage["taxi"] == {"all": (1, 1, 0), "covered": (1, 1, 0)}
    assert r.coverage["total"] == {"all": (6, 7, 4), "covered": (3, 4, 2)}   # the ticket office is no acceptance
    assert r.coverage_rows()[-1] == ["合计 Total", "6", "7", "4", "3", "4", "2"]


def test_renderings_are_self_contained_and_repeat_exactly(inputs, tmp_path):
    first = [p.read_bytes() for p in guangzhou(inputs).write(tmp_path / "a")]
    second = [p.read_bytes() for p in guangzhou(inputs).write(tmp_path / "b")]
    assert first == second
    issuance_csv, coverage_csv, md, page = (b.decode() for b in first)
    assert issuance_csv.splitlines()[1].startswith("发行量（张） issued (cards),2,1,1")
    assert coverage_csv.splitlines()[-1] == "合计 Total,6,7,4,3,4,2"
    assert "| 合计 Total | 6 | 7 | 4 | 3 | 4 | 2 |" in md
    assert page.count("<svg") == 2 and "<script" not in page and "<img" not in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)      # nothing fetched from a network
    assert "2020 target 1,500,000" in page          # the chart text (glyphs are paths; matplotlib keeps the text)
    assert "广州市全国交通一卡通互联互通情况统计表" in page


def test_bad_registries_are_refused_naming_the_line(tmp_path):
    reg = tmp_path / "issued.jsonl"
    reg.write_text(json.dumps(REGISTRY[0]) + "\n" + json.dumps(dict(REGISTRY[1], medium="paper")) + "\n")
    with pytest.raises(RegistryLineError, match=r"issued.jsonl: line 2: medium: 'paper' is not physical"):
        read_issuance_registry(reg)
    reg.write_text(json.dumps(dict(REGISTRY[0], price="20")) + "\n")
    with pytest.raises(RegistryLineError, match=r"issued.jsonl: line 1: price"):
        read_issuance_registry(reg)
    terms = tmp_path / "t.csv"
    terms.write_text(TERMINALS + "440300000001,5810,0301,bus,0002,A10002,true\n")
    with pytest.raises(RegistryError, match=r"t.csv: line 11: terminal_id: 440300000001 is listed twice"):
        TerminalRegistry.load(terms)
    terms.write_text("terminal_id,city,operator,mode,line,vehicle\n4403,5810,0301,bus,0002,A1\n")
    with pytest.raises(RegistryError, match=r"t.csv: line 2: terminal_id: expected 12 hex digits"):
        TerminalRegistry.load(terms)
    terms.write_text("terminal_id,city,operator,mode,line,vehicle\n440300000001,5810,0301,plane,0002,A1\n")
    with pytest.raises(RegistryError, match=r"t.csv: line 2: mode"):
        TerminalRegistry.load(terms)
    terms.write_text("terminal_id,city,operator,mode,line\n")
    with pytest.raises(RegistryError, match=r"t.csv: header: column 'vehicle' missing"):
        TerminalRegistry.load(terms)


def test_cities_by_code_or_name():
    prog = load_programme()
    assert prog.city("5810") == prog.city("guangzhou") == prog.city("广州")
    assert sum(c.target_cards for c in prog.cities.values()) == 4_500_000
    with pytest.raises(LookupError, match="--city 'atlantis': not a city of guangdong-2020"):
        prog.city("atlantis")

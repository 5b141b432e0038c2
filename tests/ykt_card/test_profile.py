"""Issuance profiles: every shipped one loads with the Guangdong codes; bad fields are refused by name."""
import pytest
import yaml

from specs.catalog import CARD_PROFILES, card_profile_names, card_profile_path
from ykt_card.issuance.profile import ProfileError, card_profile_from_dict, load_card_profile

GUANGDONG = {  # guangdong.md: area code, issuer ID bytes 0..3, IIN
    "gd-guangzhou": ("5810", "02205810", "31048703"),
    "gd-shenzhen": ("5840", "02215840", "31048704"),
    "gd-foshan": ("5880", "02775880", "31048707"),
    "gd-dongguan": ("6020", "01616020", "31048702"),
    "gd-zhuhai": ("5850", "01355850", "31048724"),
    "gd-jieyang": ("6050", "02896050", "31048719"),
    "gd-chaozhou": ("6040", "02916040", "31048721"),
}


def test_reference_and_21_cities_ship():
    names = card_profile_names()
    assert "reference" in names
    assert len([n for n in names if n.startswith("gd-") and not n.endswith("-virtual")]) == 21


def test_virtual_profiles_carry_extended_aids_and_physical_ones_mot_t_ep():
    """M1: the Guangdong phone card's AID; the generic one is MOT_T_EP ‖ the profile's aid_suffix."""
    virtual = [n for n in card_profile_names() if n.endswith("-virtual")]
    assert sorted(virtual) == ["gd-guangzhou-virtual", "generic-virtual"]
    gz = load_card_profile(card_profile_path("gd-guangzhou-virtual"))
    assert (gz.medium, gz.aid.hex().upper()) == ("virtual", "A0000006320101055800022058100000")
    generic = load_card_profile(card_profile_path("generic-virtual"))
    assert (generic.medium, generic.aid.hex().upper()) == ("virtual", "A000000632010105" "58105810FFFFFFFF")
    for name in card_profile_names():
        p = load_card_profile(card_profile_path(name))
        assert (p.medium == "virtual") == (len(p.aid) > 8), name
        if p.medium == "physical":
            assert p.aid.hex().upper() == "A000000632010105"


@pytest.mark.parametrize("name", card_profile_names())
def test_every_shipped_profile_loads(name):
    p = load_card_profile(card_profile_path(name))
    assert p.name == name and p.interoperable and p.province == "5800"
    assert len(p.card_number(1)) == 20


@pytest.mark.parametrize("name,codes", GUANGDONG.items())
def test_city_codes_follow_guangdong_md(name, codes):
    city, issuer4, iin = codes
    p = load_card_profile(card_profile_path(name))
    assert p.city == city
    assert p.issuer_id.hex().upper() == issuer4 + "FFFFFFFF"
    assert p.card_number(1).startswith("0" + iin)


def test_reference_reproduces_the_vector_card():
    p = load_card_profile(card_profile_path("reference"))
    assert p.issuer_id.hex().upper() == "58105810FFFFFFFF"
    assert p.card_number(1234) == "03105810000000001234"


def test_unknown_profile_name_lists_the_shipped_ones():
    with pytest.raises(LookupError, match="gd-guangzhou"):
        card_profile_path("atlantis")


BAD = [
    ({"colour": "red"}, "colour: unknown field"),
    ({"org_code": "02"}, "org_code: must be 4 hex digits"),
    ({"city": "58A0"}, "city: must be 4 decimal digits"),
    ({"card_no_prefix": "03X"}, "card_no_prefix: must be 1..16 decimal digits"),
    ({"app_type": "2"}, "app_type: must be 2 hex digits"),
    ({"interoperable": "yes"}, "interoperable: must be true or false"),
    ({"max_balance": -1}, "max_balance: must be an integer"),
    ({"overdraft_limit": 2**24}, "overdraft_limit: must be an integer"),
    ({"pin": "12345"}, "pin: must be an even number"),
    ({"keys": []}, "keys: must be a non-empty list"),
    ({"keys": [{"algorithm": "aes", "index": 1}]}, "keys[0].algorithm"),
    ({"keys": [{"algorithm": "3des", "index": 0}]}, "keys[0].index"),
    ({"keys": [{"algorithm": "3des", "index": 1}, {"algorithm": "sm4", "index": 1}]}, "share one key index"),
    ({"capp_records": [1, 40]}, "capp_records: record ID 40"),
    ({"capp_records": [1, 1]}, "listed twice"),
    ({"ats_historical": "ZZ"}, "ats_historical: must be hex"),
    ({"medium": "paper"}, "medium: must be one of"),
    ({"valid_years": 0}, "valid_years"),
    ({"keys": [{"algorithm": "3des", "index": 1, "kernel": 2}]}, "keys[0].kernel: unknown field"),
    ({"name": ""}, "name: must be a non-empty string"),
    ({"ef18_records": 256}, "ef18_records: must be an integer 1..255, got 256"),
    ({"ats_historical": "00" * 16}, "ats_historical: at most 15 historical bytes"),
    ({"capp_records": [1, True]}, "capp_records[1]: must be an integer"),
    ({"aid": "A000000632010106"}, "aid: must be A000000632010105 (the T-Union EP), optionally followed by a suffix"),
    ({"aid": "A0000006320101055800"}, "medium: an extended AID is for medium virtual, not physical"),
    ({"medium": "virtual"}, "aid: a virtual card needs an extended AID"),
    ({"medium": "virtual", "aid_suffix": "00" * 9}, "aid_suffix: an AID suffix is 1..8 bytes, got 9"),
    ({"medium": "virtual", "aid_suffix": "0Z"}, "aid_suffix: must be hex"),
    ({"medium": "virtual", "aid_suffix": "01", "aid": "A00000063201010501"}, "aid_suffix: give aid or aid_suffix"),
]


@pytest.mark.parametrize("change,message", BAD, ids=[m for _, m in BAD])
def test_bad_fields_are_refused_by_name(change, message):
    doc = yaml.safe_load((CARD_PROFILES / "reference.yaml").read_text())
    doc.update(change)
    with pytest.raises(ProfileError, match="^x.yaml: ") as info:
        card_profile_from_dict(doc, "x.yaml")
    assert message in str(info.value)


@pytest.mark.parametrize("field", ["name", "org_code", "city", "card_no_prefix"])
def test_required_fields(field):
    doc = yaml.safe_load((CARD_PROFILES / "reference.yaml").read_text())
    del doc[field]
    with pytest.raises(ProfileError, match=f"{field}: required field missing"):
        card_profile_from_dict(doc, "x.yaml")


def test_serial_overflow_is_refused():
    p = load_card_profile(card_profile_path("reference"))
    with pytest.raises(ProfileError, match="does not fit"):
        p.card_number(10**10)


def test_a_profile_is_a_mapping_and_its_file_must_exist(tmp_path):
    with pytest.raises(ProfileError, match="^x.yaml: must be a table of fields"):
        card_profile_from_dict(["reference"], "x.yaml")
    with pytest.raises(ProfileError, match="no such card profile file"):
        load_card_profile(tmp_path / "nothere.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ProfileError, match="bad.yaml: not valid YAML"):
        load_card_profile(tmp_path / "bad.yaml")


def test_the_profile_error_is_the_schema_layers():
    from ykt_files.schema import ProfileError as SchemaProfileError
    assert ProfileError is SchemaProfileError

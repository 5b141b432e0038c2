"""The key set loader: the shipped test sets load; every single-field corruption is refused by name."""
import copy
import tomllib

import pytest

from keysets import ALL_ROLES, REQUIRED_ROLES, TEST_KEYSET_DIR, Algorithm, KeySet, KeySetError, Use, compose
from keysets.compose import ComponentError
from keysets.keyset import entry_toml

SHIPPED = sorted(TEST_KEYSET_DIR.glob("*.toml"))


def dump(doc: dict) -> str:
    """A tiny TOML writer for the key set shape (tomllib reads, nothing in the stdlib writes)."""
    lines = []
    for k, v in doc.items():
        if k != "keys":
            lines.append(f"{k} = {_value(v)}")
    if "keys" in doc:
        lines.append("[keys]")
        for role, entry in doc["keys"].items():
            if isinstance(entry, dict):
                inner = ", ".join(f"{f} = {_value(x)}" for f, x in entry.items())
                lines.append(f"{role} = {{ {inner} }}")
            else:
                lines.append(f"{role} = {_value(entry)}")
    return "\n".join(lines) + "\n"


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(v)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_sets_load_and_are_test_only(path):
    ks = KeySet.load(path)
    assert ks.test_only and "TEST" in ks.name
    assert set(REQUIRED_ROLES) <= set(ks.keys)
    ks.require(Use.SIMULATION)
    with pytest.raises(KeySetError, match="TEST key set and is refused for production"):
        ks.require(Use.PRODUCTION)


def test_two_shipped_sets_follow_d16():
    three = KeySet.load(TEST_KEYSET_DIR / "gd-test-3des.toml")
    four = KeySet.load(TEST_KEYSET_DIR / "gd-test-sm4.toml")
    assert three.algorithm is Algorithm.TDES and four.algorithm is Algorithm.SM4
    assert three.entry("purchase").index == 1 and four.entry("purchase").index == 2


def test_key_values_never_in_repr_or_summary():
    ks = KeySet.load(TEST_KEYSET_DIR / "gd-test-3des.toml")
    text = repr(ks) + str(ks.summary()) + repr(ks.keys) + str(ks.card_keys(bytes(8), bytes(8)).keys)
    for entry in ks.keys.values():
        assert entry.key.value.hex().upper() not in text.upper()
        assert entry.kcv in str(ks.summary())


def test_non_test_set_is_refused_for_virtual_images():
    doc = tomllib.loads((TEST_KEYSET_DIR / "gd-test-3des.toml").read_text())
    doc["test_only"] = False
    doc["name"] = "Issuer production set"
    ks = KeySet.loads(dump(doc), "prod.toml")
    with pytest.raises(KeySetError, match="not marked test_only"):
        ks.require(Use.SIMULATION)
    ks.require(Use.PRODUCTION)


def test_card_keys_follow_the_named_order():
    doc = tomllib.loads((TEST_KEYSET_DIR / "gd-test-3des.toml").read_text())
    forward = KeySet.loads(dump(doc))
    doc["diversification"] = ["serial", "issuer"]
    backward = KeySet.loads(dump(doc))
    doc["diversification"] = []
    none = KeySet.loads(dump(doc))
    issuer, serial = bytes.fromhex("58105810FFFFFFFF"), bytes.fromhex("5810000000001234")
    a = forward.card_keys(issuer, serial).entry("purchase").key
    b = backward.card_keys(issuer, serial).entry("purchase").key
    assert a != b
    assert none.card_keys(issuer, serial).entry("purchase").key == none.entry("purchase").key


def _corruptions(doc: dict):
    """Every single-field corruption: (label, corrupted document, text the error must name)."""
    def variant(fn):
        d = copy.deepcopy(doc)
        fn(d)
        return d

    yield "name missing", variant(lambda d: d.pop("name")), "name"
    yield "name empty", variant(lambda d: d.update(name="  ")), "name"
    yield "name not test", variant(lambda d: d.update(name="GD production")), "name"
    yield "test_only missing", variant(lambda d: d.pop("test_only")), "test_only"
    yield "test_only string", variant(lambda d: d.update(test_only="yes")), "test_only"
    yield "algorithm missing", variant(lambda d: d.pop("algorithm")), "algorithm"
    yield "algorithm unknown", variant(lambda d: d.update(algorithm="aes")), "algorithm"
    yield "diversification not list", variant(lambda d: d.update(diversification="issuer")), "diversification"
    yield "diversification factor", variant(lambda d: d.update(diversification=["issuer", "city"])), "diversification"
    yield "diversification twice", variant(lambda d: d.update(diversification=["serial", "serial"])), "diversification"
    yield "unknown top field", variant(lambda d: d.update(colour="red")), "colour"
    yield "keys missing", variant(lambda d: d.pop("keys")), "keys"
    yield "unknown role", variant(lambda d: d["keys"].update(bogus=dict(d["keys"]["purchase"]))), "keys.bogus"
    for role in doc["keys"]:
        where = f"keys.{role}"
        if role in REQUIRED_ROLES:
            yield f"{role} missing", variant(lambda d, r=role: d["keys"].pop(r)), where
        yield f"{role} not table", variant(lambda d, r=role: d["keys"].update({r: "00"})), where
        for field in ("index", "version", "value", "kcv"):
            yield f"{role}.{field} missing", variant(lambda d, r=role, f=field: d["keys"][r].pop(f)), where
        yield f"{role}.index range", variant(lambda d, r=role: d["keys"][r].update(index=256)), where
        yield f"{role}.index bool", variant(lambda d, r=role: d["keys"][r].update(index=True)), where
        yield f"{role}.version negative", variant(lambda d, r=role: d["keys"][r].update(version=-1)), where
        yield f"{role}.value not hex", variant(lambda d, r=role: d["keys"][r].update(value="ZZ" * 16)), where
        yield f"{role}.value short", variant(lambda d, r=role: d["keys"][r].update(value=d["keys"][r]["value"][:30])), where
        yield f"{role}.value long", variant(lambda d, r=role: d["keys"][r].update(value=d["keys"][r]["value"] + "00")), where
        # change a high nibble: DES ignores parity bits, so a parity-only change is invisible to any KCV
        yield f"{role}.value changed", variant(
            lambda d, r=role: d["keys"][r].update(value=("0" if d["keys"][r]["value"][0] != "0" else "F") + d["keys"][r]["value"][1:])), where
        yield f"{role}.kcv changed", variant(
            lambda d, r=role: d["keys"][r].update(kcv=("0" if d["keys"][r]["kcv"][0] != "0" else "1") + d["keys"][r]["kcv"][1:])), where
        yield f"{role}.kcv length", variant(lambda d, r=role: d["keys"][r].update(kcv=d["keys"][r]["kcv"] + "0")), where
        yield f"{role}.unknown field", variant(lambda d, r=role: d["keys"][r].update(colour=1)), where


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_single_field_corruption_is_refused(path):
    doc = tomllib.loads(path.read_text())
    KeySet.loads(dump(doc), "copy.toml")  # the dumper itself round-trips
    labels = []
    for label, bad, names in _corruptions(doc):
        with pytest.raises(KeySetError) as info:
            KeySet.loads(dump(bad), "copy.toml")
        message = str(info.value)
        assert message.startswith("copy.toml: "), label
        assert names in message, (label, message)
        for entry in doc["keys"].values():
            assert entry["value"] not in message.upper(), label
        labels.append(label)
    assert len(labels) > 10 * len(doc["keys"])


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(KeySetError, match="no such key set file"):
        KeySet.load(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = ")
    with pytest.raises(KeySetError, match="bad.toml: not valid TOML"):
        KeySet.load(bad)


def test_entry_toml_round_trips():
    ks = KeySet.load(TEST_KEYSET_DIR / "gd-test-sm4.toml")
    doc = tomllib.loads((TEST_KEYSET_DIR / "gd-test-sm4.toml").read_text())
    for role in ALL_ROLES:
        line = entry_toml(role, ks.entry(role))
        assert tomllib.loads(line)[role] == doc["keys"][role]


class TestCompose:
    def test_two_and_three_components(self):
        from keysets import SecretKey
        a, b, c = bytes(range(16)), bytes(range(16, 32)), bytes([0x5A] * 16)
        for alg in Algorithm:
            parts = [a, b, c]
            comps = [f"{p.hex()}:{SecretKey(alg, p).kcv}" for p in parts]
            expect = bytes(x ^ y ^ z for x, y, z in zip(a, b, c))
            assert compose(alg, comps).value == expect
            assert compose(alg, comps[:2]).value == bytes(x ^ y for x, y in zip(a, b))

    @pytest.mark.parametrize("components,match", [
        (["00" * 16 + ":000000"], "2 or 3 components"),
        (["00" * 16, "11" * 16 + ":000000"], "component 1: expected HEX:KCV"),
        (["GG" * 16 + ":000000", "11" * 16 + ":000000"], "component 1: value is not hexadecimal"),
        (["00" * 15 + ":000000", "11" * 16 + ":000000"], "component 1: must be 16 bytes"),
        (["00" * 16 + ":00", "11" * 16 + ":000000"], "component 1: KCV must be 6 hex digits"),
        (["00" * 16 + ":8CA64D", "11" * 16 + ":000000"], "component 2: KCV mismatch"),
    ])
    def test_refusals(self, components, match):
        with pytest.raises(ComponentError, match=match):
            compose(Algorithm.TDES, components)

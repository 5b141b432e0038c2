"""The command line's promises: help everywhere, one-line errors, no key values, the stable names."""
import json
import re
import shutil

import pytest

from keysets import TEST_KEYSET_DIR, KeySet

from .cli import ROOT, one_line_error, ykt

K3 = TEST_KEYSET_DIR / "gd-test-3des.toml"
K4 = TEST_KEYSET_DIR / "gd-test-sm4.toml"


def key_values() -> list[str]:
    return [e.key.value.hex().upper() for path in (K3, K4) for e in KeySet.load(path).keys.values()]


def test_version():
    p = ykt("--version")
    assert p.returncode == 0 and re.match(r"ykt, version \d+\.\d+", p.stdout)


COMMANDS = [["keys", "show"], ["keys", "derive"], ["keys", "compose"], ["decode"], ["card", "issue"], ["card", "serve"],
            ["card", "read"], ["psam", "issue"], ["psam", "serve"], ["trace", "show"], ["trace", "export"],
            ["trace", "timing"], ["doctor"], ["demo"], ["journal", "export"], ["journal", "check"], ["journal", "salvage"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=" ".join)
def test_every_command_has_help(cmd):
    p = ykt(*cmd, "--help")
    assert p.returncode == 0 and "Usage: ykt " + " ".join(cmd) in p.stdout
    assert len(p.stdout.split("\n\n")[1].strip()) > 10  # a real description


def test_keys_show_lists_roles_and_kcvs_and_no_key_value():
    p = ykt("keys", "show", K3)
    assert p.returncode == 0
    ks = KeySet.load(K3)
    for role, e in ks.keys.items():
        assert role in p.stdout and e.kcv in p.stdout
    for v in key_values():
        assert v not in p.stdout.upper()
    j = json.loads(ykt("keys", "show", K4, "--json").stdout)
    assert j["algorithm"] == "sm4" and j["keys"]["purchase"]["index"] == 2 and "value" not in json.dumps(j)


def test_keys_show_refuses_a_wrong_kcv_in_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    text = K3.read_text()
    kcv = KeySet.load(K3).entry("tac").kcv
    bad.write_text(text.replace(f'kcv = "{kcv}"', f'kcv = "{"0" if kcv[0] != "0" else "1"}{kcv[1:]}"'))
    line = one_line_error(ykt("keys", "show", bad))
    assert str(bad) in line and "keys.tac" in line and "KCV mismatch" in line
    for v in key_values():
        assert v not in line.upper()


def test_keys_derive_matches_the_library():
    issuer, serial = "02205810FFFFFFFF", "4870300000000001"
    j = json.loads(ykt("keys", "derive", K3, "--issuer", issuer, "--serial", serial, "--json").stdout)
    card = KeySet.load(K3).card_keys(bytes.fromhex(issuer), bytes.fromhex(serial))
    assert {r: v["kcv"] for r, v in j["card_keys"].items()} == {r: e.kcv for r, e in card.keys.items()}
    assert "ykt: error: keys derive: " in one_line_error(ykt("keys", "derive", K3, "--issuer", "0220", "--serial", serial))


def test_keys_compose_checks_components_and_prints_the_entry():
    from keysets import Algorithm, SecretKey
    a, b = bytes(range(16)), bytes(range(100, 116))
    comps = [f"{x.hex()}:{SecretKey(Algorithm.TDES, x).kcv}" for x in (a, b)]
    p = ykt("keys", "compose", "--role", "purchase", "--component", comps[0], "--component", comps[1])
    assert p.returncode == 0
    result = SecretKey(Algorithm.TDES, bytes(x ^ y for x, y in zip(a, b)))
    assert f'kcv = "{result.kcv}"' in p.stdout and p.stdout.startswith("purchase = {")
    j = json.loads(ykt("keys", "compose", "--role", "tac", "--component", comps[0], "--component", comps[1],
                       "--json").stdout)
    assert j == {"role": "tac", "algorithm": "3des", "index": 1, "version": 1, "kcv": result.kcv}
    bad = comps[1][:-6] + "000000"
    assert "component 2: KCV mismatch" in one_line_error(
        ykt("keys", "compose", "--role", "tac", "--component", comps[0], "--component", bad))


def test_decode_reports_bad_input_by_field():
    p = ykt("decode", "18", "0079 000000 00000000 09 413106163675 20201228 214511", "--json")
    assert json.loads(p.stdout)["fields"]["counter"] == 0x79
    assert "EF18: wrong length" in one_line_error(ykt("decode", "18", "0079"))
    assert "bad BCD digit" in one_line_error(
        ykt("decode", "15", "02205810FFFFFFFF0201031048703953463588A720240715204012150000"))
    assert "unknown file" in one_line_error(ykt("decode", "99", "00"))


def test_unknown_command_and_option_are_one_line():
    one_line_error(ykt("frobnicate"))
    one_line_error(ykt("card", "read", "--colour", "red"))
    assert "expected pcsc" in one_line_error(ykt("card", "read", "--reader", "floppy:0"))
    assert "no NFC readers found on nfcpy path 'usb'" in one_line_error(ykt("card", "read", "--reader", "nfc:usb"))


def test_trace_show_and_export_through_tshark(tmp_path):
    image = tmp_path / "c.json"
    assert ykt("card", "issue", "--keyset", K3, "--out", image, "--clock", "20261124090000").returncode == 0
    trace = tmp_path / "t.jsonl"
    assert ykt("card", "read", "--reader", f"image:{image}", "--trace", trace).returncode == 0
    shown = ykt("trace", "show", trace)
    assert "SELECT AID A000000632010105" in shown.stdout and "READ RECORD EF18 record 1" in shown.stdout
    assert "6A83" in shown.stdout  # the empty log answers record not found
    pcap = tmp_path / "t.pcapng"
    out = ykt("trace", "export", trace, "--pcapng", pcap)
    assert out.returncode == 0 and "-d iso14443.subdissector,iso7816" in out.stdout
    tshark = shutil.which("tshark")
    assert tshark, "tshark is required (make test installs it)"
    import subprocess
    dis = subprocess.run([tshark, "-r", str(pcap), "-V", "-d", "iso14443.subdissector,iso7816"],
                         capture_output=True, text=True, timeout=60)
    assert dis.returncode == 0
    assert "Select file (0xa4)" in dis.stdout and "Read record (0xb2)" in dis.stdout


def test_doctor_reports_each_check():
    p = ykt("doctor", "--json")
    checks = json.loads(p.stdout)
    names = {c["check"] for c in checks}
    assert {"pcscd binary", "vpcd driver config", "tshark present"} <= names
    assert p.returncode == (0 if all(c["ok"] for c in checks) else 1)


@pytest.mark.parametrize("args, expected", [
    (["nosuch"], "ykt: error: No such command 'nosuch'."),
    (["card", "issue"], "ykt: error: card issue: Missing option '--keyset'."),
    (["keys", "show", "nothere"], "ykt: error: keys show: Invalid value for 'KEYSET': no key set named 'nothere' "
                                  "(shipped: gd-test-3des, gd-test-sm4; or give a path)"),
])
def test_usage_errors_never_repeat_the_program_name(args, expected):
    assert one_line_error(ykt(*args)) == expected

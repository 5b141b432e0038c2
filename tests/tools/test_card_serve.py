"""End to end through real parts: `ykt card issue`, `ykt card serve` into pcscd via vpcd, an independent
terminal over pyscard (raw APDUs built here from the reference, MACs from the master keys), `ykt card read`.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from apdu.transport.pcsc.reader import PcscReader
from apdu.transport.pcsc.daemon import vpcd_reader_name
from keysets import TEST_KEYSET_DIR, Algorithm, KeySet, LoadSession, PurchaseSession, load_tac, purchase_tac
from ykt_card.card.image import load_card

YKT = [sys.executable, "-m", "tools.cli"]
K3 = TEST_KEYSET_DIR / "gd-test-3des.toml"
K4 = TEST_KEYSET_DIR / "gd-test-sm4.toml"
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.pcsc


def ykt(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([*YKT, *args], cwd=ROOT, capture_output=True, text=True, check=check, timeout=60)


class Terminal:
    """Knows only the master keys and the reference: builds every APDU and MAC itself."""

    def __init__(self, reader: PcscReader, issuer: bytes, serial: bytes) -> None:
        self.r, self.issuer, self.serial = reader, issuer, serial

    def x(self, hexapdu: str) -> tuple[bytes, int]:
        raw = self.r.transmit(bytes.fromhex(hexapdu.replace(" ", "")))
        return raw[:-2], int.from_bytes(raw[-2:], "big")

    def ok(self, hexapdu: str) -> bytes:
        data, sw = self.x(hexapdu)
        assert sw == 0x9000, f"{hexapdu}: {sw:04X}"
        return data

    def card_key(self, ks: KeySet, role: str) -> bytes:
        return ks.card_keys(self.issuer, self.serial).entry(role).key.value

    def balance(self) -> int:
        return int.from_bytes(self.ok("805C000204"), "big")

    def load(self, ks: KeySet, amount: int, tid: str, when: str) -> None:
        idx = ks.entry("load").index
        init = self.ok(f"805000020B{idx:02X}{amount:08X}{tid}10")
        bal, ctr, alg, rnd, mac1 = (int.from_bytes(init[0:4], "big"), int.from_bytes(init[4:6], "big"),
                                   init[7], init[8:12], init[12:16])
        assert Algorithm.from_wire(alg) is ks.algorithm
        s = LoadSession.derive(ks.algorithm, self.card_key(ks, "load"), rnd, ctr)
        assert s.mac1(bal, amount, bytes.fromhex(tid)) == mac1
        mac2 = s.mac2(amount, bytes.fromhex(tid), bytes.fromhex(when))
        tac = self.ok(f"805200000B{when}{mac2.hex()}04")
        assert tac == load_tac(ks.algorithm, self.card_key(ks, "tac"), bal + amount, ctr, amount,
                               bytes.fromhex(tid), bytes.fromhex(when))

    def purchase(self, ks: KeySet, amount: int, tid: str, when: str, seq: int, capp: list[str] = ()) -> tuple[int, bytes]:
        idx = ks.entry("purchase").index
        p1 = "03" if capp else "01"
        init = self.ok(f"8050{p1}020B{idx:02X}{amount:08X}{tid}0F")
        ctr, rnd = int.from_bytes(init[4:6], "big"), init[11:15]
        s = PurchaseSession.derive(ks.algorithm, self.card_key(ks, "purchase"), rnd, ctr, seq)
        tx_type = 0x09 if capp else 0x06
        for cmd in capp:
            self.ok(cmd)
        mac1 = s.mac1(amount, tx_type, bytes.fromhex(tid), bytes.fromhex(when))
        out = self.ok(f"805401000F{seq:08X}{when}{mac1.hex()}08")
        tac, mac2 = out[:4], out[4:]
        assert s.verify_mac2(mac2, amount)
        assert tac == purchase_tac(ks.algorithm, self.card_key(ks, "tac"), amount, tx_type, bytes.fromhex(tid), seq,
                                   bytes.fromhex(when))
        return ctr, mac2 + tac


CHIP_UID = "04A1B2C3D4E5F6"


@pytest.fixture
def served_card(tmp_path, pcscd):
    image = tmp_path / "card.json"
    ykt("card", "issue", "--keyset", str(K3), "--keyset", str(K4), "--profile", "gd-shenzhen", "--out", str(image),
        "--clock", "20261124090000", "--registry", str(tmp_path / "reg.jsonl"))
    doc = json.loads(image.read_text())
    image.write_text(json.dumps({**doc, "uid": CHIP_UID}))    # a chip of its own: the reader reports this UID
    proc = subprocess.Popen([*YKT, "card", "serve", str(image), "--vpcd", "localhost:35963", "--seed", "7"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pcscd.wait_card(vpcd_reader_name(0), present=True, timeout=15)
        yield image, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
        pcscd.wait_card(vpcd_reader_name(0), present=False, timeout=15)


def test_independent_terminal_through_pcscd(served_card, tmp_path):
    image, proc = served_card
    k3, k4 = KeySet.load(K3), KeySet.load(K4)
    reader = PcscReader(vpcd_reader_name(0))
    reader.connect()
    fci = Terminal(reader, b"", b"").ok("00A4040008A00000063201010500")
    ef15 = fci[fci.index(bytes.fromhex("9F0C1E")) + 3:][:30]
    t = Terminal(reader, ef15[0:8], ef15[12:20])
    assert t.ok("00B0950000") == ef15
    assert t.ok("00B0970000")[8:10] == bytes.fromhex("0001")
    tid, when = "440300000001", "20261124093000"
    t.load(k3, 10000, tid, when)
    assert t.balance() == 10000
    t.purchase(k4, 200, tid, "20261124093100", seq=1)
    record = bytes.fromhex("27017D010100") + bytes(122)
    ctr, proof = t.purchase(k3, 300, tid, "20261124093200", seq=2,
                            capp=["80DC01D080" + record.hex(), "80DC00F030" + (b"\x09" + bytes(47)).hex()])
    assert t.balance() == 9500
    assert t.ok(f"805A000902{ctr + 1:04X}08") == proof
    assert t.ok("00B201D480")[:6] == record[:6]
    # malformed and wrongly authenticated commands change nothing
    before = (t.balance(), t.ok("00B201C400"))
    for bad, sw in [("805401000F00000003202611240933000000000008", 0x6901), ("80DC01D080" + record.hex(), 0x6901),
                    ("841E000004" + "00000000", 0x6984), ("805C000204" + "00", 0x6700), ("FF5C000204", 0x6E00),
                    ("80FF000000", 0x6D00)]:
        data, got = t.x(bad)
        assert got != 0x9000 and got != 0x6F00, bad
    init = t.ok(f"805001020B01{100:08X}{tid}0F")
    data, sw = t.x(f"805401000F00000009{'20261124093300'}DEADBEEF08")
    assert sw == 0x9302
    assert (t.balance(), t.ok("00B201C400")) == before
    reader.disconnect()

    out = ykt("card", "read", "--reader", f"pcsc:{vpcd_reader_name(0)}", "--json")
    dump = json.loads(out.stdout)
    assert dump["uid"] == CHIP_UID                     # the reader's GET DATA (FF CA 00 00), through pcscd
    text = json.dumps(dump)
    assert "9500" in text and ef15[10:20].hex() in text
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0, proc.stderr.read()
    state = load_card(image)
    assert state.purse.balance == 9500 and state.purse.online_counter == 1 and state.purse.offline_counter == 2

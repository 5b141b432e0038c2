"""`ykt psam issue` and `ykt psam serve` into vpcd slot 1; the terminal sequence survives in the image."""
import signal
import subprocess

import pytest

from apdu.transport.pcsc.reader import PcscReader
from apdu.transport.pcsc.daemon import vpcd_reader_name
from keysets import TEST_KEYSET_DIR
from ykt_card.host.psam import Psam
from ykt_card.psam.issue import load_psam

from .cli import ROOT, YKT_ARGS, ykt

pytestmark = pytest.mark.pcsc


def test_psam_served_to_slot_1_keeps_its_sequence(tmp_path, pcscd):
    image = tmp_path / "psam.json"
    issued = ykt("psam", "issue", "--keyset", TEST_KEYSET_DIR / "gd-test-3des.toml", "--terminal-id", "440300000007",
                 "--out", image, "--json")
    assert issued.returncode == 0, issued.stderr
    assert "value" not in issued.stdout
    proc = subprocess.Popen([*YKT_ARGS, "psam", "serve", str(image)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        pcscd.wait_card(vpcd_reader_name(1), present=True, timeout=15)
        reader = PcscReader(vpcd_reader_name(1))
        reader.connect()
        psam = Psam(reader)
        psam.select_mf()
        assert psam.read_terminal_id() == bytes.fromhex("440300000007")
        psam.select_tunion()
        first = psam.init_purchase(bytes(4), 0, 100, 0x06, bytes.fromhex("20261124080000"), 1, 0x00,
                                   bytes.fromhex("5810000000001234"), bytes.fromhex("58105810FFFFFFFF"))
        assert first.terminal_seq == 1
        assert reader.transmit(bytes.fromhex("FFCA000000")) == b"\x6A\x81"  # a contact card: no UID to report
        reader.disconnect()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
    pcscd.wait_card(vpcd_reader_name(1), present=False, timeout=15)
    assert load_psam(image).next_terminal_seq == 2
    assert ykt("psam", "issue", "--keyset", TEST_KEYSET_DIR / "gd-test-3des.toml", "--terminal-id",
               "440300000007", "--out", image).returncode != 0          # never overwrite a PSAM

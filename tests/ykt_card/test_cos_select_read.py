"""Selection, file reads and GET BALANCE: exact exchange tables (reference 1.2, 1.3, 1.4, D3)."""
import pytest

from ykt_card.card.state import Lock

from tests.ykt_card.helpers import AID, EF15, SELECT_AID, HostTerminal, h, make_card, run_table, gd_keyset

EF15_HEX = EF15.hex().upper()
FCI = "6F318408" + AID + "A5259F0801029F0C1E" + EF15_HEX
PPSE_FCI = ("6F49840E325041592E5359532E4444463031A537BF0C34"
            "61194F08A000000632010106500A4D4F545F545F43415348870101"
            "61174F08A00000063201010550084D4F545F545F4550870102")


def card(**kw):
    return make_card([gd_keyset("3des")], **kw)


def test_power_on_answers_the_ats_from_state():
    c = card(ats_historical=h("4D54009D0040869B19705D1401"))
    assert c.power_on().hex().upper() == "1278808002" "4D54009D0040869B19705D1401"


def test_ppse_then_aid_selection_byte_for_byte():
    run_table(card(), [
        ("00A404000E325041592E5359532E444446303100", PPSE_FCI + "9000"),
        (SELECT_AID, FCI + "9000"),
        ("00A4040008" + AID, FCI + "9000"),  # case 3 (no Le) answers the FCI too
    ])


def test_ppse_can_list_the_ep_only():
    from ykt_card.layouts.names import MOT_T_EP
    from ykt_card.layouts.fci import PpseEntry
    c = card(ppse=[PpseEntry(MOT_T_EP, "MOT_T_EP", 1)])
    run_table(c, [("00A404000E325041592E5359532E444446303100",
                   "6F2E840E325041592E5359532E4444463031A51CBF0C19"
                   "61174F08A00000063201010550084D4F545F545F4550870101" "9000")])


def test_unknown_aid_file_id_and_bad_select_parameters():
    run_table(card(), [
        ("00A4040008A00000063201010600", "6A82"),       # MOT_T_CASH is listed in the PPSE, not implemented
        ("00A4040008A00000063201010700", "6A82"),       # nothing starts with that name
        ("00A4040011" + AID + "0000000000000000" + "00" + "00", "6A82"),  # longer than the AID
        ("00A40000023F0000", "6A82"),                   # no MF by file ID on T-Union cards
        ("00A40000033F000000", "6700"),
        ("00A4040200", "6700"),                         # P2 02 (next occurrence) still needs a name
        ("00A4040108" + AID + "00", "6A86"),            # P2 01 (last occurrence) is not supported
        ("00A4000202" + "3F00", "6A86"),                # occurrences are for DF names only
        ("00A4020008" + AID + "00", "6A86"),
        ("00A4040C08" + AID, "6A86"),
        ("00A40400", "6700"),                           # no name at all
    ])


def test_partial_selection_first_and_next_occurrence():
    """ISO 7816-4 partial DF name (mobile.md 2.2): P2 00 the first DF whose name starts with the data, P2 02
    the next one after the current DF, 6A82 when none is left; a physical card answers it too."""
    run_table(card(), [
        ("00A4040007A000000632010100", FCI + "9000"),            # the start of MOT_T_EP: the EP
        ("00A4040207A000000632010100", "6A82"),                  # no next occurrence
        ("00B095001E", EF15_HEX + "9000"),                       # a failed SELECT keeps the EP selected
        ("00A4040005A00000063200", FCI + "9000"),                # the RID alone
        ("00A40402043250415900", PPSE_FCI + "9000"),             # "2PAY": after the EP, the next is the PPSE
        ("00A40402043250415900", "6A82"),                        # and nothing after the PPSE
        ("00A4040204A000000600", FCI + "9000"),                  # current DF (PPSE) no match: the first
    ])


def test_a_phone_card_answers_full_and_partial_selection_of_its_extended_aid():
    from ykt_card.layouts.names import GD_VIRTUAL_AID
    ext = GD_VIRTUAL_AID.hex().upper()
    fci = "6F398410" + ext + "A5259F0801029F0C1E" + EF15_HEX
    ppse = ("6F36840E325041592E5359532E4444463031A524BF0C21"
            "611F4F10" + ext + "50084D4F545F545F4550870101")
    run_table(card(aid=GD_VIRTUAL_AID), [
        ("00A404000E325041592E5359532E444446303100", ppse + "9000"),   # the PPSE lists the extended AID
        ("00A4040010" + ext + "00", fci + "9000"),                       # full name
        ("00A4040008" + AID + "00", fci + "9000"),                       # partial: MOT_T_EP, first occurrence
        ("00A4040208" + AID + "00", "6A82"),                             # next occurrence: none left
        ("00A4040010A000000632010105580002205810FFFF00", "6A82"),        # another suffix
    ])


def test_locked_application_selects_with_6283_or_9303():
    c = card()
    c.state.lock = Lock.TEMPORARY
    run_table(c, [(SELECT_AID, FCI + "6283"), ("00B095001E", EF15_HEX + "9000"),
                  ("805C000204", "000000009000"), ("805000020B0100000064112233445566" "10", "6985")])
    c.state.lock = Lock.PERMANENT
    run_table(c, [(SELECT_AID, FCI + "9303"), ("00B095001E", "9303"), ("805C000204", "9303"),
                  ("0084000004", "000000010000000100000001"[:8] + "9000")])


def test_read_binary_by_sfi_offsets_and_le():
    run_table(card(), [
        ("00B095001E", "6A82"),                          # nothing selected yet
        (SELECT_AID, FCI + "9000"),
        ("00B095001E", EF15_HEX + "9000"),
        ("00B0950000", EF15_HEX + "9000"),               # Le 00: the rest of the file
        ("00B0950A0A", EF15_HEX[20:40] + "9000"),        # card number, offset 10
        ("00B0951C00", EF15_HEX[56:] + "9000"),
        ("00B0951C03", "6C02"),                          # Le beyond the end: 6Cxx with what is there
        ("00B0951E00", "6B00"),                          # offset at the end
        ("00B095FF01", "6B00"),
        ("00B0001402", EF15_HEX[40:44] + "9000"),        # current EF (set by the SFI read), offset 20
        ("00B097003C", "00" * 60 + "9000"),
        ("00B0960037", "0000" + "20" * 52 + "00" + "9000"),
        ("00B0990000", "6A82"),                          # no EF19 on the reference card
        ("00B0980000", "6981"),                          # EF18 is a record file
        ("00B0B50000", "6A86"),                          # P1 bits 6-7 set with an SFI
        ("00B09500", "6700"),                            # case 1: no Le
        ("00B095000100", "6700"),                        # data in a read
    ])


def test_read_binary_without_current_ef():
    run_table(card(), [(SELECT_AID, FCI + "9000"), ("00B0000000", "6986")])


def test_read_record_cyclic_record_id_and_absent():
    c = card()
    t = HostTerminal.for_card(c, [gd_keyset("3des")])
    t.select()
    assert t.x("00B201C400").sw == 0x6A83          # EF18 empty
    assert t.load(1000)["sw"] == 0x9000
    assert t.load(2000)["sw"] == 0x9000
    newest = t.x("00B201C417")
    older = t.x("00B202C400")
    assert newest.sw == older.sw == 0x9000
    assert newest.data[0:2] == b"\x00\x02" and newest.data[5:9] == (2000).to_bytes(4, "big")
    assert older.data[0:2] == b"\x00\x01" and older.data[5:9] == (1000).to_bytes(4, "big")
    blank = "27017D010100" + "00" * 122
    run_table(c, [
        ("00B203C400", "6A83"),
        ("00B201C418", "6C17"),                     # records are read whole
        ("00B201C410", "6C17"),
        ("00B201D400", blank + "9000"),             # EF1A by record ID
        ("00B202D480", "27027D010100" + "00" * 122 + "9000"),
        ("00B203D400", "6A83"),
        ("00B201F400", "6A83"),                     # EF1E empty
        ("00B201AC00", "6981"),                     # EF15 is binary
        ("00B201FC00", "6A86"),                     # SFI 31
        ("00B201D000", "6A86"),                     # P2 low bits must be 100
        ("00B200D400", "6A86"),                     # record 0
        ("00B201E400", "6A82"),                     # SFI 1C does not exist
        ("00B201C4", "6700"),
    ])


def test_read_record_sfi_zero_uses_current_ef():
    c = card()
    run_table(c, [(SELECT_AID, FCI + "9000"), ("00B2010400", "6986"),
                  ("00B201D400", "27017D010100" + "00" * 122 + "9000"),
                  ("00B2010400", "27017D010100" + "00" * 122 + "9000")])


@pytest.mark.parametrize("balance,limit,p00,p01,p03", [
    (1200, 0, "000004B0", "00000000", "000004B0"),
    (1200, 500, "000006A4", "000001F4", "000004B0"),
    (-300, 500, "000000C8", "000001F4", "FFFFFED4"),     # overdrawn: P1 03 is two's complement
])
def test_get_balance_p1_variants(balance, limit, p00, p01, p03):
    c = card(balance=balance, overdraft_limit=limit)
    run_table(c, [
        (SELECT_AID, FCI + "9000"),
        ("805C000204", p00 + "9000"), ("805C010204", p01 + "9000"), ("805C030204", p03 + "9000"),
        ("805C000200", p00 + "9000"),
        ("805C000202", "6C04"), ("805C0002", "6700"),
        ("805C020204", "6A86"), ("805C000104", "6A86"),
        ("005C000204", "6E00"),
    ])


def test_purse_commands_need_the_application():
    run_table(card(), [
        ("805C000204", "6985"),
        ("00A404000E325041592E5359532E444446303100", PPSE_FCI + "9000"),
        ("805C000204", "6985"),
        ("00B095001E", "6A82"),
        ("805A000602000108", "6985"),
    ])

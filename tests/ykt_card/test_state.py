"""CardState.new builds the reference file system from the layouts; its refusals name the field."""
from __future__ import annotations

import pytest

from tests.ykt_card.helpers import EF15, gd_keyset
from ykt_card.card.files import BinaryFile, CyclicFile, RecordFile
from ykt_card.card.state import CardState, StateError
from ykt_card.layouts import EF16, EF17, EF18, EF1EA, AdfFci, blank_record, record_size
from ykt_card.layouts.names import SFI_CAPP, SFI_HISTORY, SFI_HOLDER, SFI_LOG, SFI_MANAGEMENT, SFI_PUBLIC


def new(**kwargs) -> CardState:
    return CardState.new(EF15, [gd_keyset("3des")], **kwargs)


def test_the_files_are_the_layouts() -> None:
    files = new().files
    assert files[SFI_PUBLIC] == BinaryFile(SFI_PUBLIC, EF15)
    assert files[SFI_HOLDER] == BinaryFile(SFI_HOLDER, EF16.encode(EF16.blank()))
    assert files[SFI_MANAGEMENT] == BinaryFile(SFI_MANAGEMENT, EF17.encode(EF17.blank()))
    assert files[SFI_LOG] == CyclicFile.empty(SFI_LOG, EF18.size, EF18.capacity)
    assert files[SFI_HISTORY] == CyclicFile.empty(SFI_HISTORY, EF1EA.size, EF1EA.capacity)
    assert files[SFI_CAPP] == RecordFile(SFI_CAPP, {1: blank_record(1), 2: blank_record(2)})


def test_record_ids_capacities_and_initial_records() -> None:
    state = new(capp_records=[0x01, 0x07, 0x0D], log_capacity=5, history_capacity=7)
    assert {rid: len(r) for rid, r in state.files[SFI_CAPP].records.items()} == {
        rid: record_size(rid) for rid in (0x01, 0x07, 0x0D)}
    assert (state.files[SFI_LOG].capacity, state.files[SFI_HISTORY].capacity) == (5, 7)
    metro = blank_record(1)[:-1] + b"\x01"
    assert new(capp_records={1: metro}).files[SFI_CAPP].records == {1: metro}


@pytest.mark.parametrize("kwargs, field, reason", [
    ({"capp_records": {1: 128}}, "capp_records.01", "sizes come from the EF1A layouts"),
    ({"capp_records": [0]}, "capp_records", "out of range 01..FE"),
    ({"ef16": bytes(54)}, "files.16", "binary file of 55 bytes (EF16)"),
    ({"app_version": 0x100}, "app_version", "one byte"),
    ({"ppse": ()}, None, None),
])
def test_refusals_name_the_field(kwargs, field, reason) -> None:
    if field is None:
        assert new(**kwargs).ppse_fci().startswith(b"\x6F")       # an empty directory is a directory
        return
    with pytest.raises(StateError) as err:
        new(**kwargs)
    assert err.value.field == field and reason in err.value.reason


def test_the_fci_is_the_layouts_and_carries_ef15_as_held() -> None:
    state = new()
    assert AdfFci.decode(state.app_fci())["ef15"]["card_no"] == "03105810000000001234"
    state.files[SFI_PUBLIC].data = EF15[:19] + b"\x3A" + EF15[20:]     # UPDATE BINARY may write anything
    assert state.app_fci().endswith(state.ef15)
    with pytest.raises(StateError) as err:
        CardState.new(EF15[:29], [gd_keyset("3des")])
    assert err.value.field == "ef15"

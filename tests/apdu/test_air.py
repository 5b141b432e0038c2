"""The in-process air link: the PCD and PICC engines exchanging frames (with CRC_A) through a lossy channel.

Exact frame tables for each recovery path (a row: direction, frame without its CRC_A, and what the channel
did to it), then the property that matters: whatever frames are lost or corrupted in either direction, no
APDU is lost, repeated or reordered - a DEBIT is never executed twice - and a link that cannot recover
ends in RetryLimitExceeded naming the rule.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from apdu.cardos import CardPowerLoss
from apdu.endpoint import CardEndpoint
from apdu.iso14443 import Ats, check_crc_a, frame_size, pseudo_atr
from apdu.isodep import RetryLimitExceeded
from apdu.reader import Reader, ReaderError
from apdu.transport.air import DELIVER, DROP, AirCardEndpoint, AirReader, Fault, Hop, LossyChannel, NoCardInField

ATS = bytes.fromhex("12 78 80 80 02 4D 54 00 9D 00 40 86 9B 19 70 5D 14 01")
START_BALANCE = 100_000


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def debit(seq: int, amount: int) -> bytes:
    return h("80 54 00 00 06") + seq.to_bytes(2, "big") + amount.to_bytes(4, "big")


def echo(tag: int, data: bytes, extra: int = 0) -> bytes:
    """ECHO: answers tag ‖ data, then `extra` more bytes (so responses chain too)."""
    body = tag.to_bytes(2, "big") + data
    return h("00 01 00") + bytes([extra]) + bytes([len(body)]) + body


class PurseCard:
    """A Card OS with a purse: DEBIT (80 54, data seq(2) ‖ amount(4)) takes the amount and answers
    seq ‖ new balance(4) ‖ 9000; ECHO (00 01, P2 = extra bytes) answers its data ‖ P2 counting bytes ‖ 9000;
    INS 99 loses power. Every command it executes is logged, in order."""

    def __init__(self, ats: bytes = ATS) -> None:
        self.ats = ats
        self.balance = START_BALANCE
        self.executed: list[bytes] = []
        self.events: list[str] = []

    def power_on(self) -> bytes:
        self.events.append("on")
        return self.ats

    def power_off(self) -> None:
        self.events.append("off")

    def process(self, capdu: bytes) -> bytes:
        if capdu[1] == 0x99:
            raise CardPowerLoss()
        self.executed.append(capdu)
        if capdu[1] == 0x54:
            seq, amount = capdu[5:7], int.from_bytes(capdu[7:11], "big")
            self.balance -= amount
            return seq + self.balance.to_bytes(4, "big", signed=True) + b"\x90\x00"
        if capdu[1] == 0x01:
            return capdu[5:5 + capdu[4]] + bytes(range(capdu[3])) + b"\x90\x00"
        return b"\x6D\x00"


@contextmanager
def in_field(card: PurseCard, channel: LossyChannel, **options) -> Iterator[AirCardEndpoint]:
    endpoint = AirCardEndpoint(card, channel, **options)
    endpoint.serve_in_thread()
    assert endpoint.wait_ready(5.0)
    try:
        yield endpoint
    finally:
        endpoint.stop()
    assert endpoint.error is None


def table(log: list[Hop]) -> list[str]:
    """The channel log as rows: `>` PCD to PICC, `<` back; frame without CRC_A; `lost` / `corrupt`."""
    rows = []
    for hop in log:
        assert check_crc_a(hop.sent)
        fate = "" if hop.received == hop.sent else " lost" if hop.received is None else " corrupt"
        rows.append(f"{'>' if hop.to_picc else '<'} {hop.sent[:-2].hex().upper()}{fate}")
    return rows


def rows(*lines: str) -> list[str]:
    out = []
    for line in lines:
        arrow, rest = line.split(" ", 1)
        frame, _, fate = rest.partition("|")
        out.append(f"{arrow} {h(frame).hex().upper()}{' ' + fate.strip() if fate.strip() else ''}")
    return out


ACTIVATION = ("> E0 80", "< " + ATS.hex())


# --- frame tables ---------------------------------------------------------------------------------------


def test_a_clean_exchange_and_deselect():
    channel = LossyChannel()
    card = PurseCard()
    with in_field(card, channel):
        reader = AirReader(channel)
        assert isinstance(reader, Reader)
        assert reader.connect() == pseudo_atr(Ats.parse(ATS).historical)
        assert reader.transmit(debit(1, 150)) == h("00 01 00 01 86 0A 90 00")
        reader.disconnect()
    assert table(channel.log) == rows(*ACTIVATION,
                                      "> 02 80 54 00 00 06 00 01 00 00 00 96", "< 02 00 01 00 01 86 0A 90 00",
                                      "> C2", "< C2")
    assert card.events == ["on", "off"]


def test_a_lost_debit_answer_is_sent_again_not_debited_again():
    channel = LossyChannel(faults=[DELIVER, DELIVER, DELIVER, DROP])  # RATS, ATS, DEBIT, then its answer is lost
    card = PurseCard()
    with in_field(card, channel):
        reader = AirReader(channel)
        reader.connect()
        assert reader.transmit(debit(7, 1000)) == h("00 07 00 01 82 B8 90 00")
    assert table(channel.log) == rows(*ACTIVATION,
                                      "> 02 80 54 00 00 06 00 07 00 00 03 E8",
                                      "< 02 00 07 00 01 82 B8 90 00 | lost",
                                      "> B2",  # rule 4: R(NAK, 0)
                                      "< 02 00 07 00 01 82 B8 90 00")  # rule 11: the card's last block again
    assert card.executed == [debit(7, 1000)] and card.balance == START_BALANCE - 1000


def test_a_lost_or_corrupted_debit_is_sent_again_and_executed_once():
    for fault in (DROP, Fault("corrupt", offset=7, mask=0x40)):
        channel = LossyChannel(faults=[DELIVER, DELIVER, fault])
        card = PurseCard()
        with in_field(card, channel):
            reader = AirReader(channel)
            reader.connect()
            assert reader.transmit(debit(8, 5)) == h("00 08 00 01 86 9B 90 00")
        assert table(channel.log) == rows(*ACTIVATION,
                                          f"> 02 80 54 00 00 06 00 08 00 00 00 05 | {fault.kind.replace('drop', 'lost')}",
                                          "> B2",  # rule 4
                                          "< A3",  # rule 12: the card is still at block number 1
                                          "> 02 80 54 00 00 06 00 08 00 00 00 05",  # rule 6
                                          "< 02 00 08 00 01 86 9B 90 00")
        assert card.executed == [debit(8, 5)]


def test_chaining_both_ways_under_loss():
    small = bytes.fromhex("05 70 80 80 02")  # FSC 16: commands chain by 13 bytes
    channel = LossyChannel(faults=[DELIVER, DELIVER, DELIVER, DROP, DELIVER, DELIVER, DELIVER, DELIVER, DROP])
    card = PurseCard(small)
    capdu = echo(1, bytes(range(14)), extra=0)  # 21 bytes: 13 + 8
    with in_field(card, channel):
        reader = AirReader(channel, fsd=16)  # responses chain by 13 bytes
        reader.connect()
        answer = reader.transmit(capdu)
    assert answer == capdu[5:] + h("90 00")  # 18 bytes: 13 + 5
    assert table(channel.log) == rows("> E0 00", "< " + small.hex(),
                                      "> 12" + capdu[:13].hex(),
                                      "< A2 | lost",  # the card's R(ACK) for the first part
                                      "> B2",  # rule 4
                                      "< A2",  # rule 11: its last block, the R(ACK), again
                                      "> 03" + capdu[13:].hex(),  # rule 7
                                      "< 13" + answer[:13].hex(),  # the answer chains
                                      "> A2 | lost",  # our R(ACK, 0)
                                      "> A2",  # rule 5: R(ACK) again while the card chains
                                      "< 02" + answer[13:].hex())  # rules E and 13
    assert card.executed == [capdu]


def test_wtx_under_loss():
    channel = LossyChannel(faults=[DELIVER, DELIVER, DELIVER, DROP, DELIVER, DELIVER, DROP])
    card = PurseCard()
    with in_field(card, channel, wtx_rounds=lambda capdu: 1 if capdu[1] == 0x54 else 0, wtxm=4):
        reader = AirReader(channel)
        reader.connect()
        assert reader.transmit(debit(2, 1)) == h("00 02 00 01 86 9F 90 00")
    assert table(channel.log) == rows(*ACTIVATION,
                                      "> 02 80 54 00 00 06 00 02 00 00 00 01",
                                      "< F2 04 | lost",  # rule 9: the card asks for more time; lost
                                      "> B2",  # rule 4
                                      "< F2 04",  # rule 11: asked again
                                      "> F2 04 | lost",  # our S(WTX) response is lost
                                      "> B2",  # rule 4
                                      "< F2 04",  # still waiting for the response: asked again
                                      "> F2 04",
                                      "< 02 00 02 00 01 86 9F 90 00")
    assert card.executed == [debit(2, 1)]


def test_the_retry_limit_ends_in_a_clear_error_and_the_field_goes_off():
    channel = LossyChannel(faults=[DELIVER, DELIVER, DELIVER, DROP, DELIVER, DROP, DELIVER, DROP])
    card = PurseCard()
    with in_field(card, channel):
        reader = AirReader(channel)
        reader.connect()
        with pytest.raises(RetryLimitExceeded, match="rule 4") as failure:
            reader.transmit(debit(3, 10))
        assert isinstance(failure.value, ReaderError)
        with pytest.raises(ReaderError, match="not connected"):
            reader.transmit(debit(4, 10))
        reader.connect()  # a new activation: block numbers from their start
        assert reader.transmit(debit(4, 10)) == h("00 04 00 01 86 8C 90 00")
    assert table(channel.log) == rows(*ACTIVATION,
                                      "> 02 80 54 00 00 06 00 03 00 00 00 0A",
                                      "< 02 00 03 00 01 86 96 90 00 | lost",
                                      "> B2", "< 02 00 03 00 01 86 96 90 00 | lost",
                                      "> B2", "< 02 00 03 00 01 86 96 90 00 | lost",
                                      *ACTIVATION,
                                      "> 02 80 54 00 00 06 00 04 00 00 00 0A", "< 02 00 04 00 01 86 8C 90 00")
    assert card.executed == [debit(3, 10), debit(4, 10)]  # the first was executed once; its answer never came
    assert card.events == ["on", "off", "on", "off"]  # field off after the failure; the card leaving at the end


def test_deselect_unanswered_is_given_up_after_the_limit():
    channel = LossyChannel(faults=[DELIVER, DELIVER, DELIVER, DROP, DELIVER, DELIVER])
    card = PurseCard()
    with in_field(card, channel):
        reader = AirReader(channel)
        reader.connect()
        reader.disconnect()
    assert table(channel.log) == rows(*ACTIVATION,
                                      "> C2", "< C2 | lost",
                                      "> C2",  # rule 8: sent again; the card already sleeps (HALT)
                                      "> C2")
    assert card.events == ["on", "off"]


def test_activation_retries_rats_then_gives_up():
    channel = LossyChannel(faults=[DROP, DELIVER, Fault("corrupt", 3, 0x80), DELIVER, DELIVER])
    card = PurseCard()
    with in_field(card, channel):
        reader = AirReader(channel)
        reader.connect()
        channel.script([DROP] * 6)  # the S(DESELECT) of the first activation, thrice; then each RATS
        with pytest.raises(NoCardInField, match="no valid ATS after 3 RATS"):
            reader.connect()
    assert table(channel.log)[:5] == rows("> E0 80 | lost", "> E0 80", "< " + ATS.hex() + " | corrupt",
                                          *ACTIVATION)


def test_power_loss_silences_the_card_until_it_is_activated_again():
    channel = LossyChannel()
    card = PurseCard()
    with in_field(card, channel) as endpoint:
        reader = AirReader(channel)
        reader.connect()
        with pytest.raises(RetryLimitExceeded, match="rule 4"):
            reader.transmit(h("80 99 00 00"))
        assert endpoint.power_losses == 1 and reader.card_present()
        reader.connect()
        assert reader.transmit(debit(1, 1)) == h("00 01 00 01 86 9F 90 00")
    assert card.events == ["on", "on", "off"]  # no power_off after the loss (it lost power instead); off at the end


def test_power_loss_with_absence_takes_the_card_out_of_the_field():
    channel = LossyChannel()
    with in_field(PurseCard(), channel, absence=0.2) as endpoint:
        reader = AirReader(channel)
        reader.connect()
        with pytest.raises(RetryLimitExceeded):
            reader.transmit(h("80 99 00 00"))
        assert not reader.card_present()
        with pytest.raises(NoCardInField):
            reader.connect()
        assert endpoint.wait_ready(5.0)
        reader.connect()


def test_no_card_and_one_card_per_field():
    channel = LossyChannel()
    with pytest.raises(NoCardInField):
        AirReader(channel).connect()
    with in_field(PurseCard(), channel) as first:
        assert isinstance(first, CardEndpoint)
        second = AirCardEndpoint(PurseCard(), channel)
        second.serve_in_thread().join(5)
        assert isinstance(second.error, ReaderError) and "one card per channel" in str(second.error)


def test_channel_and_fault_refuse_bad_values():
    for kwargs, message in (({"loss": 1.5}, "channel loss"), ({"corruption": -0.1}, "channel corruption")):
        with pytest.raises(ValueError, match=message):
            LossyChannel(**kwargs)
    for kwargs, message in (({"kind": "swap"}, "fault kind"), ({"kind": "corrupt", "mask": 0}, "fault mask"),
                            ({"offset": -1}, "fault offset")):
        with pytest.raises(ValueError, match=message):
            Fault(**kwargs)
    with pytest.raises(ValueError, match="FSD: 100 is no frame size RATS can announce"):
        AirReader(LossyChannel(), fsd=100)


def test_a_card_os_without_a_valid_ats_fails_the_endpoint():
    channel = LossyChannel()
    card = PurseCard(ats=bytes.fromhex("05 78 80"))  # TL says 5, 3 bytes come
    endpoint = AirCardEndpoint(card, channel)
    endpoint.serve_in_thread()
    assert endpoint.wait_ready(5.0)
    with pytest.raises(NoCardInField):
        AirReader(channel).connect()
    endpoint.stop()
    assert isinstance(endpoint.error, ValueError)
    assert "answers no valid ATS (057880): ATS TL: says 5 bytes, got 3" in str(endpoint.error)
    assert card.events == ["on", "off"] and channel.card is None


# --- the property ---------------------------------------------------------------------------------------------

FAULT = st.one_of(st.just(DELIVER), st.just(DROP),
                  st.builds(lambda offset, mask: Fault("corrupt", offset, mask), st.integers(0, 300), st.integers(1, 255)))
COMMAND = st.one_of(
    st.builds(lambda amount: ("debit", amount), st.integers(0, 5000)),
    st.builds(lambda size, extra: ("echo", size, extra), st.integers(0, 250), st.integers(0, 255)),
)


def build(index: int, spec: tuple) -> bytes:
    if spec[0] == "debit":
        return debit(index, spec[1])
    return echo(index, bytes(i & 0xFF for i in range(spec[1])), spec[2])


def expected_answers(capdus: list[bytes]) -> list[bytes]:
    model = PurseCard()
    return [model.process(capdu) for capdu in capdus]


def run(capdus: list[bytes], channel: LossyChannel, ats: bytes, fsd: int) -> tuple[PurseCard, list[bytes],
                                                                                       ReaderError | None]:
    card = PurseCard(ats)
    answers: list[bytes] = []
    error: ReaderError | None = None
    with in_field(card, channel, wtx_rounds=lambda capdu: 1 if capdu[1] == 0x54 else 0):
        reader = AirReader(channel, fsd=fsd)
        try:
            reader.connect()
            for capdu in capdus:
                answers.append(reader.transmit(capdu))
        except (RetryLimitExceeded, NoCardInField) as exc:
            error = exc
    return card, answers, error


def check_exactly_once_in_order(capdus: list[bytes], card: PurseCard, answers: list[bytes],
                                error: ReaderError | None, channel: LossyChannel) -> None:
    done = len(answers)
    assert answers == expected_answers(capdus)[:done]  # each answer once, in order, to its own command
    if error is None:
        assert card.executed == capdus
    else:
        # the command in flight when the link was lost may or may not have reached the card; no other
        assert card.executed in (capdus[:done], capdus[:done + 1])
        faults = sum(hop.received != hop.sent for hop in channel.log)
        assert faults >= 3  # the limit is 2 retransmissions: a lost link took at least 3 faults in a row
        if isinstance(error, RetryLimitExceeded):
            assert error.rule in (4, 5, 6) and error.retries == 2
    debits = [capdu for capdu in card.executed if capdu[1] == 0x54]
    assert len({capdu[5:7] for capdu in debits}) == len(debits)  # no DEBIT executed twice
    assert card.balance == START_BALANCE - sum(int.from_bytes(capdu[7:11], "big") for capdu in debits)


@settings(max_examples=300)
@given(specs=st.lists(COMMAND, min_size=1, max_size=8), faults=st.lists(FAULT, max_size=60),
       fsci=st.sampled_from([0, 2, 5, 8]), fsdi=st.sampled_from([0, 3, 8]))
def test_no_apdu_is_lost_repeated_or_reordered(specs, faults, fsci, fsdi):
    capdus = [build(index, spec) for index, spec in enumerate(specs)]
    ats = Ats(fsci=fsci, ta=0x80, tb=0x80, tc=0x02).to_bytes()
    channel = LossyChannel(faults=faults)
    card, answers, error = run(capdus, channel, ats, frame_size(fsdi))
    event("link lost" if error else "all answered")
    event(f"{min(sum(hop.received != hop.sent for hop in channel.log), 5)} faulty frames (5: five or more)")
    check_exactly_once_in_order(capdus, card, answers, error, channel)


@settings(max_examples=60)
@given(seed=st.integers(0, 2**32 - 1), loss=st.sampled_from([0.05, 0.15, 0.3]),
       corruption=st.sampled_from([0.0, 0.05, 0.15]))
def test_a_seeded_noisy_channel_keeps_every_apdu_exactly_once(seed, loss, corruption):
    capdus = [build(i, ("debit", 100 + i) if i % 3 == 0 else ("echo", 40 * (i % 7), i % 50)) for i in range(30)]
    channel = LossyChannel(loss=loss, corruption=corruption, seed=seed)
    card, answers, error = run(capdus, channel, bytes.fromhex("05 72 80 80 02"), 64)  # FSC 32, FSD 64: chains
    check_exactly_once_in_order(capdus, card, answers, error, channel)


def test_a_seeded_channel_repeats_exactly():
    def frames(seed: int) -> list[Hop]:
        channel = LossyChannel(loss=0.1, corruption=0.1, seed=seed)
        run([debit(i, 1) for i in range(20)], channel, ATS, 256)
        return channel.log

    assert frames(11) == frames(11) and frames(11) != frames(12)


def test_a_long_run_keeps_the_last_frames_and_counts_them_all():
    channel = LossyChannel(keep=3)
    with in_field(PurseCard(), channel):
        reader = AirReader(channel)
        reader.connect()
        for seq in range(5):
            reader.transmit(debit(seq, 1))
    assert channel.frames == 2 + 5 * 2 and len(channel.log) == 3
    assert table(list(channel.log)) == rows("< 03 00 03 00 01 86 9C 90 00", "> 02 80 54 00 00 06 00 04 00 00 00 01",
                                            "< 02 00 04 00 01 86 9B 90 00")

"""Personalisation as an APDU script: what turns a blank card into an issued one, with the reference's commands only.

`build_script(target, transport_key)` lists the commands that make a blank card (`personalise.blank_card`:
the profile's file structure, the transport key, no key sets) hold the same keys, files and records as
`target` (the card `personalise.issue_card` built). `run_script(script, reader, keys)` sends them through
any Reader (in-process, an image, pcscd), computing every secure-messaging MAC from the GET CHALLENGE
answer just before it: a MAC over a random challenge cannot be precomputed, so the script describes
those commands and the runner, holding the keys, completes them live. File creation is vendor-specific
and stays out of the script (the blank card already has the files).

The commands, in order:
    SELECT MOT_T_EP
    per key index (ascending), per role (card_master last, because once a key set holds a card master
    key, the card protects that index's WRITE KEY with it instead of the transport key):
        GET CHALLENGE; WRITE KEY `84 D4 type index Lc E ‖ MAC` under the transport key
    GET CHALLENGE; WRITE KEY `84 D4 30 00 …`: the transport key is replaced by the card's own card
        master key (the card_master of the lowest key index; left out when there is none or it is the
        transport key already), so no batch-wide key stays on the card
    GET CHALLENGE; UPDATE BINARY `04 D6 …` EF15, EF16, EF17 under the app maintenance key
    GET CHALLENGE; UPDATE RECORD `04 DC …` each EF1A record under the app maintenance key

File format: JSON Lines (UTF-8), one object per line; hex is upper case.

Line 1, the header:
    {"ykt": "personalisation-script", "format": 1, "card_no": "<20 digits>", "issuer_id": "<16 hex>",
     "profile": "<name>", "keys": {NAME: {"role": ROLE, "algorithm": "3des"|"sm4", "kcv": "<6 hex>"}}}
  `keys` declares the keys the runner must hold, by name (`transport`: the key on the blank card;
  `maintenance`: the card's app maintenance key), each by role, algorithm and KCV so a runner can find
  it in its key sets (as given, or diversified for `issuer_id` and the serial in `card_no`, D2) and
  check it before sending anything.
Each further line, one step:
    {"step": N, "apdu": "<hex>", "expect": "9000", "note": "<text>"[, "challenge": true][, "mac": NAME]}
  `step` counts from 1 with no gaps. `apdu` is the command exactly as sent, except that a step with
  `mac` is sent with 4 more bytes: `apdu` is then CLA INS P1 P2 Lc ‖ data with Lc already counting
  those 4 bytes, and the runner appends MAC = secure-messaging MAC under key NAME over `apdu` as
  written, with IV = the answer to the step before, which must be a `challenge` step (a GET
  CHALLENGE `00 84 00 00 04`): a challenge is good for the next command only (D18). `expect` is
  the status word the step must answer; the runner stops at the first step that answers otherwise.
  `note` is for people (which key or file; keys appear by KCV only).

Keys never appear in clear: each WRITE KEY carries its key encrypted under the transport key (the
card's format, ykt_card.card.cos.TUnionCardOS.write_key), which is how personalisation data travels, and
is exactly what a trace of the session shows. With TEST key sets only (D15).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, model_validator

from apdu.command import ApduError, CommandApdu
from apdu.reader import Reader
from apdu.status import SW_OK, describe
from apdu.t0 import transceive
from keysets import ALL_ROLES, Algorithm, KeyEntry, KeySet, KeySetError, SecretKey, pad80
from keysets.keyset import Role
from ykt_files.atomic import write_text_atomic
from ykt_files.schema import Digits, DocumentError, HexBytes, HexString, Model, problem, read_text, validate

from ykt_card.card.files import CyclicFile
from ykt_card.card.state import CardState, Lock
from ykt_card.host.card import sm_mac
from ykt_card.layouts import EF15
from ykt_card.layouts.names import (SFI_CAPP, SFI_HISTORY, SFI_HOLDER, SFI_LOG, SFI_MANAGEMENT, SFI_PUBLIC,
                                    WRITE_KEY_TYPE_OF)

__all__ = [
    "SCRIPT_KIND", "FORMAT", "ScriptError", "ScriptFileError", "ScriptRefused", "ScriptKey", "Step", "Script",
    "build_script", "parse_script", "load_script", "save_script", "script_keys", "run_script", "write_key_block",
]

SCRIPT_KIND = "personalisation-script"
FORMAT = 1
CHALLENGE_APDU = bytes.fromhex("0084000004")
_KEY_ORDER = ["tac"] + [r for r in ALL_ROLES if r not in ("tac", "card_master")] + ["card_master"]
"""WRITE KEY order: the TAC key before the purchase and load keys, so a card saved half-way through its
personalisation never holds a money key it could not prove a transaction with (its image would be
refused); the card master key last, as the key that protects the rest."""


class ScriptError(ValueError):
    """A script that cannot be built, read or run as written: names the line or step and the field."""


class ScriptFileError(DocumentError, ScriptError):
    """A script file refused: `<file>: line N: <field>: <reason>`."""


class ScriptRefused(Exception):
    """The card answered a step with another status word than the script expects.

    `step` is the step's number, `sw` the status word; steps before it were applied (each command
    is atomic on the card, a personalisation is not: a refused card is scrapped or re-run by hand).
    """

    def __init__(self, step: Step, sw: int) -> None:
        done = f"steps 1-{step.number - 1} were applied" if step.number > 1 else "nothing was applied"
        super().__init__(f"step {step.number} ({step.note or step.apdu[:4].hex().upper()}): card answered "
                         f"{sw:04X} ({describe(sw)}), expected {step.expect:04X}; {done}")
        self.step = step
        self.sw = sw


@dataclass(frozen=True)
class ScriptKey:
    """A key the runner must hold: found by role, algorithm and KCV, never by value."""

    name: str
    role: str
    algorithm: Algorithm
    kcv: str


@dataclass(frozen=True)
class Step:
    number: int
    apdu: bytes
    expect: int = SW_OK
    note: str = ""
    challenge: bool = False
    mac: str | None = None


@dataclass(frozen=True)
class Script:
    card_no: str
    issuer_id: bytes
    profile: str
    keys: Mapping[str, ScriptKey]
    steps: tuple[Step, ...]

    @property
    def serial8(self) -> bytes:
        """The card serial of the card the script personalises (the second factor of D2)."""
        return EF15.serial8_of_card_no(self.card_no)

    def dumps(self) -> str:
        """The JSON Lines text of the script (byte for byte the same for the same script)."""
        header = {
            "ykt": SCRIPT_KIND, "format": FORMAT, "card_no": self.card_no,
            "issuer_id": self.issuer_id.hex().upper(), "profile": self.profile,
            "keys": {k.name: {"role": k.role, "algorithm": k.algorithm.value, "kcv": k.kcv}
                     for k in self.keys.values()},
        }
        lines = [header]
        for s in self.steps:
            line: dict[str, object] = {"step": s.number, "apdu": s.apdu.hex().upper(), "expect": f"{s.expect:04X}",
                                       "note": s.note}
            if s.challenge:
                line["challenge"] = True
            if s.mac is not None:
                line["mac"] = s.mac
            lines.append(line)
        return "".join(json.dumps(x, ensure_ascii=False, separators=(",", ":")) + "\n" for x in lines)


# --- building -------------------------------------------------------------------------------------

def write_key_block(protector: SecretKey, key: SecretKey, version: int) -> bytes:
    """E of WRITE KEY: ECB under `protector` of pad80(14 ‖ algID ‖ version ‖ 00 00 ‖ key), as the card
    decrypts it (ykt_card.card.cos.TUnionCardOS.write_key). Holds the key only encrypted."""
    alg = protector.algorithm
    plain = bytes((0x14, key.algorithm.wire_id, version, 0x00, 0x00)) + key.value
    return alg.cipher(protector.value).encrypt(pad80(plain, alg.block_size))


def _sm_apdu(cla: int, ins: int, p1: int, p2: int, data: bytes) -> bytes:
    """CLA INS P1 P2 Lc ‖ data with Lc counting the 4 MAC bytes the runner appends."""
    if len(data) + 4 > 0xFF:
        raise ScriptError(f"{ins:02X} command: {len(data)} bytes of data and a MAC do not fit a short Lc")
    return bytes((cla, ins, p1, p2, len(data) + 4)) + data


def build_script(target: CardState, transport_key: SecretKey, profile: str = "") -> Script:
    """The script that turns a blank card holding `transport_key` into `target`.

    `target` must be a card as issued: a 0-fen purse with zero counters, empty EF18 and EF1E, no
    proofs, no lock (the reference has no command that writes those; they come from transactions).
    """
    if not isinstance(transport_key, SecretKey):
        raise ScriptError(f"transport key: must be a keysets.SecretKey, not {type(transport_key).__name__}")
    p = target.purse
    if (p.balance, p.online_counter, p.offline_counter) != (0, 0, 0):
        raise ScriptError(f"purse: a scripted card starts at 0 fen with zero counters (balance {p.balance}); "
                          "no reference command sets a purse, load the card afterwards")
    for sfi in (SFI_LOG, SFI_HISTORY):
        f = target.files.get(sfi)
        if not isinstance(f, CyclicFile) or f.count:
            raise ScriptError(f"files.{sfi:02X}: must be an empty cyclic file on a card to personalise")
    if target.proofs or target.lock is not Lock.NONE or target.journal:
        raise ScriptError("proofs/lock/journal: the target card has been used; script a card as issued")
    if not target.key_sets:
        raise ScriptError("key_sets: the target card holds no key set")
    for sfi in target.files:
        if sfi not in (SFI_PUBLIC, SFI_HOLDER, SFI_MANAGEMENT, SFI_LOG, SFI_CAPP, SFI_HISTORY):
            raise ScriptError(f"files.{sfi:02X}: issuer-defined files are not scripted")

    steps: list[Step] = []

    def add(apdu: bytes, note: str, *, challenge: bool = False, mac: str | None = None) -> None:
        steps.append(Step(len(steps) + 1, apdu, SW_OK, note, challenge, mac))

    def secured(apdu: bytes, note: str, key_name: str) -> None:
        add(CHALLENGE_APDU, "GET CHALLENGE", challenge=True)
        add(apdu, note, mac=key_name)

    add(bytes.fromhex("00A40400") + bytes((len(target.aid),)) + target.aid + b"\x00",
        f"SELECT {target.aid.hex().upper()}")
    for index, ks in sorted(target.key_sets.items()):
        for role in sorted(ks.keys, key=_KEY_ORDER.index):
            e: KeyEntry = ks.keys[role]
            block = write_key_block(transport_key, e.key, e.version)
            secured(_sm_apdu(0x84, 0xD4, WRITE_KEY_TYPE_OF[role], index, block),
                    f"WRITE KEY {role} {index:02X} ({e.key.algorithm.value}, version {e.version}, KCV {e.kcv})",
                    "transport")
    lowest = target.key_sets[min(target.key_sets)]
    own = lowest.keys.get("card_master")
    if own is not None and own.key != transport_key:
        block = write_key_block(transport_key, own.key, own.version)
        secured(_sm_apdu(0x84, 0xD4, WRITE_KEY_TYPE_OF["card_master"], 0x00, block),
                f"WRITE KEY transport 00 <- card master ({own.key.algorithm.value}, KCV {own.kcv})", "transport")
    maintenance = next((ks.keys["app_maintenance"] for _, ks in sorted(target.key_sets.items())
                        if "app_maintenance" in ks.keys), None)
    if maintenance is None:
        raise ScriptError("key_sets: no app_maintenance key to write the files with")
    for sfi in (SFI_PUBLIC, SFI_HOLDER, SFI_MANAGEMENT):
        data = target.files[sfi].data  # type: ignore[union-attr]
        secured(_sm_apdu(0x04, 0xD6, 0x80 | sfi, 0x00, data), f"UPDATE BINARY EF{sfi:02X}", "maintenance")
    capp = target.files.get(SFI_CAPP)
    for rid, record in sorted(getattr(capp, "records", {}).items()):
        secured(_sm_apdu(0x04, 0xDC, rid, (SFI_CAPP << 3) | 0x04, record), f"UPDATE RECORD EF1A {rid:02X}",
                "maintenance")
    keys = {
        "transport": ScriptKey("transport", "card_master", transport_key.algorithm, transport_key.kcv),
        "maintenance": ScriptKey("maintenance", "app_maintenance", maintenance.key.algorithm, maintenance.kcv),
    }
    return Script(target.card_no, target.issuer_id, profile, keys, tuple(steps))


# --- reading and writing --------------------------------------------------------------------------

def _format_one(value: Any) -> int:
    if value != FORMAT or isinstance(value, bool) or not isinstance(value, int):
        raise problem(f"must be {FORMAT}, got {value!r}")
    return value


def _status_word(value: Any) -> int:
    if not isinstance(value, str) or len(value) != 4:
        raise problem("must be a 4-hex-digit status word")
    try:
        return int(value, 16)
    except ValueError:
        raise problem("must be a 4-hex-digit status word") from None


class ScriptKeyLine(Model):
    role: Role
    algorithm: Literal["3des", "sm4"]
    kcv: HexString(6)


class ScriptHeader(Model):
    """Line 1: what the script personalises and the keys (by KCV) its runner must hold."""

    ykt: Literal["personalisation-script"]
    format: Annotated[int, BeforeValidator(_format_one)]
    card_no: Digits(20)
    issuer_id: HexBytes(8)
    profile: str = ""
    keys: dict[str, ScriptKeyLine]

    @model_validator(mode="after")
    def _some_keys(self) -> "ScriptHeader":
        if not self.keys:
            raise problem("must map key names to {role, algorithm, kcv}", at="keys")
        return self


class StepLine(Model):
    """One step: a command as sent (or, with `mac`, to be completed by the runner), its expected SW."""

    step: int
    apdu: HexBytes(lo=1, hi=261)
    expect: Annotated[int, BeforeValidator(_status_word)] = SW_OK
    note: str = ""
    challenge: bool = False
    mac: str | None = None

    @model_validator(mode="after")
    def _command(self) -> "StepLine":
        apdu = self.apdu
        if self.mac is not None:
            if self.challenge:
                raise problem("a step is either a GET CHALLENGE or a MAC'd command", at="challenge")
            if len(apdu) < 5 or apdu[4] != len(apdu) - 5 + 4:
                raise problem("a MAC'd command is CLA INS P1 P2 Lc data with Lc counting the 4 MAC bytes the "
                              "runner appends", at="apdu")
            return self
        try:
            cmd = CommandApdu.parse(apdu)
        except ApduError as exc:
            raise problem(str(exc), at="apdu") from None
        if self.challenge and ((cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data) != (0, 0x84, 0, 0, b"")
                               or cmd.le not in (4, 8)):
            raise problem("a challenge step is GET CHALLENGE 00 84 00 00 04 (or 08)", at="apdu")
        return self


def _line(text: str, source: str, n: int) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScriptFileError(f"{source}: line {n}", None, f"not JSON ({exc.msg})") from None


def parse_script(text: str, source: str = "<script>") -> Script:
    """Read a script, checking every field; errors name the line and the field (`ScriptFileError`)."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise ScriptFileError(source, None, "empty: line 1 must be the header")
    n, line = lines[0]
    head = validate(ScriptHeader, _line(line, source, n), f"{source}: line {n}", ScriptFileError)
    keys = {name: ScriptKey(name, k.role, Algorithm.parse(k.algorithm), k.kcv) for name, k in head.keys.items()}
    steps: list[Step] = []
    for n, line in lines[1:]:
        where = f"{source}: line {n}"
        doc = validate(StepLine, _line(line, source, n), where, ScriptFileError)
        _check_sequence(doc, steps, keys, where)
        steps.append(Step(doc.step, doc.apdu, doc.expect, doc.note, doc.challenge, doc.mac))
    if not steps:
        raise ScriptFileError(source, None, "no steps after the header")
    return Script(head.card_no, head.issuer_id, head.profile, keys, tuple(steps))


def _check_sequence(doc: StepLine, before: list[Step], keys: Mapping[str, ScriptKey], where: str) -> None:
    """The rules across lines: steps count from 1, a MAC names a header key and follows a challenge."""
    if doc.step != len(before) + 1:
        raise ScriptFileError(where, "step", f"must be {len(before) + 1} (steps count from 1 with no gaps)")
    if doc.mac is not None:
        if doc.mac not in keys:
            raise ScriptFileError(where, "mac", f"names no key of the header ({', '.join(keys)})")
        if not before or not before[-1].challenge:
            raise ScriptFileError(where, "mac", "needs a challenge step right before it (a challenge is good "
                                                "for the next command only, D18)")


def load_script(path: str | os.PathLike[str]) -> Script:
    return parse_script(read_text(path, "personalisation script", ScriptFileError), str(path))


def save_script(path: str | os.PathLike[str], script: Script) -> None:
    """Write the script atomically (temp file, fsync, rename): a half-written script never exists."""
    write_text_atomic(path, script.dumps())


# --- running --------------------------------------------------------------------------------------

def script_keys(script: Script, keysets: Sequence[KeySet]) -> dict[str, SecretKey]:
    """The keys the script declares, found in `keysets`: each role as the key set holds it or as
    diversified for the script's card (D2), whichever has the declared KCV."""
    found: dict[str, SecretKey] = {}
    for name, want in script.keys.items():
        for ks in keysets:
            if ks.algorithm is not want.algorithm or not ks.has(want.role):
                continue
            try:
                candidates = [ks.entry(want.role).key,
                              ks.card_keys(script.issuer_id, script.serial8).entry(want.role).key]
            except KeySetError as exc:
                raise ScriptError(str(exc)) from None
            match = next((k for k in candidates if k.kcv == want.kcv), None)
            if match is not None:
                found[name] = match
                break
        else:
            raise ScriptError(f"script key {name!r} ({want.algorithm.value} {want.role}, KCV {want.kcv}): none of "
                              f"the key sets given holds it or derives it for card {script.card_no}")
    return found


def run_script(script: Script, reader: Reader, keys: Mapping[str, SecretKey]) -> int:
    """Send every step through `reader` (connected by the caller); returns the number of steps run.

    The keys are checked against the header before anything is sent. A step answered with another
    status word than expected raises `ScriptRefused` and nothing after it is sent.
    """
    for name, want in script.keys.items():
        key = keys.get(name)
        if not isinstance(key, SecretKey):
            raise ScriptError(f"script key {name!r}: not given to the runner")
        if key.algorithm is not want.algorithm or key.kcv != want.kcv:
            raise ScriptError(f"script key {name!r}: the script wants {want.algorithm.value} KCV {want.kcv}, "
                              f"the runner holds {key.algorithm.value} KCV {key.kcv}")
    challenge: bytes | None = None
    for step in script.steps:
        capdu = step.apdu
        if step.mac is not None:
            if challenge is None:
                raise ScriptError(f"step {step.number}: no challenge to compute the MAC with")
            capdu = capdu + sm_mac(keys[step.mac], challenge, capdu[0], capdu[1], capdu[2], capdu[3], capdu[5:])
        challenge = None
        resp = transceive(reader, capdu)
        if resp.sw != step.expect:
            raise ScriptRefused(step, resp.sw)
        if step.challenge:
            if len(resp.data) not in (4, 8):
                raise ScriptError(f"step {step.number}: GET CHALLENGE answered {len(resp.data)} bytes, "
                                  "expected 4 or 8")
            challenge = resp.data
    return len(script.steps)

"""A terminal's QR acceptance policy (Q8-Q10, Q3, Q1): which codes it takes, and how it guards repeats.

It is the ``qr:`` table of a terminal profile::

    qr:
      account_types: ["01", "02", "03", "04", "05"]  # accepted 卡账户类型 (default 00-05; DD never)
      local_issuers: ["02113450"]                    # version 81 (local) codes: their 发码机构号
      whitelist:                                     # version 80 codes: (发码机构号, 发码平台编号) -> ticket type
        - {issuer: "F0000001", platform: "F0000001", ticket_type: "01"}
      anti_passback_s: 60                            # same account again within this: anti_passback (0 = off)
      shanghai_uid_issuers: []                       # issuers whose codes sign with the Shanghai user IDs (§1.4)
      local_time_quirk: []                           # issuers whose phones write China time as Unix (Q3)

Every field is optional. A terminal without the table accepts no QR code at all (the profile says so).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import model_validator

from ykt_files.schema import DocumentError, HexString, IntRange, Model, problem, validate

__all__ = ["AcceptancePolicy", "QrPolicyFile", "parse_policy", "DEFAULT_ACCOUNT_TYPES", "REFUSED_ACCOUNT_TYPE",
           "VERSION_LOCAL", "MAX_ANTI_PASSBACK_S"]

DEFAULT_ACCOUNT_TYPES = frozenset(range(0x00, 0x06))
REFUSED_ACCOUNT_TYPE = 0xDD     # ZB refuses it whatever the profile says (Q8)
VERSION_LOCAL = 0x81            # 81: a local code, accepted by issuer; 80 and others: by the white list (Q9)
DEFAULT_ANTI_PASSBACK_S = 60
MAX_ANTI_PASSBACK_S = 86400     # a day: how long a terminal must remember an account's last ride at most


@dataclass(frozen=True)
class AcceptancePolicy:
    """What a terminal accepts (frozen). The default takes account types 00-05 and nothing else is listed."""

    account_types: frozenset[int] = DEFAULT_ACCOUNT_TYPES
    local_issuers: frozenset[bytes] = frozenset()
    whitelist: Mapping[tuple[bytes, bytes], str] = field(default_factory=lambda: MappingProxyType({}))
    anti_passback_s: int = DEFAULT_ANTI_PASSBACK_S
    shanghai_uid_issuers: frozenset[bytes] = frozenset()
    local_time_quirk: frozenset[bytes] = frozenset()

    def accepts_type(self, account_type: int) -> bool:
        return account_type != REFUSED_ACCOUNT_TYPE and account_type in self.account_types

    def admits(self, version: int, issuer: bytes, platform: bytes) -> tuple[bool, str | None]:
        """(accepted, ticket type): local codes by issuer, the others by the (issuer, platform) white list."""
        ticket = self.whitelist.get((issuer, platform))
        if version == VERSION_LOCAL:
            return issuer in self.local_issuers, ticket
        return ticket is not None, ticket


# -- the profile's `qr:` table ----------------------------------------------------------------------

class WhiteListEntry(Model):
    issuer: HexString(8)
    platform: HexString(8)
    ticket_type: HexString(2)


class QrPolicyFile(Model):
    """The `qr:` table as written; `parse_policy` turns it into an AcceptancePolicy."""

    account_types: list[HexString(2)] = [f"{t:02X}" for t in sorted(DEFAULT_ACCOUNT_TYPES)]
    local_issuers: list[HexString(8)] = []
    whitelist: list[WhiteListEntry] = []
    anti_passback_s: IntRange(0, MAX_ANTI_PASSBACK_S) = DEFAULT_ANTI_PASSBACK_S
    shanghai_uid_issuers: list[HexString(8)] = []
    local_time_quirk: list[HexString(8)] = []

    @model_validator(mode="after")
    def _rules(self) -> "QrPolicyFile":
        for name in ("account_types", "local_issuers", "shanghai_uid_issuers", "local_time_quirk"):
            values = getattr(self, name)
            for i, value in enumerate(values):
                if values.index(value) != i:
                    raise problem(f"{value} is listed twice", at=f"{name}[{i}]")
        if f"{REFUSED_ACCOUNT_TYPE:02X}" in self.account_types:
            i = self.account_types.index(f"{REFUSED_ACCOUNT_TYPE:02X}")
            raise problem("account type DD is always refused (Q8)", at=f"account_types[{i}]")
        seen: set[tuple[str, str]] = set()
        for i, e in enumerate(self.whitelist):
            if (e.issuer, e.platform) in seen:
                raise problem(f"issuer {e.issuer} with platform {e.platform} is listed twice", at=f"whitelist[{i}]")
            seen.add((e.issuer, e.platform))
        return self

    def build(self) -> AcceptancePolicy:
        def hexset(values: list[str]) -> frozenset[bytes]:
            return frozenset(bytes.fromhex(v) for v in values)
        return AcceptancePolicy(
            account_types=frozenset(int(t, 16) for t in self.account_types),
            local_issuers=hexset(self.local_issuers),
            whitelist=MappingProxyType({(bytes.fromhex(e.issuer), bytes.fromhex(e.platform)): e.ticket_type
                                        for e in self.whitelist}),
            anti_passback_s=self.anti_passback_s,
            shanghai_uid_issuers=hexset(self.shanghai_uid_issuers),
            local_time_quirk=hexset(self.local_time_quirk),
        )


def parse_policy(raw: Any, source: str, error: type[DocumentError] = DocumentError, at: str = "qr") -> AcceptancePolicy:
    """Check a profile's `qr:` table; every refusal names `<file>: qr.<field>: <reason>`."""
    try:
        return validate(QrPolicyFile, raw if raw is not None else {}, source, error).build()
    except DocumentError as exc:
        raise error(source, f"{at}.{exc.field}" if exc.field else at, exc.reason) from None

"""The MOT interoperable QR code byte by byte (mobile.md §1.1-1.3): payload, issuer certificate, root record.

Each layout is one `construct` Struct whose field order is the reference table's, so an offset in the
table is an offset here. The codec checks sizes only: a code with a wrong header byte, format or date
still decodes, because saying *which* check it fails is the verifier's job (§1.5), not the parser's.

Signed ranges (§1.4), as functions of the raw bytes:

* certificate signature: certificate bytes 6..52 (QR 9..55), root key of QR[8];
* issuer signature: QR 3..197+L, issuer key QR 23..55;
* user signature: QR 0..266+L, user key QR 158..190;
* root self-signature: record bytes 0..79.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from construct import Bytes, Int8ub, Int16ub, Int24ub, Int32ub, Struct, StreamError, Terminated, this

__all__ = [
    "CodecError", "Certificate", "QrCode", "Authorisation", "RootRecord", "CERT_SIZE", "ROOT_RECORD_SIZE",
    "MIN_LENGTH", "MAX_LENGTH", "MAX_CUSTOM", "HEAD_SIZE", "SIG_FORMAT", "CERT_HEADER", "ROOT_HEADER",
    "SERVICE_ID", "RID", "CERT_FORMAT", "SM2_ALGORITHMS", "KEY_LENGTH_COMPRESSED", "parse_head",
    "code_length", "mmyy", "printable_ascii",
]

CERT_SIZE = 117
ROOT_RECORD_SIZE = 144
HEAD_SIZE = 198            # bytes 0..197: everything before the custom field
MIN_LENGTH = 332           # L = 0
MAX_CUSTOM = 32            # Q4
MAX_LENGTH = MIN_LENGTH + MAX_CUSTOM
SIG_FORMAT = 0x15          # Q2: written before both signatures
CERT_HEADER = 0x24
ROOT_HEADER = 0x21
SERVICE_ID = bytes.fromhex("01010000")
RID = bytes.fromhex("A000000632")
CERT_FORMAT = 0x12         # Q7
SM2_ALGORITHMS = bytes.fromhex("0404")
KEY_LENGTH_COMPRESSED = 0x21
ROOT_ALGORITHM = 0x04
ROOT_PARAMETER = 0x11      # the one value seen on a real record
ROOT_KEY_LENGTH = 0x40


class CodecError(ValueError):
    """Bytes that cannot be a code, certificate or record of this layout: names the part and the field."""


# -- layouts ----------------------------------------------------------------------------------------

CERTIFICATE = Struct(
    "header" / Int8ub,              # 0   记录头 24
    "service" / Bytes(4),           # 1   服务标识 01010000
    "root_index" / Int8ub,          # 5   根CA公钥索引
    "format" / Int8ub,              # 6   证书格式 12
    "issuer_id" / Bytes(4),         # 7   发码机构标识
    "expiry" / Bytes(2),            # 11  证书失效日期 MMYY BCD
    "serial" / Bytes(3),            # 13  证书序列号
    "algorithms" / Bytes(2),        # 16  signature / encryption algorithm 04 04
    "curve" / Int8ub,               # 18  curve parameter 00
    "key_length" / Int8ub,          # 19  21
    "public_key" / Bytes(33),       # 20  issuer public key, compressed
    "signature" / Bytes(64),        # 53  root signature r‖s over 6..52
    Terminated,
)

HEAD = Struct(
    "version" / Int8ub,             # 0   二维码版本 80 / 81
    "length" / Int16ub,             # 1   二维码数据长度 = total − 3
    "certificate" / Bytes(CERT_SIZE),  # 3
    "pay_account" / Bytes(16),      # 120 支付账户号, printable ASCII
    "account_no" / Bytes(10),       # 136 用户账户号, BCD F-padded
    "issuer" / Bytes(4),            # 146 发码机构号
    "platform" / Bytes(4),          # 150 发码平台编号
    "account_type" / Int8ub,        # 154 卡账户类型
    "limit" / Int24ub,              # 155 单次消费金额上限, fen
    "user_key" / Bytes(33),         # 158 支付账户用户公钥, compressed
    "auth_expiry" / Int32ub,        # 191 授权过期时间, Unix s UTC
    "validity" / Int16ub,           # 195 二维码有效时间, s
    "custom_len" / Int8ub,          # 197 自定义域长度 L
)

CODE = Struct(
    "head" / HEAD,
    "custom" / Bytes(this.head.custom_len),   # 198     发码机构自定义域
    "issuer_sig_format" / Int8ub,             # 198+L   15
    "issuer_signature" / Bytes(64),           # 199+L   发码机构授权签名 r‖s
    "gen_time" / Int32ub,                     # 263+L   二维码生成时间, Unix s UTC
    "user_sig_format" / Int8ub,               # 267+L   15
    "user_signature" / Bytes(64),             # 268+L   用户账户私钥签名 r‖s
    Terminated,
)

ROOT_RECORD = Struct(
    "header" / Int8ub,              # 0   21
    "service" / Bytes(4),           # 1   01010000
    "rid" / Bytes(5),               # 5   A000000632
    "index" / Int8ub,               # 10
    "expiry" / Bytes(2),            # 11  MMYY BCD
    "algorithm" / Int8ub,           # 13  04
    "parameter" / Int8ub,           # 14  11 seen
    "key_length" / Int8ub,          # 15  40
    "public_key" / Bytes(64),       # 16  X‖Y
    "signature" / Bytes(64),        # 80  self-signature r‖s over 0..79
    Terminated,
)


def _fields(container: Any) -> dict[str, Any]:
    return {k: v for k, v in container.items() if not k.startswith("_")}


def _parse(struct: Struct, data: bytes, what: str) -> Any:
    try:
        return struct.parse(bytes(data))
    except StreamError:
        raise CodecError(f"{what}: {len(data)} bytes do not fit its layout") from None
    except Exception as exc:  # construct's TerminatedError and friends: trailing bytes
        raise CodecError(f"{what}: {len(data)} bytes do not fit its layout ({type(exc).__name__})") from None


def printable_ascii(data: bytes) -> bool:
    """Every byte is printable ASCII (0x20..0x7E), as 支付账户号 must be (§1.5 step 6)."""
    return all(0x20 <= b <= 0x7E for b in data)


def mmyy(raw: bytes) -> tuple[int, int]:
    """(year, month) of a BCD MMYY date (years 2000-2099); ValueError if it is not one."""
    text = raw.hex()
    if len(raw) != 2 or not text.isdigit() or not 1 <= int(text[:2]) <= 12:
        raise ValueError(f"{text.upper()} is not a BCD MMYY date")
    return 2000 + int(text[2:]), int(text[:2])


# -- certificate ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Certificate:
    """发码机构公钥证书, 117 bytes (§1.2): the issuer's key, signed by the root CA of `root_index`."""

    header: int
    service: bytes
    root_index: int
    format: int
    issuer_id: bytes
    expiry: bytes
    serial: bytes
    algorithms: bytes
    curve: int
    key_length: int
    public_key: bytes
    signature: bytes

    @classmethod
    def parse(cls, data: bytes) -> "Certificate":
        return cls(**_fields(_parse(CERTIFICATE, data, "certificate")))

    def to_bytes(self) -> bytes:
        return CERTIFICATE.build(dataclasses.asdict(self))

    @property
    def signed_part(self) -> bytes:
        """Certificate bytes 6..52 (QR 9..55), what the root key signs."""
        return self.to_bytes()[6:53]

    @property
    def expiry_month(self) -> tuple[int, int]:
        return mmyy(self.expiry)

    @classmethod
    def unsigned(cls, root_index: int, issuer_id: bytes, expiry: bytes, serial: bytes, public_key: bytes) -> "Certificate":
        """A certificate with the fixed values of Q7 and an empty signature (the root CA signs it next)."""
        return cls(CERT_HEADER, SERVICE_ID, root_index, CERT_FORMAT, issuer_id, expiry, serial, SM2_ALGORITHMS, 0,
                   KEY_LENGTH_COMPRESSED, public_key, bytes(64))


# -- payload ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Authorisation:
    """What the code platform hands the phone: bytes 0..262+L, signed by the issuer (§1.1, last line).

    `length` is the whole code's 二维码数据长度 (total − 3), written by the platform before it signs.
    """

    version: int
    length: int
    certificate: bytes
    pay_account: bytes
    account_no: bytes
    issuer: bytes
    platform: bytes
    account_type: int
    limit: int
    user_key: bytes
    auth_expiry: int
    validity: int
    custom: bytes
    issuer_sig_format: int = SIG_FORMAT
    issuer_signature: bytes = bytes(64)

    def _head(self) -> dict[str, Any]:
        return {"version": self.version, "length": self.length, "certificate": self.certificate,
                "pay_account": self.pay_account, "account_no": self.account_no, "issuer": self.issuer,
                "platform": self.platform, "account_type": self.account_type, "limit": self.limit,
                "user_key": self.user_key, "auth_expiry": self.auth_expiry, "validity": self.validity,
                "custom_len": len(self.custom)}

    def to_bytes(self) -> bytes:
        """Bytes 0..262+L."""
        return (HEAD.build(self._head()) + self.custom + bytes([self.issuer_sig_format])
                + self.issuer_signature)

    @property
    def issuer_signed_part(self) -> bytes:
        """QR 3..197+L, what the issuer key signs."""
        return self.to_bytes()[3:HEAD_SIZE + len(self.custom)]

    @classmethod
    def parse(cls, data: bytes) -> "Authorisation":
        if len(data) < HEAD_SIZE:
            raise CodecError(f"authorisation: {len(data)} bytes, shorter than the {HEAD_SIZE}-byte head")
        head = _fields(_parse(HEAD, data[:HEAD_SIZE], "authorisation"))
        n = head.pop("custom_len")
        if len(data) != HEAD_SIZE + n + 65:
            raise CodecError(f"authorisation: {len(data)} bytes, expected {HEAD_SIZE + n + 65} for L = {n}")
        return cls(**head, custom=bytes(data[HEAD_SIZE:HEAD_SIZE + n]), issuer_sig_format=data[HEAD_SIZE + n],
                   issuer_signature=bytes(data[HEAD_SIZE + n + 1:]))


@dataclass(frozen=True)
class QrCode:
    """A whole code: the authorisation, then what the phone adds at each display (§1.1)."""

    authorisation: Authorisation
    gen_time: int
    user_sig_format: int = SIG_FORMAT
    user_signature: bytes = bytes(64)

    @classmethod
    def parse(cls, data: bytes) -> "QrCode":
        """Decode a whole code; CodecError when the bytes do not fit 332 + L (L from byte 197)."""
        c = _parse(CODE, data, "code")
        head = _fields(c.head)
        head.pop("custom_len")
        auth = Authorisation(**head, custom=c.custom, issuer_sig_format=c.issuer_sig_format,
                             issuer_signature=c.issuer_signature)
        return cls(auth, c.gen_time, c.user_sig_format, c.user_signature)

    def to_bytes(self) -> bytes:
        return (self.authorisation.to_bytes() + self.gen_time.to_bytes(4, "big")
                + bytes([self.user_sig_format]) + self.user_signature)

    @property
    def user_signed_part(self) -> bytes:
        """QR 0..266+L, what the user key signs."""
        return self.to_bytes()[:MIN_LENGTH - 65 + len(self.authorisation.custom)]

    def fields(self) -> dict[str, Any]:
        """The decoded fields for people and JSON: hex upper case, numbers as numbers."""
        a = self.authorisation
        cert = Certificate.parse(a.certificate)
        return {
            "version": f"{a.version:02X}", "length": a.length,
            "certificate": {"root_index": f"{cert.root_index:02X}", "format": f"{cert.format:02X}",
                            "issuer_id": cert.issuer_id.hex().upper(), "expiry": cert.expiry.hex().upper(),
                            "serial": cert.serial.hex().upper(), "public_key": cert.public_key.hex().upper()},
            "pay_account": a.pay_account.decode("latin-1"), "account_no": a.account_no.hex().upper(),
            "issuer": a.issuer.hex().upper(), "platform": a.platform.hex().upper(),
            "account_type": f"{a.account_type:02X}", "limit": a.limit, "user_key": a.user_key.hex().upper(),
            "auth_expiry": a.auth_expiry, "validity": a.validity, "custom": a.custom.hex().upper(),
            "gen_time": self.gen_time,
        }


def code_length(custom_len: int) -> int:
    """Total bytes of a code with an L-byte custom field: 332 + L."""
    return MIN_LENGTH + custom_len


def parse_head(data: bytes) -> dict[str, Any]:
    """The fixed bytes 0..197 of a code, for the checks that run before L is known to fit (§1.5 steps 2-6)."""
    return _fields(_parse(HEAD, data[:HEAD_SIZE], "code head"))


# -- root record ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RootRecord:
    """根CA公钥 record, 144 bytes (§1.3): one root key of the store, self-signed."""

    header: int
    service: bytes
    rid: bytes
    index: int
    expiry: bytes
    algorithm: int
    parameter: int
    key_length: int
    public_key: bytes
    signature: bytes

    @classmethod
    def parse(cls, data: bytes) -> "RootRecord":
        return cls(**_fields(_parse(ROOT_RECORD, data, "root record")))

    def to_bytes(self) -> bytes:
        return ROOT_RECORD.build(dataclasses.asdict(self))

    @property
    def signed_part(self) -> bytes:
        """Record bytes 0..79, what the record's own key signs."""
        return self.to_bytes()[:80]

    @property
    def expiry_month(self) -> tuple[int, int]:
        return mmyy(self.expiry)

    @classmethod
    def unsigned(cls, index: int, expiry: bytes, public_key_xy: bytes) -> "RootRecord":
        return cls(ROOT_HEADER, SERVICE_ID, RID, index, expiry, ROOT_ALGORITHM, ROOT_PARAMETER, ROOT_KEY_LENGTH,
                   public_key_xy, bytes(64))

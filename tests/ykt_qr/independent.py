"""An independent MOT QR implementation for the tests, written from mobile.md §1 and GB/T 32918 alone.

It shares no code with ykt_qr: plain Python integers for the SM2 curve (affine points, Fermat inverses),
hashlib for SM3, and codes assembled byte by byte from the reference's offset table. Tests use it to
build codes (some with planted defects) that ykt_qr must accept or refuse for the right reason, and to
check the signatures ykt_qr's generator makes. It is slow and that is fine.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = P - 3
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
G = (0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
     0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0)
DEFAULT_ID = b"1234567812345678"


def sm3(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


def _add(p, q):
    if p is None:
        return q
    if q is None:
        return p
    if p[0] == q[0] and (p[1] + q[1]) % P == 0:
        return None
    if p == q:
        lam = (3 * p[0] * p[0] + A) * pow(2 * p[1], P - 2, P) % P
    else:
        lam = (q[1] - p[1]) * pow(q[0] - p[0], P - 2, P) % P
    x = (lam * lam - p[0] - q[0]) % P
    return x, (lam * (p[0] - x) - p[1]) % P


def mul(k: int, point=G):
    out = None
    while k:
        if k & 1:
            out = _add(out, point)
        point = _add(point, point)
        k >>= 1
    return out


def decompress(key: bytes):
    """02/03‖X → (x, y): y = (x³ + ax + b)^((p+1)/4) with the parity of the prefix (§1.4)."""
    x = int.from_bytes(key[1:], "big")
    y = pow((x ** 3 + A * x + B) % P, (P + 1) // 4, P)
    if (y * y - (x ** 3 + A * x + B)) % P:
        raise ValueError("not on the curve")
    if y & 1 != key[0] & 1:
        y = P - y
    return x, y


def compress(point) -> bytes:
    return bytes([2 + (point[1] & 1)]) + point[0].to_bytes(32, "big")


def z(point, uid: bytes = DEFAULT_ID) -> bytes:
    parts = [A, B, G[0], G[1], point[0], point[1]]
    return sm3((len(uid) * 8).to_bytes(2, "big") + uid + b"".join(v.to_bytes(32, "big") for v in parts))


def sign(d: int, message: bytes, k: int, uid: bytes = DEFAULT_ID) -> bytes:
    """GB/T 32918.2 §6.1 with a given k."""
    e = int.from_bytes(sm3(z(mul(d), uid) + message), "big")
    x1 = mul(k)[0]
    r = (e + x1) % N
    s = pow(1 + d, N - 2, N) * (k - r * d) % N
    assert r and r + k != N and s
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify(point, message: bytes, signature: bytes, uid: bytes = DEFAULT_ID) -> bool:
    """GB/T 32918.2 §7.1."""
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (1 <= r < N and 1 <= s < N) or (r + s) % N == 0:
        return False
    e = int.from_bytes(sm3(z(point, uid) + message), "big")
    x1 = _add(mul(s), mul((r + s) % N, point))[0]
    return (e + x1) % N == r


@dataclass
class Key:
    """A private scalar and its point; k for each signature counts up from a per-key start (tests only)."""

    d: int
    k: int = field(default=0)

    def __post_init__(self) -> None:
        self.point = mul(self.d)
        self.k = self.k or (self.d * 7919) % N

    def sign(self, message: bytes, uid: bytes = DEFAULT_ID) -> bytes:
        self.k = (self.k + 1) % N
        return sign(self.d, message, self.k, uid)

    @property
    def compressed(self) -> bytes:
        return compress(self.point)

    @property
    def xy(self) -> bytes:
        return self.point[0].to_bytes(32, "big") + self.point[1].to_bytes(32, "big")


# -- the layouts of §1.1-1.3, byte by byte ----------------------------------------------------------

def root_record(key: Key, index: int, expiry: str = "1249", sign_with: Key | None = None) -> bytes:
    body = (bytes.fromhex("21" "01010000" "A000000632") + bytes([index]) + bytes.fromhex(expiry)
            + bytes.fromhex("04" "11" "40") + key.xy)
    assert len(body) == 80
    return body + (sign_with or key).sign(body)


def certificate(root: Key, root_index: int, issuer: Key, issuer_id: bytes, expiry: str = "1239",
                serial: bytes = b"\x00\x00\x01", uid: bytes = DEFAULT_ID, header: int = 0x24, fmt: int = 0x12,
                algorithms: str = "0404", key_length: int = 0x21) -> bytes:
    signed = (bytes([fmt]) + issuer_id + bytes.fromhex(expiry) + serial + bytes.fromhex(algorithms) + b"\x00"
              + bytes([key_length]) + issuer.compressed)
    assert len(signed) == 47                                  # cert 6..52
    return bytes([header]) + bytes.fromhex("01010000") + bytes([root_index]) + signed + root.sign(signed, uid)


@dataclass
class CodeSpec:
    """Every field of a code (§1.1) with the values of a good one; tests change what they plant."""

    cert: bytes
    issuer_key: Key
    user_key: Key
    version: int = 0x80
    pay_account: bytes = b"IND0000000000001"
    account_no: bytes = bytes.fromhex("90010000000000000001")
    issuer: bytes = bytes.fromhex("F0000001")
    platform: bytes = bytes.fromhex("F0000002")
    account_type: int = 0x01
    limit: int = 2000
    auth_expiry: int = 0
    validity: int = 60
    custom: bytes = b""
    custom_len: int | None = None        # None: len(custom)
    gen_time: int = 0
    issuer_format: int = 0x15
    user_format: int = 0x15
    issuer_uid: bytes = DEFAULT_ID
    user_uid: bytes = DEFAULT_ID
    length: int | None = None            # None: total − 3
    user_key_bytes: bytes | None = None  # None: the user key's compressed point


def build_code(spec: CodeSpec) -> bytes:
    """Assemble and sign a code as §1.1 lays it out: platform part, then the phone's part."""
    custom_len = len(spec.custom) if spec.custom_len is None else spec.custom_len
    total = 332 + len(spec.custom)
    length = total - 3 if spec.length is None else spec.length
    head = (bytes([spec.version]) + length.to_bytes(2, "big") + spec.cert + spec.pay_account + spec.account_no
            + spec.issuer + spec.platform + bytes([spec.account_type]) + spec.limit.to_bytes(3, "big")
            + (spec.user_key_bytes or spec.user_key.compressed) + spec.auth_expiry.to_bytes(4, "big")
            + spec.validity.to_bytes(2, "big") + bytes([custom_len]) + spec.custom)
    assert len(head) == 198 + len(spec.custom)
    platform_part = head + bytes([spec.issuer_format]) + spec.issuer_key.sign(head[3:], spec.issuer_uid)
    signed_by_user = platform_part + spec.gen_time.to_bytes(4, "big")         # QR 0..266+L
    code = signed_by_user + bytes([spec.user_format]) + spec.user_key.sign(signed_by_user, spec.user_uid)
    assert len(code) == total
    return code

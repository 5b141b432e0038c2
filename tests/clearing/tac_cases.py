"""What `keysets` says each generated record's TAC is, for the batch tests of both algorithms."""
from __future__ import annotations

from keysets import Algorithm, KeySet, load_tac, purchase_tac

NUMBERS = [f"031048703{7 * c + 1:011d}" for c in range(6)]


def tacs_and_verdicts(ks: KeySet, issuer: str, txs: list[dict], flipped: list[int | None]) -> tuple[list[str], list[bool]]:
    """Each record's TAC from `keysets.purchase_tac`/`load_tac` under its own card's DTK, with bit
    `flipped[i]` inverted when not None (a forgery), and whether the batch must accept it: not a forged
    one, nor a load whose reported balance no card could have MACed (out of 4 bytes)."""
    alg: Algorithm = ks.algorithm
    tacs, want = [], []
    for t, bit in zip(txs, flipped):
        dtk = ks.card_keys(bytes.fromhex(issuer), bytes.fromhex(NUMBERS[t["card"]][4:])).entry("tac").key.value
        reported = t["after"] + t["overdraft"]
        if t["load"] and not 0 <= reported <= 0xFFFFFFFF:
            tac, ok = "00000000", False
        elif t["load"]:
            tac = load_tac(alg, dtk, reported, t["counter"], t["amount"], bytes.fromhex(t["terminal"]),
                           bytes.fromhex(t["when"])).hex().upper()
            ok = True
        else:
            tac = purchase_tac(alg, dtk, t["amount"], t["type"], bytes.fromhex(t["terminal"]), t["seq"],
                               bytes.fromhex(t["when"])).hex().upper()
            ok = True
        if bit is not None:
            tac, ok = f"{int(tac, 16) ^ 1 << bit:08X}", False
        tacs.append(tac)
        want.append(ok)
    return tacs, want

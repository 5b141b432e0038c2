"""`ykt …` in a process whose image cards lose power once: after their first commit is saved, before its
answer leaves (run as: python tests/tools/torn_tap.py terminal tap …).

The card's own anti-tearing mechanism (ykt_card.card.state.FaultInjector) makes the cut; everything else
is the real command line. A `ykt terminal tap` run this way is a torn tap: DEBIT was committed and saved,
the terminal saw the card leave, and its grey record waits for the card's next tap.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ykt_card.card.cos import TUnionCardOS  # noqa: E402
from ykt_card.card.state import FaultInjector, PowerLoss  # noqa: E402
from ykt_card.host import readers  # noqa: E402


class CutBeforeTheAnswer(FaultInjector):
    """Cuts the power at the first commit's response cut point: committed and saved, never answered."""

    def checkpoint(self, label: str) -> None:
        if label == "response" and not self.fired:
            self.fired = True
            raise PowerLoss("power cut after the commit, before its answer")
        super().checkpoint(label)


def torn_card(*args, **kwargs) -> TUnionCardOS:
    return TUnionCardOS(*args, fault=CutBeforeTheAnswer(), **kwargs)


if __name__ == "__main__":
    readers.TUnionCardOS = torn_card  # type: ignore[assignment]
    from tools.cli import main
    main(sys.argv[1:])

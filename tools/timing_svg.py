"""The tap on a time axis as SVG: reader, card, PSAM and host lanes, the budget line, each exchange labelled.

Drawn by matplotlib's SVG backend without pyplot (as clearing/charts.py): text kept as text (so a reader, and a
test, can find every label), ids salted with a constant and no date in the metadata, so the same report gives the
same bytes.
"""
from __future__ import annotations

import io

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ykt_card.timing.tap import TapTiming

__all__ = ["tap_svg"]

_STYLE = {"svg.hashsalt": "ykt-tap-timing", "svg.fonttype": "none", "font.family": "DejaVu Sans",
          "font.size": 7, "axes.spines.top": False, "axes.spines.right": False}
_LANES = ("reader", "card", "psam", "host")
_LANE_NAMES = {"reader": "reader (PCD)", "card": "card (PICC)", "psam": "PSAM (T=0)", "host": "host"}
_COLOURS = {"frame": "#2f6f9f", "process": "#e69138", "wait": "#c9c9c9", "host": "#6aa84f"}


def tap_svg(report: TapTiming, budget_ms: float, title: str) -> str:
    """The SVG document of one modelled tap."""
    ms = 1 / 1000
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(12.0, 3.2 + 0.12 * len(report.apdus)))
        ax = fig.add_subplot()
        rows = {lane: i for i, lane in enumerate(reversed(_LANES))}
        for segment in report.segments:
            if segment.kind == "wait":
                continue
            y = rows[segment.lane]
            ax.broken_barh([(segment.start_us * ms, max(segment.duration_us * ms, 0.02))], (y - 0.3, 0.6),
                           facecolors=_COLOURS[segment.kind], edgecolor="none")
        for number, apdu in enumerate(a for a in report.apdus if a.counted):  # label each exchange once
            lane_y = rows["card" if apdu.lane == "card" else "psam"]
            offset = 0.42 + 0.16 * (number % 3)
            ax.annotate(f"{apdu.index} {apdu.name}", xy=(apdu.start_us * ms, lane_y + 0.3),
                        xytext=(apdu.start_us * ms, lane_y + offset), fontsize=6, rotation=0,
                        arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "#555555"})
        ax.annotate("activation", xy=(0, rows["reader"] + 0.3), xytext=(0, rows["reader"] + 0.45), fontsize=6)
        ax.axvline(budget_ms, color="#cc0000", lw=1.0, ls="--")
        ax.text(budget_ms, len(_LANES) - 0.2, f" budget {budget_ms:g} ms", color="#cc0000", fontsize=7)
        ax.axvline(report.total_us * ms, color="#000000", lw=0.8)
        ax.text(report.total_us * ms, -0.9, f" total {report.total_us * ms:.1f} ms", fontsize=7)
        ax.legend(handles=[Patch(color=_COLOURS[k], label=n) for k, n in
                           (("frame", "frame / link"), ("process", "card or PSAM working"), ("host", "host"))],
                  loc="upper right", fontsize=6, frameon=False)
        ax.set_yticks(list(rows.values()), [_LANE_NAMES[lane] for lane in rows])
        ax.set_ylim(-1.0, len(_LANES) + 0.2)
        ax.set_xlim(0, max(budget_ms, report.total_us * ms) * 1.05)
        ax.set_xlabel("ms from the start of activation")
        ax.set_title(title, loc="left")
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return buf.getvalue()

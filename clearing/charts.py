"""The monthly return's two charts, drawn by matplotlib as inline SVG that repeats byte for byte.

No pyplot (no global figure state, no display backend): a `Figure` rendered by the SVG backend. Fonts are
matplotlib's own DejaVu Sans drawn as paths (the page needs no font), element ids are salted with a
constant (``svg.hashsalt``) and the metadata carries no date, so the same data gives the same bytes. Chart
labels are English: DejaVu Sans has no CJK glyphs; the tables beside them carry the Chinese headings.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import StrMethodFormatter

__all__ = ["issuance_chart", "coverage_chart"]

_STYLE = {"svg.hashsalt": "ykt-monthly-return", "svg.fonttype": "path", "font.family": "DejaVu Sans",
          "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}
_COLOURS = {"physical": "#2f6f9f", "virtual": "#6aa84f", "qr": "#e69138", "all": "#c9c9c9", "covered": "#2f6f9f"}


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]                        # inline: no XML declaration or DOCTYPE


def issuance_chart(issuance: Mapping[str, Mapping[str, int | None]], issued: int, target: int | None,
                   target_year: int | None) -> str:
    """Cards issued, stacked by medium, against the city's 附表1 target."""
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(7.0, 1.9))
        ax = fig.add_subplot()
        left = 0
        for medium, label in (("physical", "physical"), ("virtual", "virtual"), ("qr", "QR")):
            value = int(issuance[medium]["issued"] or 0)
            ax.barh([0], [value], left=left, color=_COLOURS[medium], label=f"{label} {value:,}")
            left += value
        if target:
            ax.axvline(target, color="#cc0000", linewidth=1.5, label=f"{target_year} target {target:,}")
            share = f" = {100 * issued / target:.2f}% of the target"
        else:
            share = ""
        ax.set_yticks([])
        ax.set_xlim(0, max(issued, target or 0, 1) * 1.08)
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.set_xlabel(f"interoperable cards issued (cumulative): {issued:,}{share}")
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False)
        return _svg(fig)


def coverage_chart(coverage: Mapping[str, Mapping[str, tuple[int, int, int]]],
                   labels: Sequence[tuple[str, str]]) -> str:
    """Per mode, the share of vehicles or gates and of terminals that accept the card, against 100%.

    `labels` are the return's rows in order, (coverage key, label): the return owns its rows.
    """
    rows = [(label, coverage[key]) for key, label in labels if coverage[key]["all"][1]]
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(7.0, 0.5 + 0.45 * max(1, len(rows))))
        ax = fig.add_subplot()
        labels = [label for label, _ in rows]
        y = list(range(len(rows)))
        vehicles = [100 * c["covered"][0] / c["all"][0] if c["all"][0] else 0 for _, c in rows]
        terminals = [100 * c["covered"][1] / c["all"][1] for _, c in rows]
        ax.barh([v - 0.2 for v in y], vehicles, height=0.38, color=_COLOURS["covered"], label="vehicles / gates")
        ax.barh([v + 0.2 for v in y], terminals, height=0.38, color=_COLOURS["virtual"], label="terminals")
        ax.axvline(100, color="#cc0000", linewidth=1.5, label="plan: all covered")
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_xlim(0, 105)
        ax.set_xlabel("covered by the interoperable card (%)")
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
        if not rows:
            ax.text(50, 0, "no terminals in the registry for this city", ha="center", va="center")
        return _svg(fig)

"""The reports a lab files: JUnit XML, report.json and one self-contained HTML page, into one folder.

- `junit.xml`: one testsuite, one testcase per case (classname = the suite, name = the case ID and
  title); `fail` is a <failure>, `inconclusive` an <error>, `not applicable` <skipped>; the message is
  the first reason, the body all of them.
- `report.json`: suite version, the run (options, enough to `rerun`), DUT identity, environment,
  summary, per-case verdict with reasons and the annotated exchange, the coverage matrix.
- `report.html`: the same for people; no script, no network, CSS inline (jinja2 template).

Everything is written from the RunResult alone, in a fixed order, so a run under --seed and --clock
writes byte for byte the same files.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ykt_files.atomic import write_text_atomic

from .results import RunResult

__all__ = ["write_reports", "REPORT_JSON", "JUNIT_XML", "REPORT_HTML", "read_report"]

REPORT_JSON = "report.json"
JUNIT_XML = "junit.xml"
REPORT_HTML = "report.html"
TEMPLATES = Path(__file__).parent / "templates"


def write_reports(result: RunResult, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    doc = result.to_json()
    paths = {"json": folder / REPORT_JSON, "junit": folder / JUNIT_XML, "html": folder / REPORT_HTML}
    write_text_atomic(paths["json"], json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    write_text_atomic(paths["junit"], junit(doc))
    write_text_atomic(paths["html"], html(doc))
    return paths


def read_report(folder: Path) -> dict[str, Any]:
    path = folder / REPORT_JSON
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no report here (run `ykt conformance run --report {folder}` first)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON (line {exc.lineno}): truncated or corrupt") from None
    if not isinstance(doc, dict) or doc.get("format") != 1 or "run" not in doc:
        raise ValueError(f"{path}: not a conformance report (format 1)")
    return doc


def junit(doc: dict[str, Any]) -> str:
    cases = doc["cases"]
    summary = doc["summary"]
    suite = ET.Element("testsuite", {
        "name": f"ykt conformance {doc['suite']} suite {doc['suite_version']}",
        "tests": str(len(cases)), "failures": str(summary["fail"]), "errors": str(summary["inconclusive"]),
        "skipped": str(summary["not applicable"]),
    })
    props = ET.SubElement(suite, "properties")
    for key in ("spec", "card_no", "issuer_id", "answer_to_reset"):
        if key in doc["dut"]:
            ET.SubElement(props, "property", {"name": f"dut.{key}", "value": str(doc["dut"][key])})
    for c in cases:
        attrs = {"classname": f"conformance.{doc['suite']}", "name": f"{c['id']} {c['title']}"}
        if "duration_s" in c:
            attrs["time"] = f"{c['duration_s']:.4f}"
        tc = ET.SubElement(suite, "testcase", attrs)
        reasons = c["reasons"]
        first = reasons[0] if reasons else c["verdict"]
        if c["verdict"] == "fail":
            ET.SubElement(tc, "failure", {"message": first, "type": "fail"}).text = "\n".join(reasons)
        elif c["verdict"] == "inconclusive":
            ET.SubElement(tc, "error", {"message": first, "type": "inconclusive"}).text = "\n".join(reasons)
        elif c["verdict"] == "not applicable":
            ET.SubElement(tc, "skipped", {"message": f"not applicable: {first}"})
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def html(doc: dict[str, Any]) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2", "html"]),
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env.get_template("report.html.j2").render(doc=doc, chart=_summary_bar(doc["summary"]))


_COLOURS = {"pass": "#2e7d32", "fail": "#c62828", "inconclusive": "#ef6c00", "not applicable": "#9e9e9e"}


def _summary_bar(summary: dict[str, int]) -> list[dict[str, Any]]:
    """Segments of the summary bar (inline SVG in the template): verdict, count, x, width in percent."""
    total = sum(summary.values()) or 1
    out, x = [], 0.0
    for verdict, colour in _COLOURS.items():
        n = summary.get(verdict, 0)
        w = 100.0 * n / total
        out.append({"verdict": verdict, "count": n, "x": round(x, 3), "width": round(w, 3), "colour": colour})
        x += w
    return out

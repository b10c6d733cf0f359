"""The validation report: JSON for machines, one self-contained HTML page for people, a message on breach."""

from __future__ import annotations

import html
import json
from pathlib import Path

from .. import atomic

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
.pass { color: #1a7f37; } .fail { color: #cf222e; font-weight: bold; }
table { border-collapse: collapse; width: 100%; } td, th { border: 1px solid #ddd; padding: 4px 8px; text-align: left; }
tr.failed { background: #ffebe9; } code { font-size: 12px; }
"""


def failure_lines(results: list[dict]) -> list[str]:
    """One line per failed check: table, what should hold, and what was seen."""
    lines = []
    for r in results:
        if r["success"]:
            continue
        if r["error"]:
            seen = f"error: {r['error']}"
        elif r["unexpected_count"] is not None:
            seen = f"{r['unexpected_count']} of {r['rows']} rows fail, e.g. {json.dumps(r['examples'])}"
        else:
            seen = f"observed {json.dumps(r['observed'])}"
        lines.append(f"{r['table']}: {r['check']} [{r['expectation']}]: {seen}")
    return lines


def render_html(summary: dict) -> str:
    status = "passed" if summary["success"] else "FAILED"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Data validation</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Data validation <span class='{'pass' if summary['success'] else 'fail'}'>{status}</span></h1>",
        f"<p>{summary['passed']} of {summary['checks']} checks passed on",
        f"<code>{html.escape(summary['data_root'])}</code> (Great Expectations {summary['great_expectations']}).</p>",
    ]
    if failures := failure_lines(summary["results"]):
        parts.append("<h2>Failures</h2><ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in failures) + "</ul>")
    tables: dict[str, list[dict]] = {}
    for r in summary["results"]:
        tables.setdefault(r["table"], []).append(r)
    for name, results in tables.items():
        parts.append(f"<h2>{html.escape(name)} <small>({results[0]['rows']} rows)</small></h2>")
        parts.append("<table><tr><th></th><th>check</th><th>expectation</th><th>seen</th></tr>")
        for r in results:
            mark = "<span class='pass'>pass</span>" if r["success"] else "<span class='fail'>FAIL</span>"
            seen = r["observed"] if r["unexpected_count"] is None else f"{r['unexpected_count']} unexpected"
            if r["examples"]:
                seen = f"{seen}; e.g. {json.dumps(r['examples'])}"
            parts.append(
                f"<tr class='{'' if r['success'] else 'failed'}'><td>{mark}</td><td>{html.escape(r['check'])}</td>"
                f"<td><code>{html.escape(r['expectation'])} {html.escape(json.dumps(r['kwargs']))}</code></td>"
                f"<td>{html.escape(str(r['error'] or seen))}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(summary: dict, report_dir: str) -> dict[str, str]:
    """validation.html, then validation.json (the step's result) last, each written whole."""
    folder = Path(report_dir)
    paths = {"json": str(folder / "validation.json"), "html": str(folder / "validation.html")}
    atomic.unpublish(paths["json"])  # until this run's report is complete
    atomic.write_text(paths["html"], render_html(summary))
    atomic.write_text(paths["json"], json.dumps(summary, indent=2) + "\n")
    return paths

"""The validation report: JSON for machines, the Data Docs page Great Expectations rendered for people, a
message on breach."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .. import atomic
from .checks import RUN_TIME

# What a Data Docs page holds that changes from run to run over the same data (GX 1.24): the time the batch
# was loaded (its "ge_load_time" batch marker) and a cache-busting `?d=<now>` on the logo's address, both
# written like 20250101T120000.123456Z, and a uuid4 in the id that ties each collapsible block to its toggle.
LOAD_TIME = re.compile(r"(>ge_load_time<.{0,400}?>)\d{8}T\d{6}\.\d{6}Z(?=<)", re.DOTALL)
LOGO_TIME = re.compile(r"(\?d=)\d{8}T\d{6}\.\d{6}Z")
BLOCK_ID = re.compile(r"(-collapse-body-)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


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


def stable_page(page: str) -> str:
    """The Data Docs page with its per-run values replaced: times by the run's fixed time, each block id by
    its order of appearance (ids stay unique and each toggle keeps its block)."""
    fixed = RUN_TIME.strftime("%Y%m%dT%H%M%S.%fZ")
    page = LOGO_TIME.sub(lambda m: m[1] + fixed, LOAD_TIME.sub(lambda m: m[1] + fixed, page))
    numbers: dict[str, int] = {}
    return BLOCK_ID.sub(lambda m: f"{m[1]}{numbers.setdefault(m[0], len(numbers))}", page)


def write_report(summary: dict, page: str, report_dir: str) -> dict[str, str]:
    """validation.html (the Data Docs page of the validation), then validation.json (the step's result)
    last, each written whole.

    The page is a DVC stage output, so it must be byte-identical when the data and the settings are: the
    run's name and time are fixed (checks.RUN_NAME, RUN_TIME), and the values GX writes afresh on every
    run are replaced (`stable_page`). Only this page is kept; the rest of the Data Docs site (index, suite
    page, static files, each carrying a fresh timestamp) is built in a temporary folder and dropped."""
    folder = Path(report_dir)
    paths = {"json": str(folder / "validation.json"), "html": str(folder / "validation.html")}
    atomic.unpublish(paths["json"])  # until this run's report is complete
    atomic.write_text(paths["html"], stable_page(page))
    atomic.write_text(paths["json"], json.dumps(summary, indent=2) + "\n")
    return paths

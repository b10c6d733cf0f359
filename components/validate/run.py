"""The validate step's run: every check over the ingested tables, then the report."""

from __future__ import annotations

import posixpath
import time
from dataclasses import asdict
from importlib import metadata

from .checks import build_tables, run_checks
from .config import ValidateConfig
from .report import write_report


def run_validate(*, config: ValidateConfig) -> dict:
    """Run every check; write validation.json and validation.html (the Data Docs page); return the summary
    ("success" says if all held)."""
    started = time.perf_counter()
    results, page = run_checks(build_tables(config))
    passed = sum(r["success"] for r in results)
    # paths relative to the report's folder: the report is a DVC output, the same bytes in any checkout
    where = {"data_root": posixpath.relpath(config.data_root, config.report_dir), "report_dir": "."}
    summary = {
        "success": passed == len(results),
        "checks": len(results),
        "passed": passed,
        "failed": len(results) - passed,
        "data_root": where["data_root"],
        "great_expectations": metadata.version("great_expectations"),
        "config": {**asdict(config), **where},
        "results": results,
    }
    # The report is a function of the data and the settings (no timing in it), so DVC sees no change on a re-run.
    summary["reports"] = write_report(summary, page, config.report_dir)
    return {**summary, "seconds": round(time.perf_counter() - started, 3)}

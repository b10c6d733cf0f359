"""Great Expectations suites over the ingested tables, run through a Checkpoint in an in-memory (ephemeral) context.

Every check carries `why`: the sentence that the report and the failure message show.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from model.data import SPLITS, records_dir

from .config import ValidateConfig
from .tables import RECORD_COLUMNS, captions_of, load_counts, load_embeddings, load_records

EXAMPLES = 5  # failing rows shown per check
TABLE = "table"  # the column of the validated frame that names each row's table
# The run's identity in the Data Docs page: fixed, so the page is a function of the data and the settings.
RUN_NAME, RUN_TIME = "validate", dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Check:
    kind: str  # a great_expectations.expectations class
    why: str
    kwargs: dict = field(default_factory=dict)


@dataclass
class Table:
    name: str  # e.g. "records coco/train"
    frame: pd.DataFrame
    index: list[str]  # columns that name a failing row in the report
    checks: list[Check]


# Check builders: short names keep the suites below readable.


def _gx(kind: str, why: str, **kwargs) -> Check:
    return Check(kind, why, kwargs)


def not_null(column: str) -> Check:
    return _gx("ExpectColumnValuesToNotBeNull", f"no null {column}", column=column)


def unique(column: str, why: str) -> Check:
    return _gx("ExpectColumnValuesToBeUnique", why, column=column)


def in_set(column: str, values: list, why: str) -> Check:
    return _gx("ExpectColumnValuesToBeInSet", why, column=column, value_set=values)


def between(column: str, low, high, why: str) -> Check:
    return _gx("ExpectColumnValuesToBeBetween", why, column=column, min_value=low, max_value=high)


def rows_at_least(n: int, why: str) -> Check:
    return _gx("ExpectTableRowCountToBeBetween", why, min_value=n)


def rows_equal(n: int, why: str) -> Check:
    return _gx("ExpectTableRowCountToEqual", why, value=n)


def files_table(name: str, files: pd.DataFrame, contract: str) -> Table:
    checks = [rows_at_least(1, "at least one Parquet shard"), in_set("schema_problem", [""], f"{contract} schema")]
    return Table(name, files, ["file"], checks)


# ---------------------------------------------------------------------------------------------
# Suites.


def record_tables(config: ValidateConfig, source: str, counts: dict | None) -> tuple[list[Table], dict]:
    """Records, files and captions tables per split of `source`; also the captions frames, for embeddings."""
    image = (counts or {}).get("image", {})
    size, min_side = config.image_size or image.get("size"), image.get("min_side", 1)
    low, high = config.captions_per_image[source]
    chars = (config.min_caption_chars, config.max_caption_chars)
    splits = sorted((counts or {}).get("splits", {})) or [
        split for split in SPLITS if Path(records_dir(config.data_root, source, split)).is_dir()
    ]
    tables, ids, captions_by_split = [], [], {}
    for split in splits:
        records, files = load_records(config.data_root, source, split)
        minimum = config.split_min_images.get(split, 1)
        checks = [
            rows_at_least(minimum, f"split size: at least {minimum} images"),
            *[not_null(column) for column in RECORD_COLUMNS],
            unique("image_id", "unique image ids"),
            unique("file_name", "each image file at most once"),
            in_set("source", [source], f"source is {source}"),
            in_set("split", [split], f"split is {split}"),
            between("n_captions", low, high, f"{low} to {high} captions per image"),
            between("original_width", min_side, None, f"originals at least {min_side} px wide"),
            between("original_height", min_side, None, f"originals at least {min_side} px high"),
        ]
        if size is None:
            checks.append(in_set("source", [], "an image size to check: none in counts/ nor in the options"))
        else:
            checks += [between(c, size, size, f"{c} is {size}") for c in ("width", "height", "png_width", "png_height")]
        if counts and split in counts["splits"]:
            written = counts["splits"][split]["images"]["written"]
            checks.append(rows_equal(written, f"as many records as ingest counted written ({written})"))
        tables.append(Table(f"records {source}/{split}", records, ["image_id"], checks))
        tables.append(files_table(f"record files {source}/{split}", files, "the record contract's"))
        captions = captions_of(records)
        captions_by_split[split] = captions
        caption_checks = [
            not_null("caption"),
            between("chars", *chars, f"captions of {chars[0]} to {chars[1]} characters"),
        ]
        tables.append(Table(f"captions {source}/{split}", captions, ["image_id", "caption_index"], caption_checks))
        ids.append(records[["image_id"]].assign(split=split))
    all_ids = pd.concat(ids, ignore_index=True) if ids else pd.DataFrame(columns=["image_id", "split"])
    tables.append(
        Table(f"image ids {source}", all_ids, ["image_id", "split"], [unique("image_id", "one split per image")])
    )
    return tables, captions_by_split


def counts_table(config: ValidateConfig, source: str) -> tuple[Table, dict | None]:
    counts, frame = load_counts(config.data_root, source)
    limit = config.max_dead_letter_fraction
    checks = [
        rows_at_least(1, f"ingest counts exist (counts/{source}.json)"),
        between("unaccounted", 0, 0, "every input is written or rejected (in = written + rejected)"),
        between("rejected_fraction", 0.0, limit, f"dead-letter fraction at most {limit:g}"),
    ]
    return Table(f"ingest counts {source}", frame, ["key"], checks), counts


def embedding_tables(config: ValidateConfig, source: str, captions_by_split: dict[str, pd.DataFrame]) -> list[Table]:
    """Every embeddings/<encoder>-L<n>/<source> folder found; a source in require_embeddings must have one."""
    folders = sorted(Path(config.data_root, "embeddings").glob(f"*/{source}"))
    tables = []
    if source in config.require_embeddings:
        found = pd.DataFrame({"folder": [str(f.relative_to(config.data_root)) for f in folders]}, columns=["folder"])
        tables.append(Table(f"embeddings {source}", found, ["folder"], [rows_at_least(1, "caption embeddings exist")]))
    for folder in folders:
        about = folder.parent / "encoder.json"
        encoder = json.loads(about.read_text()) if about.is_file() else {}  # missing: every size check fails
        n, dim = encoder.get("max_length", 0), encoder.get("dim", 0)
        for split, captions in captions_by_split.items():
            name = f"{folder.parent.name}/{source}/{split}"
            embeddings, files = load_embeddings(folder / split, captions)
            checks = [
                rows_equal(len(captions), f"one embedding per caption ({len(captions)})"),
                _gx(
                    "ExpectCompoundColumnsToBeUnique",
                    "one per caption index",
                    column_list=["image_id", "caption_index"],
                ),
                in_set("matches_record", [True], "the caption is the record's caption at that index"),
                between(
                    "token_bytes", n * dim * 2, n * dim * 2, f"token embeddings are float16 {n}x{dim} (encoder.json)"
                ),
                between("mask_bytes", n, n, f"masks have {n} entries"),
                between("sentence_bytes", dim * 4, dim * 4, f"sentence embeddings are float32 x{dim}"),
                between("valid_tokens", 1, n, f"1 to {n} valid tokens"),
                in_set("finite", [True], "all values finite"),
            ]
            tables.append(Table(f"embeddings {name}", embeddings, ["image_id", "caption_index"], checks))
            tables.append(files_table(f"embedding files {name}", files, "the embedding contract's"))
    return tables


def build_tables(config: ValidateConfig) -> list[Table]:
    tables = []
    for source in config.sources:
        counts, ingest_counts = counts_table(config, source)
        records, captions_by_split = record_tables(config, source, ingest_counts)
        tables += [counts, *records, *embedding_tables(config, source, captions_by_split)]
    return tables


# ---------------------------------------------------------------------------------------------
# Running.


def validated_frame(tables: list[Table]) -> tuple[pd.DataFrame, list[int]]:
    """Every table in one frame (a column per distinct column name, TABLE naming each row's table), and the
    row where each table starts. One frame is one batch: one validation, one Data Docs page for them all."""
    columns = list(dict.fromkeys(c for t in tables for c in t.frame.columns))
    if TABLE in columns:
        raise ValueError(f"a validated table has a column named {TABLE!r}, which names the tables")
    starts = list(accumulate((len(t.frame) for t in tables[:-1]), initial=0))
    frames = [t.frame.assign(**{TABLE: t.name}) for t in tables if len(t.frame)]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return frame.reindex(columns=[TABLE, *columns]), starts


def run_checks(tables: list[Table]) -> tuple[list[dict], str]:
    """Validate every table with its checks through one Checkpoint whose UpdateDataDocsAction renders the
    validation into a local Data Docs site; one result dict per check, in suite order, and that page's HTML."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.row_conditions import Column

    frame, starts = validated_frame(tables)
    expectations, of = [], []  # of[k]: (table number, check) of expectations[k]
    for number, table in enumerate(tables):
        for check in table.checks:
            kind = getattr(gx.expectations, check.kind)
            # The page shows the description in place of GX's own sentence: the table, the check's why and
            # the expectation, as the failure lines do (GX's sentence would not name the table of a row count).
            description = f"{table.name}: {check.why} [{kind.expectation_type}]"
            expectations.append(
                kind(**check.kwargs, row_condition=Column(TABLE) == table.name, description=description)
            )
            of.append((number, check))

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    with tempfile.TemporaryDirectory(prefix="data-docs-") as site:
        context.add_data_docs_site(
            "validation",
            {
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": site},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        batch = context.data_sources.add_pandas("ingested").add_dataframe_asset("tables")
        suite = context.suites.add(gx.ExpectationSuite(name="ingested data", expectations=expectations))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(
                name="ingested data", data=batch.add_batch_definition_whole_dataframe("all"), suite=suite
            )
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name="validate",
                validation_definitions=[definition],
                actions=[UpdateDataDocsAction(name="data docs", site_names=["validation"])],
                result_format={"result_format": "SUMMARY"},
            )
        )
        outcome = checkpoint.run(
            batch_parameters={"dataframe": frame}, run_id=RunIdentifier(run_name=RUN_NAME, run_time=RUN_TIME)
        )
        ((key, validation),) = outcome.run_results.items()
        (url,) = context.get_docs_sites_urls(resource_identifier=key, site_names=["validation"])
        page = Path(unquote(urlparse(url["site_url"]).path)).read_text()

    position = {e.id: k for k, e in enumerate(suite.expectations)}  # GX reorders its results
    results = []
    for result in sorted(validation.results, key=lambda r: position[r.expectation_config.id]):
        number, check = of[position[result.expectation_config.id]]
        results.append(summarise(tables[number], starts[number], check, result))
    return results, page


def summarise(table: Table, start: int, check: Check, result) -> dict:
    """The result of `check` on `table`, whose rows start at row `start` of the validated frame: failing rows are
    shown by the table's index columns and the columns checked, read from the table itself."""
    config, details = result.expectation_config, result.result
    rows = details.get("partial_unexpected_index_list") or []
    domain = [c for c in [config.kwargs.get("column"), *config.kwargs.get("column_list", [])] if c]
    shown = list(dict.fromkeys(c for c in [*table.index, *domain] if c in table.frame.columns))
    examples = [table.frame.iloc[row - start][shown].to_dict() for row in rows[:EXAMPLES]]
    return jsonable(
        {
            "table": table.name,
            "rows": len(table.frame),
            "check": check.why,
            "expectation": config.type,
            "kwargs": check.kwargs,
            "success": bool(result.success),
            "observed": details.get("observed_value"),
            "unexpected_count": details.get("unexpected_count"),
            "examples": examples,
            "error": error_of(result.exception_info),
        }
    )


def error_of(info: dict) -> str | None:
    """The message of an exception GX caught: at the top of `exception_info`, or under a metric it computed."""
    raised = [info, *(v for v in info.values() if isinstance(v, dict))]
    return next((e.get("exception_message") for e in raised if e.get("raised_exception")), None)


def jsonable(value):
    """numpy scalars and tuples in GX results -> plain JSON values."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if value is pd.NA:
        return None
    return value

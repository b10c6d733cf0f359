"""Great Expectations suites over the ingested tables, run in an in-memory (ephemeral) context.

Every expectation carries `meta.why`: the sentence that the report and the failure message show.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from model.data import SPLITS, records_dir

from .config import ValidateConfig
from .tables import RECORD_COLUMNS, captions_of, load_counts, load_embeddings, load_records

EXAMPLES = 5  # failing rows shown per check


@dataclass
class Table:
    name: str  # e.g. "records coco/train"
    frame: pd.DataFrame
    index: list[str]  # columns that name a failing row in the report
    expectations: list


# Expectation builders: short names keep the suites below readable.


def _gx(kind: str, why: str, **kwargs):
    import great_expectations as gx

    return getattr(gx.expectations, kind)(**kwargs, meta={"why": why})


def not_null(column: str):
    return _gx("ExpectColumnValuesToNotBeNull", f"no null {column}", column=column)


def unique(column: str, why: str):
    return _gx("ExpectColumnValuesToBeUnique", why, column=column)


def in_set(column: str, values: list, why: str):
    return _gx("ExpectColumnValuesToBeInSet", why, column=column, value_set=values)


def between(column: str, low, high, why: str):
    return _gx("ExpectColumnValuesToBeBetween", why, column=column, min_value=low, max_value=high)


def rows_at_least(n: int, why: str):
    return _gx("ExpectTableRowCountToBeBetween", why, min_value=n)


def rows_equal(n: int, why: str):
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
        found = pd.DataFrame({"folder": [str(f) for f in folders]}, columns=["folder"])
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


def run_checks(tables: list[Table]) -> list[dict]:
    """Validate every table with its suite; one result dict per expectation, in suite order."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    datasource = context.data_sources.add_pandas("ingested")
    results = []
    for number, table in enumerate(tables):
        name = f"table-{number}"
        batch = datasource.add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole")
        expectations = [copy.copy(e) for e in table.expectations]  # a suite takes ownership of its expectations
        suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        outcome = definition.run(
            batch_parameters={"dataframe": table.frame},
            result_format={"result_format": "SUMMARY", "unexpected_index_column_names": table.index},
        )
        position = {e.meta["why"]: k for k, e in enumerate(table.expectations)}  # GX reorders its results
        ordered = sorted(outcome.results, key=lambda r: position.get(r.expectation_config.meta.get("why"), 0))
        results += [summarise(table.name, r, len(table.frame)) for r in ordered]
    return results


def summarise(table: str, result, rows: int) -> dict:
    config, details = result.expectation_config, result.result
    examples = details.get("partial_unexpected_index_list") or details.get("partial_unexpected_list") or []
    error = result.exception_info.get("exception_message") if result.exception_info.get("raised_exception") else None
    return jsonable(
        {
            "table": table,
            "rows": rows,
            "check": config.meta.get("why", config.type),
            "expectation": config.type,
            "kwargs": {k: v for k, v in config.kwargs.items() if k != "batch_id"},
            "success": bool(result.success),
            "observed": details.get("observed_value"),
            "unexpected_count": details.get("unexpected_count"),
            "examples": examples[:EXAMPLES],
            "error": error,
        }
    )


def jsonable(value):
    """numpy scalars and tuples in GX results -> plain JSON values."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value

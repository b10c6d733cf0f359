"""Validation: ingested data passes; each kind of breach fails, names what is wrong, and exits non-zero."""

from __future__ import annotations

import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bad_inputs import write_bad_corpus
from PIL import Image

from components.ingest import IngestConfig, run_ingest
from components.validate import ValidateConfig, run_validate
from components.validate.__main__ import main
from components.validate.tables import png_size, schema_problem
from model.data import EMBEDDING_SCHEMA, RECORD_SCHEMA, records_dir

SIZE = 48


@pytest.fixture(scope="module")
def ingested(demo_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ingested")
    config = IngestConfig(input_root=str(demo_root), output_root=str(out), image_size=SIZE, shard_bytes=20_000)
    run_ingest(config=config)
    return out


@pytest.fixture
def data(ingested, tmp_path) -> Path:
    """A private copy of the ingested data to break."""
    return Path(shutil.copytree(ingested, tmp_path / "data"))


def validate(root: Path, *, sources=("coco", "ln_coco"), **options) -> dict:
    return run_validate(config=ValidateConfig(data_root=str(root), sources=sources, **options))


def failed(summary: dict) -> list[tuple[str, str]]:
    return [(r["table"], r["check"]) for r in summary["results"] if not r["success"]]


def rewrite(root: Path, source: str, split: str, change) -> None:
    """Replace a records table by `change(rows)`, in one shard."""
    folder = Path(records_dir(root, source, split))
    rows = pq.read_table(folder, schema=RECORD_SCHEMA).to_pylist()
    shutil.rmtree(folder)
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(change(rows), schema=RECORD_SCHEMA), folder / "part-00000-of-00001.parquet")


def png(size: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (9, 9, 9)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_ingested_demo_passes_and_reports(data):
    summary = validate(data)
    assert summary["success"], failed(summary)
    assert summary["checks"] > 50 and summary["failed"] == 0
    tables = {r["table"] for r in summary["results"]}
    assert {"records coco/train", "captions ln_coco/val", "ingest counts coco", "image ids ln_coco"} <= tables
    saved = json.loads((data / "validation" / "validation.json").read_text())
    assert saved["success"] and len(saved["results"]) == summary["checks"]
    assert summary["reports"]["html"] == str(data / "validation" / "validation.html")
    text = page_text(data / "validation" / "validation.html")
    assert "Data documentation compiled by Great Expectations" in text and "Succeeded" in text
    for label, value in (("Evaluated Expectations", summary["checks"]), ("Successful Expectations", summary["passed"])):
        assert text[text.index(label) + 1] == str(value)
    for r in summary["results"]:  # every expectation run is on the page: its table, check, type and columns
        assert f"{r['table']}: {r['check']} [{r['expectation']}]" in text, r
        columns = [r["kwargs"]["column"]] if "column" in r["kwargs"] else r["kwargs"].get("column_list", [])
        assert all(column in text for column in columns), r


def test_the_report_is_byte_identical_on_a_rerun_and_in_another_checkout(data, tmp_path):
    """The report is a DVC output: the same bytes on a re-run, and in a clone at another path."""
    validate(data)
    first = {name: (data / "validation" / name).read_bytes() for name in ("validation.html", "validation.json")}
    validate(data)
    assert {name: (data / "validation" / name).read_bytes() for name in first} == first
    elsewhere = Path(shutil.copytree(data, tmp_path / "another" / "checkout" / "data"))
    validate(elsewhere)
    assert {name: (elsewhere / "validation" / name).read_bytes() for name in first} == first


def page_text(path: Path) -> list[str]:
    """The visible text of an HTML page, one entry per text node (scripts and styles left out)."""

    class Text(HTMLParser):
        def __init__(self):
            super().__init__()
            self.parts, self.hidden = [], 0

        def handle_starttag(self, tag, attrs):
            self.hidden += tag in ("script", "style")

        def handle_endtag(self, tag):
            self.hidden -= tag in ("script", "style")

        def handle_data(self, data):
            if not self.hidden and data.strip():
                self.parts.append(" ".join(data.split()))

    parser = Text()
    parser.feed(path.read_text())
    return parser.parts


def test_record_breaches_are_each_named(data):
    def break_records(rows):
        rows[0]["image_id"] = rows[1]["image_id"]  # duplicate id
        rows[2]["image"] = png(SIZE // 2)  # the PNG is not the size the record claims
        rows[3]["captions"] = ["ok caption", "no"]  # a caption below the length bound
        rows[4]["captions"] = []  # no captions
        rows[5]["original_width"] = 1
        return rows

    rewrite(data, "coco", "train", break_records)
    summary = validate(data, sources=("coco",), split_min_images={"train": 100, "val": 1})
    assert not summary["success"]
    assert set(failed(summary)) == {
        ("records coco/train", "split size: at least 100 images"),
        ("records coco/train", "unique image ids"),
        ("records coco/train", f"png_width is {SIZE}"),
        ("records coco/train", f"png_height is {SIZE}"),
        ("records coco/train", "1 to 7 captions per image"),
        ("records coco/train", "originals at least 32 px wide"),
        ("captions coco/train", "captions of 3 to 2000 characters"),
        ("image ids coco", "one split per image"),
    }
    by_check = {r["check"]: r for r in summary["results"] if r["table"] == "records coco/train"}
    assert by_check["1 to 7 captions per image"]["unexpected_count"] == 1
    assert by_check[f"png_width is {SIZE}"]["examples"][0]["png_width"] == SIZE // 2  # the failing row is shown


def test_counts_that_disagree_with_the_records(data):
    rewrite(data, "ln_coco", "val", lambda rows: rows[:-1])
    counts_file = data / "counts" / "coco.json"
    counts = json.loads(counts_file.read_text())
    counts["splits"]["train"]["annotations"]["in"] += 3  # three inputs neither written nor rejected
    counts_file.write_text(json.dumps(counts))
    summary = validate(data)
    assert set(failed(summary)) == {
        ("records ln_coco/val", "as many records as ingest counted written (16)"),
        ("ingest counts coco", "every input is written or rejected (in = written + rejected)"),
    }
    text = page_text(data / "validation" / "validation.html")
    assert "Failed" in text and text[text.index("Unsuccessful Expectations") + 1] == "2"
    check = "every input is written or rejected (in = written + rejected)"
    assert f"ingest counts coco: {check} [expect_column_values_to_be_between]" in text


def test_wrong_schema_names_the_file(data):
    folder = Path(records_dir(data, "coco", "val"))
    table = pq.read_table(folder, schema=RECORD_SCHEMA)
    loose = pa.schema([f.with_nullable(True) if f.name == "width" else f for f in RECORD_SCHEMA])
    pq.write_table(table.cast(loose), folder / "part-extra.parquet")
    summary = validate(data)
    (schema,) = [r for r in summary["results"] if r["check"] == "the record contract's schema" and not r["success"]]
    assert "part-extra.parquet" in schema["examples"][0]["file"]
    assert "'width' is nullable" in schema["examples"][0]["schema_problem"]


def test_dead_letter_fraction_over_threshold_fails_the_cli(tmp_path, capsys):
    corpus = write_bad_corpus(tmp_path / "raw")
    run_ingest(config=IngestConfig(input_root=str(corpus.root), output_root=str(tmp_path / "out"), image_size=32))
    with pytest.raises(SystemExit) as exit_info:
        main(["--data-root", str(tmp_path / "out"), "--max-dead-letter-fraction", "0.2"])
    message = str(exit_info.value.code)
    assert message.startswith("validation FAILED")
    assert "ingest counts coco: dead-letter fraction at most 0.2" in message
    assert '"key": "coco/train/images"' in message and "validation.html" in message
    assert json.loads((tmp_path / "out" / "validation" / "validation.json").read_text())["success"] is False


def write_embeddings(root: Path, *, max_length: int = 4, dim: int = 3, tamper=None) -> Path:
    """Embeddings in the contract for the coco records, with random values: the checks look at shapes and keys."""
    folder = root / "embeddings" / f"test-encoder-L{max_length}"
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        records = pq.read_table(records_dir(root, "coco", split), columns=["image_id", "captions"]).to_pylist()
        rows = [
            {"image_id": r["image_id"], "source": "coco", "split": split, "caption_index": k, "caption": caption,
             "token_embeddings": rng.normal(size=(max_length, dim)).astype(np.float16).tobytes(),
             "attention_mask": np.array([1] * 2 + [0] * (max_length - 2), np.uint8).tobytes(),
             "sentence_embedding": rng.normal(size=dim).astype(np.float32).tobytes()}
            for r in records
            for k, caption in enumerate(r["captions"])
        ]  # fmt: skip
        if tamper and split == "train":
            tamper(rows)
        (folder / "coco" / split).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=EMBEDDING_SCHEMA), folder / "coco" / split / "part-0.parquet")
    (folder / "encoder.json").write_text(json.dumps({"name": "test-encoder", "max_length": max_length, "dim": dim}))
    return folder


def test_embeddings_are_checked_against_records_and_encoder(data):
    write_embeddings(data)
    summary = validate(data)
    assert summary["success"], failed(summary)
    assert any(r["table"] == "embeddings test-encoder-L4/coco/train" for r in summary["results"])


def test_broken_embeddings_fail(data):
    def tamper(rows):
        rows[0]["caption"] = "not the record's caption"
        rows[1]["sentence_embedding"] = np.full(3, np.nan, np.float32).tobytes()
        rows[2]["token_embeddings"] = rows[2]["token_embeddings"][:-2]
        rows.pop()

    write_embeddings(data, tamper=tamper)
    summary = validate(data, require_embeddings=("coco", "ln_coco"))
    assert set(failed(summary)) == {
        ("embeddings test-encoder-L4/coco/train", f"one embedding per caption ({240})"),
        ("embeddings test-encoder-L4/coco/train", "the caption is the record's caption at that index"),
        ("embeddings test-encoder-L4/coco/train", "all values finite"),
        ("embeddings test-encoder-L4/coco/train", "token embeddings are float16 4x3 (encoder.json)"),
        ("embeddings ln_coco", "caption embeddings exist"),  # required, and ln_coco has none
    }


def test_png_header_and_schema_helpers():
    assert png_size(png(7)) == (7, 7) and png_size(b"GIF89a....") == (-1, -1)
    assert schema_problem(RECORD_SCHEMA, RECORD_SCHEMA) == ""
    assert "missing ['captions']" in schema_problem(RECORD_SCHEMA.remove(9), RECORD_SCHEMA)
    with pytest.raises(ValueError, match="max_dead_letter_fraction"):
        ValidateConfig(data_root="x", max_dead_letter_fraction=2)

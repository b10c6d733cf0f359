"""Ingest: each source format, the record contract, counts that add up, and every kind of bad input."""

from __future__ import annotations

import functools
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from bad_inputs import BLUE, RED, encode, exif_rotated_jpeg, two_colour, write_bad_corpus
from PIL import Image

from components.data_version import data_version
from components.demo_data import caption_accuracy
from components.ingest import IngestConfig, run_ingest
from components.ingest.__main__ import parse_arguments
from components.ingest.annotations import annotation_file, parse_coco
from components.ingest.config import REMOTE_COCO_PARTS
from components.ingest.images import ImageSettings, Rejected, process_image, resize
from model.data import RECORD_SCHEMA, records_dir


def ingest(input_root: Path, output_root: Path, **options) -> dict:
    config = IngestConfig(input_root=str(input_root), output_root=str(output_root), **options)
    return run_ingest(config=config)


def read_records(root: Path, source: str, split: str) -> list[dict]:
    folder = Path(records_dir(root, source, split))
    table = pq.read_table(folder, schema=RECORD_SCHEMA)
    return table.to_pylist()


def dead_letters(root: Path, source: str) -> list[dict]:
    files = sorted((root / "dead_letter" / source).glob("*.jsonl"))
    assert files, f"no dead-letter file for {source}"
    return [json.loads(line) for f in files for line in f.read_text().splitlines() if line]


def decode_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.mode == "RGB"
    return image


def assert_counts_add_up(summary: dict) -> None:
    for source, counts in summary["sources"].items():
        for split, units in counts["splits"].items():
            for unit, c in units.items():
                ok = c.get("written", c.get("parsed"))
                assert c["in"] == ok + c["rejected"], (source, split, unit, c)


# ---------------------------------------------------------------------------------------------
# Per-image work, without Beam.


def test_resize_modes_stretch_or_crop():
    settings = dict(size=32, min_side=8)
    wide = encode(two_colour(120, 40), "PNG")  # red left half, blue right half
    stretched = decode_png(process_image(wide, settings=ImageSettings(resize="stretch", **settings)).png)
    cropped = decode_png(process_image(wide, settings=ImageSettings(resize="center_crop", **settings)).png)
    assert stretched.size == cropped.size == (32, 32)
    # stretch keeps the whole width: red then blue; the centre crop keeps the middle third, half of each
    assert np.allclose(stretched.getpixel((4, 16)), RED, atol=8) and np.allclose(
        stretched.getpixel((28, 16)), BLUE, atol=8
    )
    assert np.allclose(cropped.getpixel((4, 16)), RED, atol=8) and np.allclose(cropped.getpixel((28, 16)), BLUE, atol=8)
    assert np.asarray(stretched).tobytes() != np.asarray(cropped).tobytes()
    with pytest.raises(ValueError, match="resize must be one of"):
        resize(two_colour(10, 10), size=4, mode="pad")


def test_exif_orientation_is_applied_and_original_size_is_as_displayed():
    out = process_image(exif_rotated_jpeg(), settings=ImageSettings(size=30, min_side=8))
    assert (out.original_width, out.original_height) == (40, 60)
    pixels = np.asarray(decode_png(out.png)).astype(int)
    assert np.abs(pixels[3, 15] - RED).max() < 40 and np.abs(pixels[26, 15] - BLUE).max() < 40  # red on top


def test_large_jpeg_reports_full_resolution_size():
    big = encode(two_colour(1600, 1200), "JPEG", quality=90)  # decoded at reduced scale via draft()
    out = process_image(big, settings=ImageSettings(size=64))
    assert (out.original_width, out.original_height) == (1600, 1200)
    assert decode_png(out.png).size == (64, 64)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "1", "I;16"])
def test_every_mode_becomes_rgb(mode):
    base = two_colour(64, 48)
    if mode == "I;16":
        image = Image.fromarray(np.full((48, 64), 50_000, np.uint16))
        fmt = "PNG"
    else:
        image, fmt = base.convert(mode), ("JPEG" if mode == "CMYK" else "PNG")
    out = decode_png(process_image(encode(image, fmt), settings=ImageSettings(size=16, min_side=8)).png)
    assert out.size == (16, 16)
    if mode == "I;16":  # 16-bit values are scaled, not clipped to white: 50000 / 257 ~ 194
        assert abs(out.getpixel((8, 8))[0] - 50_000 // 257) <= 1


def test_transparent_pixels_land_on_white():
    image = Image.new("RGBA", (40, 40), (255, 0, 0, 0))
    out = decode_png(process_image(encode(image, "PNG"), settings=ImageSettings(size=8, min_side=8)).png)
    assert out.getpixel((4, 4)) == (255, 255, 255)


def test_bad_bytes_raise_rejected_with_stage():
    settings = ImageSettings(size=16)
    for data, stage in [(b"", "read"), (b"not an image", "decode"), (b"\x89PNG\r\n\x1a\n", "decode")]:
        with pytest.raises(Rejected) as error:
            process_image(data, settings=settings)
        assert error.value.stage == stage


def test_published_file_names_map_to_source_split_and_image_folder():
    def found(source, name):
        file = annotation_file(source, f"/r/annotations/{name}", input_root="/r", image_dirs={})
        return file and (file.split, file.image_folder)

    assert found("coco", "captions_train2014.json") == ("train", "train2014")
    assert found("coco", "captions_val2017.json") == ("val", "val2017")
    assert found("coco", "instances_val2017.json") is None
    assert found("ln_coco", "coco_train_localized_narratives-00003-of-00004.jsonl") == ("train", "train2017")
    assert found("ln_coco", "coco_val_localized_narratives.jsonl") == ("val", "val2017")
    assert found("ln_open_images", "open_images_train_v6_localized_narratives-00000-of-00010.jsonl") == (
        "train",
        "open_images/train",
    )
    assert found("ln_open_images", "open_images_validation_localized_narratives.jsonl") == (
        "val",
        "open_images/validation",
    )
    assert found("ln_open_images", "open_images_test_localized_narratives.jsonl") is None  # no test split here


def test_a_coco_file_that_is_not_json_or_not_coco_is_one_dead_letter():
    file = annotation_file("coco", "/r/annotations/captions_val2017.json", input_root="/r", image_dirs={})
    for data, stage, reason in [
        (b'{"images": [', "parse", "not a valid JSON file"),
        (b"\xff\xfe{}", "parse", "not a valid JSON file"),
        (b'{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": []} x', "parse", "trailing garbage"),
        (b'{"images": {}, "annotations": []}', "schema", "'images' must be a list"),
        (b'{"annotations": [], "images": {"item": {"id": 1}}}', "schema", "'images' must be a list"),
        (b'[{"images": [], "annotations": []}]', "schema", "the top level must be an object"),
    ]:
        candidates, (letter,), counts = parse_coco(functools.partial(io.BytesIO, data), file, max_caption_chars=100)
        assert list(candidates) == [] and letter.location == "annotations/captions_val2017.json"
        assert letter.stage == stage
        assert reason in letter.reason and counts == {("files", "in"): 1, ("files", "rejected"): 1}


def test_a_coco_file_is_streamed_in_any_key_order_and_every_record_accounted_for():
    file = annotation_file("coco", "/r/annotations/captions_train2017.json", input_root="/r", image_dirs={})
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in range(3000)]
    images += [{"id": 5, "file_name": "again.jpg"}, {"id": "x", "file_name": "b.jpg"}]
    annotations = [{"id": i, "image_id": i % 2999, "caption": f"caption {i}"} for i in range(6000)]
    annotations += [{"id": 7, "image_id": 1, "caption": "repeated id"}, {"id": 9000, "image_id": 4242, "caption": "x"}]
    data = json.dumps({"annotations": annotations, "info": {"images": []}, "images": images}).encode()

    class Reads(io.BytesIO):  # records the size of every read the parser asks for
        def read(self, size=-1):
            sizes.append(len(data) if size is None or size < 0 else size)
            return super().read(size)

        def readinto(self, buffer):
            sizes.append(len(buffer))
            return super().readinto(buffer)

    sizes: list[int] = []
    candidates, dead, counts = parse_coco(lambda: Reads(data), file, max_caption_chars=100)
    candidates = list(candidates)
    assert 0 < max(sizes) < len(data) // 4  # read in chunks, twice over (never the whole file at once)
    assert len(candidates) == 2999 and candidates[0].captions == ("caption 0", "caption 2999", "caption 5998")
    assert candidates[0].image_name == "train2017/000000000000.jpg"
    assert sorted((d.stage, d.location) for d in dead) == [
        ("duplicate", "annotations/captions_train2017.json annotations[6000]"),
        ("duplicate", "annotations/captions_train2017.json images[3000]"),
        ("join", "annotations/captions_train2017.json annotations[6001]"),
        ("join", "annotations/captions_train2017.json images[2999]"),  # no annotation names image 2999
        ("schema", "annotations/captions_train2017.json images[3001]"),
    ]
    assert counts[("images", "in")] == 3002 == len(candidates) + counts[("images", "rejected")]
    assert counts[("annotations", "in")] == 6002 == 6000 + counts[("annotations", "rejected")]
    # a part keeps the candidates of its images only; its dead letters and counts are the whole file's
    even, even_dead, even_counts = parse_coco(
        lambda: Reads(data), file, max_caption_chars=100, keep=lambda i: i % 2 == 0
    )
    even = list(even)
    assert even == [c for c in candidates if int(c.image_id) % 2 == 0] and len(even) == 1500
    assert (even_dead, even_counts) == (dead, counts)


def test_cli_validates_options_into_one_config(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("ingest:\n  input_root: raw\n  output_root: out\n  image_size: 64\n  sources: [ln_coco]\n")
    config, _ = parse_arguments(["--params", str(params), "--resize", "center_crop"])
    assert (config.image_size, config.resize, config.sources) == (64, "center_crop", ("ln_coco",))
    assert Path(config.input_root).is_absolute()
    with pytest.raises(SystemExit):
        parse_arguments(["--params", str(params), "--resize", "pad"])
    with pytest.raises(ValueError, match="unknown sources"):
        IngestConfig(input_root="a", output_root="b", sources=("flickr",))
    # a COCO file's parts: one per local worker, more on a cluster, or as set
    assert IngestConfig(input_root="a", output_root="b", local_workers=3).coco_file_parts == 3
    assert IngestConfig(input_root="a", output_root="b", runner="DataflowRunner").coco_file_parts == REMOTE_COCO_PARTS
    assert IngestConfig(input_root="a", output_root="b", runner="DataflowRunner", coco_parts=5).coco_file_parts == 5
    with pytest.raises(ValueError, match="coco_parts must be at least 0"):
        IngestConfig(input_root="a", output_root="b", coco_parts=-1)


# ---------------------------------------------------------------------------------------------
# Whole pipeline runs on the DirectRunner.


def test_demo_dataset_both_sources(demo_root, tmp_path):
    summary = ingest(demo_root, tmp_path, sources=("coco", "ln_coco"), image_size=48, shard_bytes=50_000)
    assert_counts_add_up(summary)
    assert summary["images"] == {"in": 128, "written": 128, "rejected": 0}
    for split, count in (("train", 48), ("val", 16)):
        coco = json.loads((demo_root / "annotations" / f"captions_{split}2017.json").read_text())
        expected = {}
        for annotation in coco["annotations"]:
            expected.setdefault(str(annotation["image_id"]), []).append(annotation["caption"])
        records = read_records(tmp_path, "coco", split)
        assert {r["image_id"]: r["captions"] for r in records} == expected
        assert len(records) == count
        accuracy = []
        for record in records:
            image = decode_png(record["image"])
            assert image.size == (record["width"], record["height"]) == (48, 48)
            assert (record["original_width"], record["original_height"]) == (64, 64)
            assert record["file_name"] == f"{int(record['image_id']):012d}.jpg"
            accuracy += [caption_accuracy(image, c) for c in record["captions"]]
        assert np.nanmean(accuracy) > 0.95  # the resized pixels still show what the captions say
        narratives = read_records(tmp_path, "ln_coco", split)
        assert len(narratives) == count and all(len(r["captions"]) == 1 for r in narratives)
        assert all(r["captions"][0].startswith("In this image") for r in narratives)
    shards = sorted(Path(records_dir(tmp_path, "coco", "train")).glob("part-*.parquet"))
    # about 3 kB per 48 px record: 48 records need several 50 kB shards, named i-of-n for every i
    n = len(shards)
    assert n > 1 and [s.name for s in shards] == [f"part-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    assert all(pq.ParquetFile(s).metadata.num_rows > 0 for s in shards)
    assert pq.read_schema(shards[0]).equals(RECORD_SCHEMA)
    counts = json.loads((tmp_path / "counts" / "coco.json").read_text())
    assert counts["image"] == {
        "format": "PNG",
        "mode": "RGB",
        "size": 48,
        "resize": "stretch",
        "min_side": 32,
        "max_pixels": 89_478_485,
    }
    assert counts["splits"]["train"]["annotations"] == {"in": 240, "written": 240, "rejected": 0}
    assert dead_letters(tmp_path, "coco") == [] and dead_letters(tmp_path, "ln_coco") == []


def test_the_same_input_gives_byte_identical_output(bad_run, tmp_path):
    corpus, out, _, _ = bad_run
    ingest(corpus.root, tmp_path, sources=("coco", "ln_coco"), image_size=32, shard_bytes=4096)
    for folder in ("records", "dead_letter"):
        assert data_version(tmp_path / folder) == data_version(out / folder)  # DVC sees no change on a re-run
    shards = sorted(p.name for p in Path(records_dir(tmp_path, "ln_coco", "val")).iterdir())
    assert shards == ["part-00000-of-00001.parquet"]  # one image: one shard


def test_any_number_of_coco_parts_gives_the_same_output(bad_run, tmp_path):
    """Every part of a COCO file parses all of it and keeps the images that hash to it; part 0 alone reports
    the file's dead letters and counts: nothing is lost or doubled, whatever the parts and workers."""
    corpus, out, summary, _ = bad_run
    for parts, workers in ((1, 1), (3, 2)):
        root = tmp_path / f"parts-{parts}"
        options = {"image_size": 32, "shard_bytes": 4096, "coco_parts": parts, "local_workers": workers}
        coco = ingest(corpus.root, root, sources=("coco",), **options)
        assert coco["sources"]["coco"] == summary["sources"]["coco"]
        for folder in ("records/coco", "dead_letter/coco"):
            assert data_version(root / folder) == data_version(out / folder), (parts, folder)


@pytest.mark.shared_data
def test_real_coco_and_localized_narratives(coco_mini, tmp_path):
    summary = ingest(coco_mini, tmp_path, sources=("coco", "ln_coco"), image_size=64)
    assert_counts_add_up(summary)
    for split in ("train", "val"):
        coco = json.loads((coco_mini / "annotations" / f"captions_{split}2017.json").read_text())
        sizes = {str(i["id"]): (i["width"], i["height"]) for i in coco["images"]}
        records = read_records(tmp_path, "coco", split)
        assert len(records) == len(sizes)  # every real image is kept
        for record in records:
            assert (record["original_width"], record["original_height"]) == sizes[record["image_id"]]
            assert decode_png(record["image"]).size == (64, 64)
            assert len(record["captions"]) >= 5
        narratives = read_records(tmp_path, "ln_coco", split)
        lines = (coco_mini / "annotations" / f"coco_{split}_localized_narratives.jsonl").read_text().splitlines()
        assert {r["image_id"] for r in narratives} == {json.loads(line)["image_id"] for line in lines}
        assert {r["image_id"] for r in narratives} <= set(sizes)


def test_open_images_narratives_and_a_runner_by_flag(tmp_path):
    raw = tmp_path / "raw"
    ids = {"train": ["0a1b2c3d4e5f6a7b", "1b2c3d4e5f6a7b8c"], "validation": ["2c3d4e5f6a7b8c9d"]}
    (raw / "annotations").mkdir(parents=True)
    for word, image_ids in ids.items():
        folder = raw / "open_images" / word
        folder.mkdir(parents=True)
        lines = []
        for image_id in image_ids:
            (folder / f"{image_id}.jpg").write_bytes(encode(two_colour(80, 60), "JPEG"))
            record = {"dataset_id": f"open_images_{word}", "image_id": image_id, "annotator_id": 7,
                      "caption": f"In this picture {image_id}.", "timed_caption": [], "traces": [],
                      "voice_recording": ""}  # fmt: skip
            lines.append(json.dumps(record))
        suffix = "_v6_localized_narratives-00000-of-00001" if word == "train" else "_localized_narratives"
        (raw / "annotations" / f"open_images_{word}{suffix}.jsonl").write_text("\n".join(lines) + "\n")
    summary = ingest(raw, tmp_path / "out", sources=("ln_open_images",), image_size=32, runner="FnApiRunner")
    assert_counts_add_up(summary)
    assert {r["image_id"] for r in read_records(tmp_path / "out", "ln_open_images", "train")} == set(ids["train"])
    val = read_records(tmp_path / "out", "ln_open_images", "val")
    assert [r["file_name"] for r in val] == ["2c3d4e5f6a7b8c9d.jpg"]


def test_coco_2014_names_and_the_year_choice(tmp_path):
    raw = tmp_path / "raw"
    (raw / "annotations").mkdir(parents=True)
    for year in (2014, 2017):
        folder = raw / f"train{year}"
        folder.mkdir()
        name = f"COCO_train2014_{5:012d}.jpg" if year == 2014 else f"{5:012d}.jpg"
        (folder / name).write_bytes(encode(two_colour(64, 64), "JPEG"))
        document = {
            "images": [{"id": 5, "file_name": name}],
            "annotations": [{"id": 1, "image_id": 5, "caption": "x y"}],
        }
        (raw / "annotations" / f"captions_train{year}.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="set coco_year"):
        ingest(raw, tmp_path / "out", sources=("coco",))
    ingest(raw, tmp_path / "out", sources=("coco",), coco_year=2014)
    assert [r["file_name"] for r in read_records(tmp_path / "out", "coco", "train")] == [
        "COCO_train2014_000000000005.jpg"
    ]


def test_missing_sources_give_a_clear_error(tmp_path):
    (tmp_path / "annotations").mkdir()
    with pytest.raises(FileNotFoundError, match="no ln_coco annotation files"):
        ingest(tmp_path, tmp_path / "out", sources=("ln_coco",))


# ---------------------------------------------------------------------------------------------
# Bad inputs: one run over a corpus where every kind of bad record sits among good ones.


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    corpus = write_bad_corpus(tmp_path_factory.mktemp("bad-raw"))
    out = tmp_path_factory.mktemp("bad-out")
    summary = ingest(corpus.root, out, sources=("coco", "ln_coco"), image_size=32, shard_bytes=4096)
    letters = {source: dead_letters(out, source) for source in ("coco", "ln_coco")}
    return corpus, out, summary, letters


def test_bad_inputs_never_crash_and_good_records_are_kept(bad_run):
    corpus, out, summary, _ = bad_run
    assert_counts_add_up(summary)
    for (source, split), ids in corpus.written.items():
        records = read_records(out, source, split)
        assert {r["image_id"] for r in records} == ids, (source, split)
        for record in records:
            assert decode_png(record["image"]).size == (32, 32)
            expected = corpus.captions.get((source, split, record["image_id"]), 1)
            assert len(record["captions"]) == expected, record["image_id"]


def test_every_bad_input_is_in_the_dead_letters_with_its_reason(bad_run):
    corpus, _, _, letters = bad_run
    for case in corpus.cases:
        matching = [
            d
            for d in letters[case.source]
            if d["split"] == case.split and d["stage"] == case.stage and case.location in d["location"]
        ]
        assert matching, f"{case.name}: no {case.stage} dead letter at {case.location}"
        assert any(case.reason.lower() in d["reason"].lower() for d in matching), (
            case.name,
            [d["reason"] for d in matching],
        )


def test_no_record_is_written_without_a_usable_caption(bad_run):
    _, out, _, letters = bad_run
    for source in ("coco", "ln_coco"):
        records = read_records(out, source, "train")
        assert records and all(r["captions"] and all(c.strip() for c in r["captions"]) for r in records)
        assert "33" not in {r["image_id"] for r in records}  # image 33 decodes fine, but has nothing to learn from
    (coco_33,) = [d for d in letters["coco"] if d["location"].endswith("images[22]")]
    assert coco_33["reason"].startswith("no usable caption: every caption was refused")


def test_a_decompression_bomb_is_refused_at_the_configured_limit(tmp_path):
    image = encode(two_colour(300, 200), "PNG")
    with pytest.raises(Rejected, match=r"declares 300x200 = 60000 pixels > max_image_pixels=50000"):
        process_image(image, settings=ImageSettings(size=16, max_pixels=50_000))


def test_dead_letters_account_for_every_rejection(bad_run):
    _, _, summary, letters = bad_run
    for source, counts in summary["sources"].items():
        # An image letter is either an image entry refused while parsing or an image refused with its captions.
        image_letters = [
            d
            for d in letters[source]
            if "image_path" in d["record"] or "images[" in d["location"] or d["reason"].startswith("no usable caption")
        ]
        caption_letters = len(letters[source]) - len(image_letters)
        captions_with_images = sum(len(d["record"].get("captions", [])) for d in image_letters)
        rejected = counts["splits"]["train"]
        assert rejected["images"]["rejected"] == len(image_letters) > 0
        assert rejected["annotations"]["rejected"] == caption_letters + captions_with_images > 0
    long_letter = next(d for d in letters["coco"] if "10000 characters" in d["reason"])
    assert len(json.dumps(long_letter)) < 2000  # the record is kept readable, not 10k characters


def test_converted_modes_and_rotation_in_the_pipeline(bad_run):
    _, out, _, _ = bad_run
    records = {r["image_id"]: r for r in read_records(out, "coco", "train")}
    for image_id in ("12", "13", "14", "15", "16"):  # grey, CMYK, RGBA, palette, 16-bit
        assert decode_png(records[image_id]["image"]).mode == "RGB"
    rotated = records["17"]
    assert (rotated["original_width"], rotated["original_height"]) == (40, 60)
    pixels = np.asarray(decode_png(rotated["image"])).astype(int)
    assert np.abs(pixels[2, 16] - RED).max() < 40 and np.abs(pixels[29, 16] - BLUE).max() < 40


def test_a_rerun_replaces_the_previous_output(bad_run, tmp_path):
    corpus, out, _, _ = bad_run
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    (Path(records_dir(copy, "coco", "train")) / "part-stale.parquet").write_bytes(b"stale")
    ingest(corpus.root, copy, sources=("coco",), image_size=32)
    assert [p.name for p in Path(records_dir(copy, "coco", "train")).iterdir()] == ["part-00000-of-00001.parquet"]
    assert (copy / "counts" / "ln_coco.json").exists()  # other sources' outputs are left alone


def test_rows_counted_but_missing_on_disk_stop_the_run(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from components.beam_io import check_written

    folder = tmp_path / "records"
    folder.mkdir()
    pq.write_table(pa.table({"image_id": ["1", "2"]}), folder / "part-00000-of-00001.parquet")
    check_written({str(folder): 2}, "ingest")
    with pytest.raises(RuntimeError, match=r"ingest: rows on disk differ from rows counted .*counted 3, on disk 2"):
        check_written({str(folder): 3}, "ingest")

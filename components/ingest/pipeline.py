"""The ingest pipeline (Apache Beam): annotation files + images -> sharded Parquet records.

    annotation files --parse--> candidates (an image and all its captions) --read, decode, resize,
    encode--> records/<source>/<split>/part-*.parquet       (model.data.RECORD_SCHEMA)
    every rejected input ----> dead_letter/<source>/part-*.jsonl   ({source, split, stage, reason,
                                                                    location, record})
    counts ------------------> counts/<source>.json  (per split and unit: in = written + rejected)

COCO files are parsed whole (the image list and captions live in one JSON); Localized Narratives
lines are parsed one by one and grouped by image. A Reshuffle before the image work spreads it
over workers on distributed runners. Outputs are sorted within fixed shards, so the same inputs
give byte-identical files; counts are Beam counters, read once the pipeline has finished.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections import Counter

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from model.data import RECORD_SCHEMA, records_dir

from .annotations import (
    EXAMPLE_NAMES,
    AnnotationFile,
    Candidate,
    DeadLetter,
    annotation_file,
    coco_year,
    gather_narratives,
    iter_lines,
    parse_coco,
    parse_narrative,
    preview,
)
from .beam_io import (
    WriteJsonLines,
    WriteParquetShards,
    check_written,
    count,
    counts_path,
    dead_letter_dir,
    fill_missing_shards,
    pipeline_options,
    read_counters,
    remove,
    shard_name,
    write_json,
    write_text,
)
from .config import IngestConfig
from .images import ImageSettings, ProcessedImage, Rejected, process_image

log = logging.getLogger(__name__)
DEAD = "dead"
COUNTERS = "ingest-counts"  # counter names: source|split|unit|outcome
ROWS_PER_ROW_GROUP = 128  # records per Parquet row group: ~2-4 MB of 128 px PNGs, a reader's unit of work
PROGRESS_EVERY = 500  # images between progress lines, per worker


def discover(config: IngestConfig) -> list[AnnotationFile]:
    """The annotation files of the configured sources under <input_root>/annotations, by published name."""
    folder = posixpath.join(config.input_root, "annotations")
    matched = FileSystems.match([posixpath.join(folder, "*")])[0].metadata_list
    paths = sorted(m.path for m in matched)
    files = []
    for source in config.sources:
        found = [
            f
            for path in paths
            if (f := annotation_file(source, path, input_root=config.input_root, image_dirs=config.image_dirs))
        ]
        if source == "coco":
            years = sorted({coco_year(f.path) for f in found})
            if config.coco_year is not None:
                found = [f for f in found if coco_year(f.path) == config.coco_year]
            elif len(years) > 1:
                raise ValueError(f"COCO caption files of several years {years} in {folder}: set coco_year to one")
        if not found:
            raise FileNotFoundError(
                f"no {source} annotation files in {folder} (looked for names like "
                f"{EXAMPLE_NAMES[source]}; found {[posixpath.basename(p) for p in paths]})"
            )
        files.extend(found)
    return files


def _count(source: str, split: str, unit: str, outcome: str, n: int = 1) -> None:
    count(COUNTERS, (source, split, unit, outcome), n)


def _dead(letter: DeadLetter):
    Metrics.counter("ingest", f"rejected_{letter.stage}").inc()
    return beam.pvalue.TaggedOutput(DEAD, letter)


class ParseCocoFile(beam.DoFn):
    def __init__(self, max_caption_chars: int):
        self.max_caption_chars = max_caption_chars

    def process(self, file: AnnotationFile):
        try:
            with FileSystems.open(file.path) as stream:
                data = stream.read()
        except OSError as error:
            yield _dead(DeadLetter(file.source, file.split, "read", f"cannot read: {error}", file.name, {}))
            _count(file.source, file.split, "files", "in")
            _count(file.source, file.split, "files", "rejected")
            return
        candidates, dead, counts = parse_coco(data, file, max_caption_chars=self.max_caption_chars)
        log.info("%s: %d images with captions, %d rejected records", file.path, len(candidates), len(dead))
        yield from candidates
        for letter in dead:
            yield _dead(letter)
        for (unit, outcome), n in counts.items():
            _count(file.source, file.split, unit, outcome, n)


class ReadNarratives(beam.DoFn):
    """A Localized Narratives JSONL file -> ((source, split, image_id), Narrative) per good line."""

    def __init__(self, max_caption_chars: int):
        self.max_caption_chars = max_caption_chars

    def process(self, file: AnnotationFile):
        counts = Counter()
        try:
            with FileSystems.open(file.path) as stream:
                for line, raw in iter_lines(stream):
                    counts["in"] += 1
                    try:
                        narrative = parse_narrative(raw, file, line=line, max_caption_chars=self.max_caption_chars)
                    except Rejected as rejected:
                        counts["rejected"] += 1
                        location = f"{file.name}:{line}"
                        yield _dead(
                            DeadLetter(file.source, file.split, rejected.stage, rejected.reason, location, preview(raw))
                        )
                        continue
                    yield (file.source, file.split, narrative.image_id), narrative
        except OSError as error:  # unreadable mid-way: the lines read so far stand, the file is reported
            yield _dead(DeadLetter(file.source, file.split, "read", f"cannot read: {error}", file.name, {}))
            _count(file.source, file.split, "files", "in")
            _count(file.source, file.split, "files", "rejected")
        else:
            _count(file.source, file.split, "files", "in")
            _count(file.source, file.split, "files", "parsed")
        log.info("%s: %d narratives, %d rejected", file.path, counts["in"] - counts["rejected"], counts["rejected"])
        for outcome, n in counts.items():
            _count(file.source, file.split, "annotations", outcome, n)


class GatherNarratives(beam.DoFn):
    def process(self, keyed):
        (source, split, _), narratives = keyed
        candidate, dead = gather_narratives(list(narratives))
        yield candidate
        _count(source, split, "images", "in")
        for letter in dead:
            yield _dead(letter)
        if dead:
            _count(source, split, "annotations", "rejected", len(dead))


def record_row(candidate: Candidate, image: ProcessedImage) -> dict:
    """One row of RECORD_SCHEMA: an image that passed, with every caption of it."""
    return {
        "image_id": candidate.image_id,
        "source": candidate.source,
        "split": candidate.split,
        "file_name": candidate.file_name,
        "image": image.png,
        "width": image.width,
        "height": image.height,
        "original_width": image.original_width,
        "original_height": image.original_height,
        "captions": list(candidate.captions),
    }


def read_image_file(candidate: Candidate) -> bytes:
    path, name = candidate.image_path, candidate.image_name
    try:
        with FileSystems.open(path) as stream:
            return stream.read()
    except FileNotFoundError as error:
        raise Rejected("read", f"image file not found: {name}") from error
    except OSError as error:  # Beam wraps some filesystems' errors in BeamIOError (an OSError)
        if not FileSystems.exists(path):
            raise Rejected("read", f"image file not found: {name}") from error
        raise Rejected("read", f"cannot read image file {name}: {type(error).__name__}") from error


class ProcessImage(beam.DoFn):
    """A candidate -> a record dict (RECORD_SCHEMA); unusable images go to the dead letters with their captions."""

    def __init__(self, settings: ImageSettings):
        self.settings = settings

    def setup(self):
        self.done = 0

    def process(self, candidate: Candidate):
        c = candidate
        try:
            image = process_image(read_image_file(c), settings=self.settings)
        except Rejected as rejected:
            record = {"image_id": c.image_id, "image_path": c.image_name, "captions": list(c.captions)}
            yield _dead(DeadLetter(c.source, c.split, rejected.stage, rejected.reason, c.location, preview(record)))
            _count(c.source, c.split, "images", "rejected")
            _count(c.source, c.split, "annotations", "rejected", len(c.captions))
            return
        Metrics.counter("ingest", "images_written").inc()
        self.done += 1
        if self.done % PROGRESS_EVERY == 0:
            log.info("ingest: %d images processed by this worker", self.done)
        yield record_row(c, image)
        _count(c.source, c.split, "images", "written")
        _count(c.source, c.split, "annotations", "written", len(c.captions))


def build(pipeline: beam.Pipeline, config: IngestConfig, files: list[AnnotationFile]) -> None:
    """Add the ingest transforms for `files` to `pipeline`."""
    coco = [f for f in files if f.source == "coco"]
    narrative_files = [f for f in files if f.source != "coco"]
    candidates, dead = [], []
    if coco:
        parsed = (
            pipeline
            | "COCO files" >> beam.Create(coco)
            | "Parse COCO" >> beam.ParDo(ParseCocoFile(config.max_caption_chars)).with_outputs(DEAD, main="ok")
        )
        candidates.append(parsed.ok)
        dead.append(parsed[DEAD])
    if narrative_files:
        read = (
            pipeline
            | "LN files" >> beam.Create(narrative_files)
            | "Read LN" >> beam.ParDo(ReadNarratives(config.max_caption_chars)).with_outputs(DEAD, main="ok")
        )
        gathered = (
            read.ok
            | "Group LN by image" >> beam.GroupByKey()
            | "Gather LN" >> beam.ParDo(GatherNarratives()).with_outputs(DEAD, main="ok")
        )
        candidates.append(gathered.ok)
        dead.extend([read[DEAD], gathered[DEAD]])

    processed = (
        candidates
        | "All candidates" >> beam.Flatten()
        | "Spread" >> beam.Reshuffle()
        | "Process images" >> beam.ParDo(ProcessImage(config.image_settings)).with_outputs(DEAD, main="ok")
    )
    dead.append(processed[DEAD])
    root = config.output_root
    _ = processed.ok | "Write records" >> WriteParquetShards(
        folder_of=lambda record: records_dir(root, record["source"], record["split"]),
        schema=RECORD_SCHEMA,
        shards=config.shards,
        sort_key=lambda record: record["image_id"],
        rows_per_group=ROWS_PER_ROW_GROUP,
    )
    _ = (
        dead
        | "All dead letters" >> beam.Flatten()
        | "Write dead letters"
        >> WriteJsonLines(
            path_of=lambda letter: dead_letter_file(root, letter.source),
            sort_key=lambda letter: (letter.split, letter.location, letter.stage, letter.reason),
        )
    )


def dead_letter_file(root: str, source: str) -> str:
    return shard_name(dead_letter_dir(root, source), 0, 1, ".jsonl")


def split_counts(totals: dict[tuple, int], source: str, split: str) -> dict[str, dict[str, int]]:
    """Counts of one source and split per unit, each checked: in = ok + rejected."""
    counts = {}
    for unit, ok in (("files", "parsed"), ("annotations", "written"), ("images", "written")):
        counted = {outcome: totals.get((source, split, unit, outcome), 0) for outcome in ("in", ok, "rejected")}
        if counted["in"] != counted[ok] + counted["rejected"]:
            raise RuntimeError(f"ingest counts do not add up for {source}/{split}/{unit}: {counted}")
        counts[unit] = counted
    return counts


def summarise(totals: dict[tuple, int], config: IngestConfig, files: list[AnnotationFile]) -> dict[str, dict]:
    """Per source: the settings its records were made with, and the counts per split."""
    summaries = {}
    for source in config.sources:
        splits = sorted({f.split for f in files if f.source == source})
        summaries[source] = {
            "source": source,
            "annotation_files": [f.name for f in files if f.source == source],
            "image": {
                "format": "PNG",
                "mode": "RGB",
                "size": config.image_size,
                "resize": config.resize,
                "min_side": config.min_image_side,
                "max_pixels": config.max_image_pixels,
            },
            "max_caption_chars": config.max_caption_chars,
            "shards": config.shards,
            "splits": {split: split_counts(totals, source, split) for split in splits},
        }
    return summaries


def run_ingest(*, config: IngestConfig) -> dict:
    """Run the pipeline; write records, dead letters and counts; return {"sources": {source: counts}, ...}."""
    started = time.perf_counter()
    files = discover(config)
    for source in config.sources:
        remove(
            [
                posixpath.join(config.output_root, "records", source),
                dead_letter_dir(config.output_root, source),
                counts_path(config.output_root, source),
            ]
        )
    for source in config.sources:  # a source without rejections still has its (empty) dead-letter file
        write_text(dead_letter_file(config.output_root, source), "")
    options = pipeline_options(config.runner, config.beam_args, local_threads=config.local_threads)
    pipeline = beam.Pipeline(options=options)
    build(pipeline, config, files)
    result = pipeline.run()
    if (state := result.wait_until_finish()) != "DONE":
        raise RuntimeError(f"ingest pipeline ended in state {state}")
    for source, split in sorted({(f.source, f.split) for f in files}):
        fill_missing_shards(records_dir(config.output_root, source, split), config.shards, RECORD_SCHEMA)
    summaries = summarise(read_counters(result, COUNTERS), config, files)
    check_written(
        {
            records_dir(config.output_root, source, split): counts["images"]["written"]
            for source, summary in summaries.items()
            for split, counts in summary["splits"].items()
        },
        "ingest",
    )
    for source, summary in summaries.items():
        write_json(counts_path(config.output_root, source), summary)
    seconds = time.perf_counter() - started
    images = {
        outcome: sum(s["images"][outcome] for summary in summaries.values() for s in summary["splits"].values())
        for outcome in ("in", "written", "rejected")
    }
    return {"output_root": config.output_root, "seconds": round(seconds, 3), "images": images, "sources": summaries}

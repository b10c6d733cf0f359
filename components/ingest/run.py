"""The ingest pipeline (Apache Beam): annotation files + images -> sharded Parquet records.

    annotation files --parse--> candidates (an image and all its captions) --read, decode, resize,
    encode--> records/<source>/<split>/part-*.parquet       (model.data.RECORD_SCHEMA)
    every rejected input ----> dead_letter/<source>/part-*.jsonl   ({source, split, stage, reason,
                                                                    location, record})
    counts ------------------> counts/<source>.json  (per split and unit: in = written + rejected)

A COCO file's image list and captions live in one JSON, so the file is the unit of parsing; its image
work is spread over workers by parts: (file, part) pairs cross a Reshuffle, and each part streams the
file and keeps the images whose id hashes to it (part 0 also reports the file's dead letters and
counts). So the candidates never cross a stage, which a local runner would hold whole in memory: a
part's candidates go straight on to their images and the spill files. Localized Narratives lines are
parsed one by one and grouped by image. Every step has one output of (kind, value) pairs: records,
dead letters and counts (components/beam_io.py says why, and how files are staged, settled and
published so that no runner's retries or kills lose, double or half-write anything).
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections import Counter

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from components.beam_io import (
    DEAD,
    RECORD,
    WriteCounts,
    WriteFiles,
    WriteParquetShards,
    check_written,
    counted,
    exists,
    finish,
    join_sinks,
    json_lines,
    make_pipeline,
    new_staging,
    publish,
    read_counts,
    select,
    select_all,
    settle,
    stable_shard,
    write_bytes,
    write_empty_parquet,
    write_json,
)
from model.data import RECORD_SCHEMA, records_dir

from .annotations import (
    EXAMPLE_NAMES,
    AnnotationFile,
    Candidate,
    CaptionRejected,
    DeadLetter,
    RefusedNarrative,
    annotation_file,
    coco_year,
    gather_narratives,
    iter_lines,
    parse_coco,
    parse_narrative,
    preview,
)
from .config import IngestConfig
from .images import ImageSettings, ProcessedImage, Rejected, process_image
from .layout import counts_path, dead_letter_dir, dead_letter_file, source_records_dir

log = logging.getLogger(__name__)
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


def _count(source: str, split: str, unit: str, outcome: str, n: int = 1):
    return counted((source, split, unit, outcome), n)


def _dead(letter: DeadLetter):
    return DEAD, letter


class ParseCocoPart(beam.DoFn):
    """(COCO file, part, parts) -> the candidates of the file whose image id hashes to `part`, and from part 0
    the file's dead letters and counts. Every part parses the whole file (its checks need it all) and keeps
    only its own images' captions. A part that cannot read the file yields nothing but from part 0: the
    images it misses leave the counts short, which stops the run (`split_counts`)."""

    def __init__(self, max_caption_chars: int):
        self.max_caption_chars = max_caption_chars

    def process(self, element: tuple[AnnotationFile, int, int]):
        file, part, parts = element
        try:
            candidates, dead, counts = parse_coco(
                lambda: FileSystems.open(file.path),
                file,
                max_caption_chars=self.max_caption_chars,
                keep=lambda image_id: stable_shard(str(image_id), parts) == part,
            )
        except OSError as error:
            if part == 0:
                yield _dead(DeadLetter(file.source, file.split, "read", f"cannot read: {error}", file.name, {}))
                yield _count(file.source, file.split, "files", "in")
                yield _count(file.source, file.split, "files", "rejected")
            return
        if part == 0:
            log.info("%s: %d images, %d rejected records", file.path, counts[("images", "in")], len(dead))
            for letter in dead:
                yield _dead(letter)
            for (unit, outcome), n in counts.items():
                yield _count(file.source, file.split, unit, outcome, n)
        for candidate in candidates:
            yield RECORD, candidate


class ReadNarratives(beam.DoFn):
    """A Localized Narratives JSONL file -> (RECORD, ((source, split, image_id), Narrative or RefusedNarrative))
    per line that names an image, dead letters and counts."""

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
                        if isinstance(rejected, CaptionRejected):  # its image is reported if it has no usable one
                            image_id = rejected.image_id
                            refused = RefusedNarrative(file.source, file.split, image_id, location, rejected.reason)
                            yield RECORD, ((file.source, file.split, image_id), refused)
                        continue
                    yield RECORD, ((file.source, file.split, narrative.image_id), narrative)
        except OSError as error:  # unreadable mid-way: the lines read so far stand, the file is reported
            yield _dead(DeadLetter(file.source, file.split, "read", f"cannot read: {error}", file.name, {}))
            yield _count(file.source, file.split, "files", "in")
            yield _count(file.source, file.split, "files", "rejected")
        else:
            yield _count(file.source, file.split, "files", "in")
            yield _count(file.source, file.split, "files", "parsed")
        log.info("%s: %d narratives, %d rejected", file.path, counts["in"] - counts["rejected"], counts["rejected"])
        for outcome, n in counts.items():
            yield _count(file.source, file.split, "annotations", outcome, n)


class GatherNarratives(beam.DoFn):
    def process(self, keyed):
        (source, split, _), lines = keyed
        narratives = [x for x in lines if not isinstance(x, RefusedNarrative)]
        refused = [x for x in lines if isinstance(x, RefusedNarrative)]
        candidate, dead = gather_narratives(narratives, refused)
        yield _count(source, split, "images", "in")
        if candidate is None:  # every narrative refused: the image is a dead letter (its lines already are)
            yield _count(source, split, "images", "rejected")
        else:
            yield RECORD, candidate
            if duplicates := len(dead):
                yield _count(source, split, "annotations", "rejected", duplicates)
        for letter in dead:
            yield _dead(letter)


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
            if not c.captions:  # the whole class: nothing a model could learn from is never a record
                raise Rejected("caption", "no usable caption")
            image = process_image(read_image_file(c), settings=self.settings)
        except Rejected as rejected:
            record = {"image_id": c.image_id, "image_path": c.image_name, "captions": list(c.captions)}
            yield _dead(DeadLetter(c.source, c.split, rejected.stage, rejected.reason, c.location, preview(record)))
            yield _count(c.source, c.split, "images", "rejected")
            yield _count(c.source, c.split, "annotations", "rejected", len(c.captions))
            return
        self.done += 1
        if self.done % PROGRESS_EVERY == 0:
            log.info("ingest: %d images processed by this worker", self.done)
        yield RECORD, record_row(c, image)
        yield _count(c.source, c.split, "images", "written")
        yield _count(c.source, c.split, "annotations", "written", len(c.captions))


def relative_records_dir(record: dict) -> str:
    return records_dir("", record["source"], record["split"])


def relative_dead_letter_file(letter: DeadLetter) -> str:
    return dead_letter_file("", letter.source)


def build(pipeline: beam.Pipeline, config: IngestConfig, files: list[AnnotationFile], staging: str) -> None:
    """Add the ingest transforms for `files` to `pipeline`, writing under `staging`."""
    coco = [f for f in files if f.source == "coco"]
    narrative_files = [f for f in files if f.source != "coco"]
    candidates, outcomes = {}, []  # candidates: per kind of file, each processed where it is made
    if coco:
        parts = config.coco_file_parts
        parsed = (
            pipeline
            | "COCO file parts" >> beam.Create([(f, part, parts) for f in coco for part in range(parts)])
            | "Spread parts" >> beam.Reshuffle()
            | "Parse COCO" >> beam.ParDo(ParseCocoPart(config.max_caption_chars))
        )
        candidates["COCO"] = select(parsed, RECORD, "COCO candidates")
        outcomes.append(parsed)
    if narrative_files:
        read = (
            pipeline
            | "LN files" >> beam.Create(narrative_files)
            | "Read LN" >> beam.ParDo(ReadNarratives(config.max_caption_chars))
        )
        gathered = (
            select(read, RECORD, "LN lines")
            | "Group LN by image" >> beam.GroupByKey()
            | "Gather LN" >> beam.ParDo(GatherNarratives())
        )
        candidates["LN"] = select(gathered, RECORD, "LN candidates")
        outcomes.extend([read, gathered])

    rows = []  # not flattened: a local runner would hold a Flatten's inputs whole
    for kind, found in candidates.items():
        processed = found | f"Process {kind} images" >> beam.ParDo(ProcessImage(config.image_settings))
        rows.append(select(processed, RECORD, f"{kind} records"))
        outcomes.append(processed)
    records = tuple(rows) | "Write records" >> WriteParquetShards(
        staging=staging,
        folder_of=relative_records_dir,
        schema=RECORD_SCHEMA,
        sort_key=lambda record: record["image_id"],
        shard_bytes=config.shard_bytes,
        rows_per_group=ROWS_PER_ROW_GROUP,
    )
    dead = select_all(outcomes, DEAD, "Dead letters") | "Write dead letters" >> WriteFiles(
        staging=staging,
        path_of=relative_dead_letter_file,
        render=lambda _, letters: json_lines(
            letters, sort_key=lambda d: (d.split, d.location, d.stage, d.reason), to_json=lambda d: d.to_json()
        ),
    )
    counts = tuple(outcomes) | "Write counts" >> WriteCounts(staging)
    join_sinks([records, dead, counts])


def split_counts(totals: dict[tuple, int], source: str, split: str) -> dict[str, dict[str, int]]:
    """Counts of one source and split per unit, each checked: in = ok + rejected."""
    counts = {}
    for unit, ok in (("files", "parsed"), ("annotations", "written"), ("images", "written")):
        counted_ = {outcome: totals.get((source, split, unit, outcome), 0) for outcome in ("in", ok, "rejected")}
        if counted_["in"] != counted_[ok] + counted_["rejected"]:
            raise RuntimeError(f"ingest counts do not add up for {source}/{split}/{unit}: {counted_}")
        counts[unit] = counted_
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
            "shard_bytes": config.shard_bytes,
            "splits": {split: split_counts(totals, source, split) for split in splits},
        }
    return summaries


def run_ingest(*, config: IngestConfig) -> dict:
    """Run the pipeline into a staging folder, check it, then publish records, dead letters and counts (last)
    for each source; return {"sources": {source: counts}, ...}."""
    started = time.perf_counter()
    files = discover(config)
    root = config.output_root
    staging = new_staging(root, "ingest-" + "-".join(config.sources))
    pipeline = make_pipeline(
        config.runner, config.beam_args, local_workers=config.local_workers, local_mode=config.local_mode
    )
    build(pipeline, config, files, staging)
    finish(pipeline.run(), "ingest")
    settle(staging)
    summaries = summarise(read_counts(staging), config, files)
    for source, summary in summaries.items():
        if not exists(dead_letter_file(staging, source)):  # a source without rejections: an empty file
            write_bytes(dead_letter_file(staging, source), b"")
        for split in summary["splits"]:
            if not FileSystems.match([posixpath.join(records_dir(staging, source, split), "*.parquet")])[
                0
            ].metadata_list:
                write_empty_parquet(records_dir(staging, source, split), RECORD_SCHEMA)
        write_json(counts_path(staging, source), summary)
    check_written(
        {
            records_dir(staging, source, split): counts["images"]["written"]
            for source, summary in summaries.items()
            for split, counts in summary["splits"].items()
        },
        "ingest",
    )
    publish(
        staging,
        root,
        outputs=[out for s in config.sources for out in (source_records_dir("", s), dead_letter_dir("", s))],
        markers=[counts_path("", source) for source in config.sources],
    )
    seconds = time.perf_counter() - started
    images = {
        outcome: sum(s["images"][outcome] for summary in summaries.values() for s in summary["splits"].values())
        for outcome in ("in", "written", "rejected")
    }
    return {"output_root": root, "seconds": round(seconds, 3), "images": images, "sources": summaries}

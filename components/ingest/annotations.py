"""Annotation files: finding them, parsing them, checking every record.

Sources, their published file names, and where their images are (relative to the input root):

    coco            annotations/captions_{train,val}{2014,2017}.json          {split}{year}/<file_name>
    ln_coco         annotations/coco_{train,val}_localized_narratives[-k-of-n].jsonl
                                                                              {split}2017/<12-digit id>.jpg
    ln_open_images  annotations/open_images_{train,validation}[_v6]_localized_narratives[-k-of-n].jsonl
                                                                              open_images/{split}/<id>.jpg

`{split}` is the word in the annotation file's name. Functions here are pure (bytes in, objects out)
so that the Beam pipeline and a plain loop share them; a bad record raises or yields `Rejected`
details, never stops a file.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import BinaryIO

import ijson

from .images import Rejected

ANNOTATION_FILES = {
    "coco": re.compile(r"captions_(?P<split>train|val)(?P<year>\d{4})\.json"),
    "ln_coco": re.compile(r"coco_(?P<split>train|val)_localized_narratives(?:-\d+-of-\d+)?\.jsonl"),
    "ln_open_images": re.compile(
        r"open_images_(?P<split>train|validation|val|test)(?:_v\d+)?_localized_narratives(?:-\d+-of-\d+)?\.jsonl"
    ),
}
EXAMPLE_NAMES = {
    "coco": "captions_train2017.json",
    "ln_coco": "coco_train_localized_narratives.jsonl",
    "ln_open_images": "open_images_train_v6_localized_narratives-00000-of-00010.jsonl",
}
SPLIT_OF_WORD = {"train": "train", "val": "val", "validation": "val"}  # Open Images "test" has no split here
DEFAULT_IMAGE_DIRS = {"coco": "{split}{year}", "ln_coco": "{split}2017", "ln_open_images": "open_images/{split}"}
IMAGE_ID_PATTERNS = {"ln_coco": re.compile(r"\d{1,12}"), "ln_open_images": re.compile(r"[0-9A-Za-z_-]{1,64}")}
PLAIN_FILE_NAME = re.compile(r"[^/\\]+")  # no folders, so a record cannot point outside its image folder
PREVIEW_CHARS = 300


# Paths are kept relative to the input root (`name`, `image_folder`, `image_name`) wherever they reach an
# output, so the outputs do not depend on where a checkout lives; `root` makes them whole for reading.


@dataclass(frozen=True)
class AnnotationFile:
    source: str
    split: str  # "train" | "val"
    root: str  # the input root
    name: str  # the annotation file, relative to the root
    image_folder: str  # the folder of its images, relative to the root

    @property
    def path(self) -> str:
        return posixpath.join(self.root, self.name)


@dataclass(frozen=True)
class Candidate:
    """One image with all its captions, before its file is read."""

    source: str
    split: str
    image_id: str
    file_name: str
    root: str
    image_name: str  # relative to the root
    captions: tuple[str, ...]
    location: str  # where the image was declared: "<file> images[i]" or "<file>:<line>"

    @property
    def image_path(self) -> str:
        return posixpath.join(self.root, self.image_name)


@dataclass(frozen=True)
class Narrative:
    """One parsed Localized Narratives line."""

    source: str
    split: str
    image_id: str
    annotator_id: int | None
    caption: str
    file: AnnotationFile
    line: int

    @property
    def location(self) -> str:
        return f"{self.file.name}:{self.line}"


@dataclass(frozen=True)
class DeadLetter:
    """A rejected input: what it was, where it came from, the stage that refused it and why."""

    source: str
    split: str
    stage: str  # parse | schema | caption | duplicate | join | read | size | decode
    reason: str
    location: str
    record: dict

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, default=str)


def preview(value, limit: int = PREVIEW_CHARS):
    """A JSON-able copy of a record for the dead-letter file, long strings cut to `limit` characters."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"... [{len(value)} characters]"
    if isinstance(value, dict):
        return {str(k): preview(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [preview(v, limit) for v in value[:20]] + ([f"... [{len(value)} items]"] if len(value) > 20 else [])
    if isinstance(value, bytes):
        return preview(value.decode("utf-8", errors="backslashreplace"), limit)
    return value


# ---------------------------------------------------------------------------------------------
# Finding the files.


def annotation_file(source: str, path: str, *, input_root: str, image_dirs: dict[str, str]) -> AnnotationFile | None:
    """The annotation file at `path` if its name is one of `source`'s published names (and a usable split)."""
    match = ANNOTATION_FILES[source].fullmatch(posixpath.basename(path))
    if not match or match["split"] not in SPLIT_OF_WORD:
        return None
    template = image_dirs.get(source, DEFAULT_IMAGE_DIRS[source])
    image_folder = template.format(split=match["split"], year=match.groupdict().get("year") or "")
    name = path.removeprefix(input_root.rstrip("/") + "/")
    return AnnotationFile(source, SPLIT_OF_WORD[match["split"]], input_root, name, image_folder)


def coco_year(path: str) -> int:
    return int(ANNOTATION_FILES["coco"].fullmatch(posixpath.basename(path))["year"])


# ---------------------------------------------------------------------------------------------
# Checking values.


def type_problems(record: dict, expected: dict[str, type]) -> list[str]:
    """What is missing or of the wrong type in `record` (bool is not accepted as an int)."""
    problems = []
    for key, kind in expected.items():
        if key not in record:
            problems.append(f"missing key {key!r}")
        elif not isinstance(record[key], kind) or (kind is int and isinstance(record[key], bool)):
            problems.append(f"{key!r} is {type(record[key]).__name__}, expected {kind.__name__}")
    return problems


def no_usable_caption(problems: list[str]) -> str:
    return f"no usable caption: every caption was refused ({'; '.join(problems)})"


def clean_caption(text: str, *, max_chars: int) -> str:
    """Whitespace runs (newlines, tabs) become one space; empty or over-long captions are rejected."""
    cleaned = " ".join(text.split())
    if not cleaned:
        raise Rejected("caption", "empty caption" if not text else "caption is only whitespace")
    if len(cleaned) > max_chars:
        raise Rejected("caption", f"caption of {len(cleaned)} characters exceeds max_caption_chars={max_chars}")
    return cleaned


# ---------------------------------------------------------------------------------------------
# COCO captions JSON: one file holds the split's image list and its captions.

Counts = Counter  # (unit, outcome) -> n for one source and split; unit: files | annotations | images


def parse_coco(
    open_file: Callable[[], BinaryIO],
    file: AnnotationFile,
    *,
    max_caption_chars: int,
    keep: Callable[[int], bool] = lambda image_id: True,
) -> tuple[Iterator[Candidate], list[DeadLetter], Counts]:
    """A COCO captions file -> (candidates of the images `keep` accepts, dead letters, counts of the whole
    file). Keeps the first of duplicated ids.

    The file is streamed (ijson), never held: `open_file` is called twice, once to check the whole
    file and index its images, once for its annotations, so the keys may come in any order. What
    stays in memory is the join: each image's id and file name and each annotation's id (for the
    checks), and the captions of the kept images (at COCO-2014 train some 83k images and 414k
    captions), not the parsed document (some 4-5x the file's size as Python objects). The candidates
    are made as they are iterated, after the dead letters and counts are complete.
    """
    dead: list[DeadLetter] = []
    counts: Counts = Counter({("files", "in"): 1})

    def reject(stage: str, reason: str, location: str, record) -> None:
        dead.append(DeadLetter(file.source, file.split, stage, reason, location, preview(record)))

    def refuse_file(stage: str, reason: str) -> tuple[Iterator[Candidate], list[DeadLetter], Counts]:
        """The whole file as one dead letter: nothing read from it is kept."""
        letter = DeadLetter(file.source, file.split, stage, reason, file.name, {"file": file.name})
        return iter(()), [letter], Counter({("files", "in"): 1, ("files", "rejected"): 1})

    images: dict[int, tuple[int, str]] = {}  # id -> (index in the list, file name), first entry wins
    owner_of_file: dict[str, int] = {}
    rejected_images: dict[int, str] = {}

    def index_image(index: int, entry) -> None:
        where = f"{file.name} images[{index}]"
        counts[("images", "in")] += 1
        problems = type_problems(entry, {"id": int, "file_name": str}) if isinstance(entry, dict) else ["not an object"]
        if not problems and not PLAIN_FILE_NAME.fullmatch(entry["file_name"]):
            problems = [f"file_name {entry['file_name']!r} is not a plain file name"]
        if problems:
            reason = "image entry: " + "; ".join(problems)
            if isinstance(entry, dict) and isinstance(entry.get("id"), int):
                rejected_images.setdefault(entry["id"], reason)
        elif entry["id"] in images:
            reason = f"image id {entry['id']} listed again (first at images[{images[entry['id']][0]}]); first kept"
        elif entry["file_name"] in owner_of_file:
            reason = f"file {entry['file_name']} already belongs to image id {owner_of_file[entry['file_name']]}"
            rejected_images.setdefault(entry["id"], reason)
        else:
            images[entry["id"]] = (index, entry["file_name"])
            owner_of_file[entry["file_name"]] = entry["id"]
            return
        counts[("images", "rejected")] += 1
        reject("schema" if problems else "duplicate", reason, where, entry)

    try:
        with open_file() as stream:
            kinds = coco_shape(stream, on_image=index_image)
    except ijson.JSONError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        near = f" near {lines[1]!r}" if len(lines) > 1 else ""
        return refuse_file("parse", f"not a valid JSON file: {lines[0] if lines else error}{near}")
    shape = (
        ["the top level must be an object"]
        if kinds.get("") != "start_map"
        else [f"{key!r} must be a list" for key in ("images", "annotations") if kinds.get(key) != "start_array"]
    )
    if shape:
        return refuse_file("schema", "not a COCO captions file: " + "; ".join(shape))
    counts[("files", "parsed")] = 1
    kept = {image_id for image_id in images if keep(image_id)}  # asked once an image, not once a caption

    captions: dict[int, list[str]] = {}  # of the kept images
    captioned: set[int] = set()  # every image with a usable caption
    caption_problems: dict[int, list[str]] = {}  # image id -> why each of its captions was refused
    first_annotation: dict[int, int] = {}

    def join_annotation(index: int, annotation) -> None:
        where = f"{file.name} annotations[{index}]"
        counts[("annotations", "in")] += 1
        try:
            problems = (
                type_problems(annotation, {"id": int, "image_id": int, "caption": str})
                if isinstance(annotation, dict)
                else ["not an object"]
            )
            if problems:
                raise Rejected("schema", "annotation: " + "; ".join(problems))
            annotation_id, image_id = annotation["id"], annotation["image_id"]
            if annotation_id in first_annotation:
                raise Rejected(
                    "duplicate",
                    f"annotation id {annotation_id} repeated (first at annotations[{first_annotation[annotation_id]}])",
                )
            first_annotation[annotation_id] = index
            if image_id not in images:
                raise Rejected(
                    "join",
                    f"image id {image_id} was rejected: {rejected_images[image_id]}"
                    if image_id in rejected_images
                    else f"image id {image_id} is not in the file's images list",
                )
            caption = clean_caption(annotation["caption"], max_chars=max_caption_chars)  # before the image gets a list
            captioned.add(image_id)
            if image_id in kept:
                captions.setdefault(image_id, []).append(caption)
        except Rejected as rejected:
            counts[("annotations", "rejected")] += 1
            reject(rejected.stage, rejected.reason, where, annotation)
            if rejected.stage == "caption":
                caption_problems.setdefault(annotation["image_id"], []).append(f"{where}: {rejected.reason}")

    with open_file() as stream:
        for index, annotation in enumerate(ijson.items(stream, "annotations.item", use_float=True)):
            join_annotation(index, annotation)

    for image_id, (index, file_name) in images.items():
        if image_id not in captioned:
            counts[("images", "rejected")] += 1
            where, entry = f"{file.name} images[{index}]", {"id": image_id, "file_name": file_name}
            if problems := caption_problems.get(image_id):
                reject("caption", no_usable_caption(problems), where, entry)
            else:
                reject("join", f"image id {image_id} has no valid caption", where, entry)

    def candidates() -> Iterator[Candidate]:
        for image_id, (index, file_name) in images.items():
            if image_id in captions:
                yield Candidate(
                    source=file.source,
                    split=file.split,
                    image_id=str(image_id),
                    file_name=file_name,
                    root=file.root,
                    image_name=posixpath.join(file.image_folder, file_name),
                    captions=tuple(captions[image_id]),
                    location=f"{file.name} images[{index}]",
                )

    return candidates(), dead, counts


def coco_shape(stream: BinaryIO, *, on_image: Callable[[int, object], None]) -> dict[str, str]:
    """Parse a whole JSON document (raising ijson.JSONError if it is not one), calling `on_image(index, entry)`
    for each item of a top-level "images" list; returns the first parser event of the top level and of the
    top-level "images" and "annotations" values ("start_map" for an object, "start_array" for a list)."""
    kinds: dict[str, str] = {}
    events = ijson.parse(stream, use_float=True)
    images = 0
    for prefix, event, value in events:
        if prefix in ("", "images", "annotations"):
            kinds.setdefault(prefix, event)
        elif prefix == "images.item" and kinds.get("images") == "start_array":
            if event in ("start_map", "start_array"):  # build the item from its events (as ijson.items does)
                builder, end = ijson.ObjectBuilder(), event.replace("start", "end")
                while True:
                    builder.event(event, value)
                    if (prefix, event) == ("images.item", end):
                        break
                    prefix, event, value = next(events)
                on_image(images, builder.value)
            else:
                on_image(images, value)
            images += 1
    return kinds


# ---------------------------------------------------------------------------------------------
# Localized Narratives JSONL: one narrative per line; an image may have several (one per annotator).


def parse_narrative(raw: bytes, file: AnnotationFile, *, line: int, max_caption_chars: int) -> Narrative:
    """One JSONL line -> a Narrative; raises Rejected naming what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Rejected("parse", f"not UTF-8: byte 0x{raw[error.start]:02x} at offset {error.start}") from error
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise Rejected("parse", f"invalid JSON: {error}") from error
    if not isinstance(record, dict):
        raise Rejected("schema", f"a narrative must be a JSON object, got {type(record).__name__}")
    problems = type_problems(record, {"image_id": str, "caption": str})
    annotator = record.get("annotator_id")
    if annotator is not None and (not isinstance(annotator, int) or isinstance(annotator, bool)):
        problems.append(f"'annotator_id' is {type(annotator).__name__}, expected int")
    if problems:
        raise Rejected("schema", "narrative: " + "; ".join(problems))
    if not IMAGE_ID_PATTERNS[file.source].fullmatch(record["image_id"]):
        raise Rejected("schema", f"image_id {record['image_id']!r} is not a {file.source} image id")
    try:
        caption = clean_caption(record["caption"], max_chars=max_caption_chars)
    except Rejected as rejected:
        raise CaptionRejected(rejected.reason, image_id=record["image_id"]) from rejected
    return Narrative(
        source=file.source,
        split=file.split,
        image_id=record["image_id"],
        annotator_id=annotator,
        caption=caption,
        file=file,
        line=line,
    )


class CaptionRejected(Rejected):
    """A narrative whose caption is unusable, of a known image: the image is reported if it has no other."""

    def __init__(self, reason: str, *, image_id: str):
        super().__init__("caption", reason)
        self.image_id = image_id


def narrative_file_name(source: str, image_id: str) -> str:
    """LN-COCO names COCO 2017 images by their zero-padded id; Open Images by the id itself."""
    return f"{int(image_id):012d}.jpg" if source == "ln_coco" else f"{image_id}.jpg"


@dataclass(frozen=True)
class RefusedNarrative:
    """Where a narrative of an image was refused for its caption, and why (its own dead letter is written apart)."""

    source: str
    split: str
    image_id: str
    location: str
    reason: str


def gather_narratives(
    narratives: list[Narrative], refused: list[RefusedNarrative] = ()
) -> tuple[Candidate | None, list[DeadLetter]]:
    """All narratives of one image -> its candidate (file order) and the exact repeats it dropped; with no usable
    narrative (only refused ones), no candidate and one dead letter for the image giving every reason."""
    if not narratives:
        ordered = sorted(refused, key=lambda r: r.location)
        first = ordered[0]
        reason = no_usable_caption([f"{r.location}: {r.reason}" for r in ordered])
        record = {"image_id": first.image_id, "narratives": len(ordered)}
        return None, [DeadLetter(first.source, first.split, "caption", reason, first.location, record)]
    ordered = sorted(narratives, key=lambda n: (n.file.name, n.line))
    first = ordered[0]
    seen: dict[tuple, Narrative] = {}
    dead = []
    for narrative in ordered:
        key = (narrative.annotator_id, narrative.caption)
        if key in seen:
            reason = f"same narrative as {seen[key].location} (annotator {narrative.annotator_id}); first kept"
            dead.append(
                DeadLetter(
                    narrative.source,
                    narrative.split,
                    "duplicate",
                    reason,
                    narrative.location,
                    preview({"image_id": narrative.image_id, "caption": narrative.caption}),
                )
            )
        else:
            seen[key] = narrative
    file_name = narrative_file_name(first.source, first.image_id)
    candidate = Candidate(
        source=first.source,
        split=first.split,
        image_id=first.image_id,
        file_name=file_name,
        root=first.file.root,
        image_name=posixpath.join(first.file.image_folder, file_name),
        captions=tuple(n.caption for n in seen.values()),
        location=first.location,
    )
    return candidate, dead


def iter_lines(stream) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, bytes without the line ending) for each non-blank line of a binary stream."""
    for number, raw in enumerate(stream, 1):
        raw = raw.rstrip(b"\r\n")
        if raw.strip():
            yield number, raw

"""A raw-data folder in the COCO 2017 layout where every kind of bad input sits among good records.

Built in code at test time (no binary files in git). `write_bad_corpus(root)` returns the cases,
each naming the dead-letter stage and reason it must produce, and the image ids that must be written.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

RED, BLUE = (220, 30, 30), (30, 30, 220)
LONG_CAPTION = "long " * 1999 + "text!"  # 10,000 characters


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    split: str
    stage: str
    reason: str  # a fragment the dead-letter reason must contain
    location: str  # a fragment of the dead-letter location ("images[3]", ".jsonl:4")


@dataclass(frozen=True)
class Corpus:
    root: Path
    cases: tuple[Case, ...]
    written: dict[tuple[str, str], set[str]]  # (source, split) -> image ids that must become records
    captions: dict[tuple[str, str, str], int]  # (source, split, image id) -> captions its record must hold


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def two_colour(width: int, height: int) -> Image.Image:
    """Left half red, right half blue."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = RED
    pixels[:, width // 2 :] = BLUE
    return Image.fromarray(pixels)


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height RGB pixels, with almost no pixel data: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def corrupt_png() -> bytes:
    """A valid PNG signature and header, then compressed pixel data with its bytes scrambled."""
    data = bytearray(encode(two_colour(64, 48), "PNG"))
    start = data.index(b"IDAT") + 4
    for i in range(start + 2, min(start + 40, len(data) - 16)):
        data[i] ^= 0xA5
    return bytes(data)


def exif_rotated_jpeg() -> bytes:
    """Stored 60x40 with red on the left; EXIF orientation 6 (turn 90 degrees clockwise) shows it 40x60, red on top."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(two_colour(60, 40), "JPEG", quality=95, exif=exif.tobytes())


def _images() -> dict[str, bytes]:
    """train2017 file name -> bytes; what each is for is in write_bad_corpus."""
    good = encode(two_colour(64, 48), "JPEG", quality=90)
    rgba = two_colour(64, 48).convert("RGBA")
    rgba.putalpha(128)
    palette = two_colour(64, 48).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    palette.info["transparency"] = 0
    grey16 = Image.fromarray(np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (48, 1)))
    return {
        "000000000001.jpg": good,
        "000000000002.jpg": b"\xff\xd8\xff\xe0" + bytes(np.random.default_rng(0).integers(0, 256, 3000, np.uint8)),
        "000000000003.jpg": good[: len(good) // 2],
        "000000000004.png": corrupt_png(),
        "000000000005.png": (png := encode(two_colour(64, 48), "PNG"))[: len(png) // 2],
        "000000000006.jpg": b"",
        # 000000000007.jpg is missing on purpose
        "000000000008.jpg": good,
        "000000000010.png": encode(Image.new("RGB", (1, 1), RED), "PNG"),
        "000000000011.png": png_declaring(100_000, 100_000),
        "000000000012.jpg": encode(two_colour(64, 48).convert("L"), "JPEG"),
        "000000000013.jpg": encode(two_colour(64, 48).convert("CMYK"), "JPEG"),
        "000000000014.png": encode(rgba, "PNG"),
        "000000000015.png": encode(palette, "PNG"),
        "000000000016.png": encode(grey16, "PNG"),
        "000000000017.jpg": exif_rotated_jpeg(),
        "000000000018.jpg": good,
    }


def write_bad_corpus(root: Path) -> Corpus:
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "train2017").mkdir(exist_ok=True)
    (root / "val2017").mkdir(exist_ok=True)
    for name, data in _images().items():
        (root / "train2017" / name).write_bytes(data)
    (root / "val2017" / "000000000100.jpg").write_bytes(encode(two_colour(64, 48), "JPEG"))
    (root / "train2017" / "000000000033.jpg").write_bytes(encode(two_colour(64, 48), "JPEG"))  # a good image...

    def image(image_id, file_name):
        return {"id": image_id, "file_name": file_name, "width": 64, "height": 48}

    images = [
        image(1, "000000000001.jpg"),
        image(2, "000000000002.jpg"),  # corrupt JPEG
        image(3, "000000000003.jpg"),  # truncated JPEG
        image(4, "000000000004.png"),  # corrupt PNG
        image(5, "000000000005.png"),  # truncated PNG
        image(6, "000000000006.jpg"),  # zero bytes
        image(7, "000000000007.jpg"),  # missing file
        image(8, "000000000008.jpg"),
        image(8, "000000000008.jpg"),  # image listed twice
        image(9, "000000000001.jpg"),  # a second id for image 1's file
        image(10, "000000000010.png"),  # 1x1
        image(11, "000000000011.png"),  # decompression bomb
        image(12, "000000000012.jpg"),  # grey
        image(13, "000000000013.jpg"),  # CMYK
        image(14, "000000000014.png"),  # RGBA
        image(15, "000000000015.png"),  # palette with transparency
        image(16, "000000000016.png"),  # 16-bit grey
        image(17, "000000000017.jpg"),  # EXIF-rotated
        image(18, "000000000018.jpg"),  # no captions at all
        {"id": 30, "width": 64},  # missing file_name
        {"id": "31", "file_name": "000000000001.jpg"},  # id of the wrong type
        image(32, "../../etc/passwd"),  # a path, not a file name
        image(33, "000000000033.jpg"),  # ...whose every caption is refused
    ]
    annotations = [
        {"id": 100 + i, "image_id": i, "caption": f"a red and blue picture number {i}"} for i in range(1, 18)
    ]
    annotations += [
        {"id": 200, "image_id": 1, "caption": "a second caption for the first picture"},
        {"id": 201, "image_id": 1, "caption": ""},
        {"id": 202, "image_id": 1, "caption": "  \n\t "},
        {"id": 203, "image_id": 1, "caption": LONG_CAPTION},
        {"id": 200, "image_id": 8, "caption": "this annotation id was used before"},
        {"id": 204, "image_id": 999, "caption": "an image that does not exist"},
        {"id": 205, "image_id": 1},
        {"id": 206, "image_id": "1", "caption": "image id as text"},
        {"id": 207, "image_id": 9, "caption": "belongs to the rejected second id of image 1"},
        {"id": 208, "image_id": 33, "caption": ""},
        {"id": 209, "image_id": 33, "caption": " \n "},
    ]
    (root / "annotations" / "captions_train2017.json").write_text(
        json.dumps({"info": {}, "licenses": [], "images": images, "annotations": annotations})
    )
    (root / "annotations" / "captions_val2017.json").write_text(
        json.dumps(
            {
                "images": [image(100, "000000000100.jpg")],
                "annotations": [{"id": 1, "image_id": 100, "caption": "a picture from the validation split"}],
            }
        )
    )

    def narrative(image_id, caption, annotator=1):
        record = {"dataset_id": "mscoco_train2017", "image_id": image_id, "annotator_id": annotator, "caption": caption}
        return json.dumps({**record, "timed_caption": [], "traces": [], "voice_recording": ""}).encode()

    lines = [
        narrative("1", "In this image we can see red on the left and blue on the right."),  # line 1
        narrative("1", "A picture in two halves, red and blue.", annotator=2),  # line 2
        narrative("1", "In this image we can see red on the left and blue on the right."),  # 3: exact repeat
        b'{"image_id": "1", "caption": "caf\xe9 in Latin-1"}',  # 4: not UTF-8
        b'{"image_id": "1", "caption": ',  # 5: invalid JSON
        json.dumps({"image_id": "1", "annotator_id": 3}).encode(),  # 6: no caption
        json.dumps({"image_id": 1, "caption": "image id as a number"}).encode(),  # 7: wrong type
        narrative("1", " \t ", annotator=4),  # 8: whitespace caption
        narrative("1", LONG_CAPTION, annotator=5),  # 9: 10k characters
        narrative("7", "The picture file of this one is missing."),  # 10: missing image file
        narrative("17", "A photo stored sideways."),  # 11: EXIF-rotated
        b"",  # 12: a blank line is not a record
        narrative("../1", "an id that is a path"),  # 13
        narrative("33", "   "),  # 14: the only narrative of image 33, and unusable
    ]
    (root / "annotations" / "coco_train_localized_narratives.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (root / "annotations" / "coco_val_localized_narratives.jsonl").write_bytes(
        narrative("100", "A validation picture.") + b"\n"
    )

    coco, ln = ("coco", "train"), ("ln_coco", "train")
    cases = (
        Case("corrupt JPEG", *coco, "decode", "not a readable image", "images[1]"),
        Case("truncated JPEG", *coco, "decode", "truncated", "images[2]"),
        Case("corrupt PNG", *coco, "decode", "corrupt image data", "images[3]"),
        Case("truncated PNG", *coco, "decode", "truncated", "images[4]"),
        Case("zero-byte file", *coco, "read", "empty file (0 bytes)", "images[5]"),
        Case("missing image file", *coco, "read", "image file not found", "images[6]"),
        Case("image listed twice", *coco, "duplicate", "image id 8 listed again", "images[8]"),
        Case("image file under two ids", *coco, "duplicate", "already belongs to image id 1", "images[9]"),
        Case("1x1 image", *coco, "size", "1x1, smaller than min_side", "images[10]"),
        Case("decompression bomb", *coco, "size", "decompression bomb", "images[11]"),
        Case("image without captions", *coco, "join", "image id 18 has no valid caption", "images[18]"),
        Case("image entry missing keys", *coco, "schema", "missing key 'file_name'", "images[19]"),
        Case("image entry wrong types", *coco, "schema", "'id' is str, expected int", "images[20]"),
        Case("image file name is a path", *coco, "schema", "is not a plain file name", "images[21]"),
        Case("empty caption", *coco, "caption", "empty caption", "annotations[18]"),
        Case("whitespace caption", *coco, "caption", "only whitespace", "annotations[19]"),
        Case("10k-character caption", *coco, "caption", "caption of 10000 characters exceeds", "annotations[20]"),
        Case("duplicate annotation id", *coco, "duplicate", "annotation id 200 repeated", "annotations[21]"),
        Case("annotation for an unknown image", *coco, "join", "image id 999 is not in", "annotations[22]"),
        Case("annotation missing keys", *coco, "schema", "missing key 'caption'", "annotations[23]"),
        Case("annotation wrong types", *coco, "schema", "'image_id' is str, expected int", "annotations[24]"),
        Case("annotation of a rejected image", *coco, "join", "image id 9 was rejected", "annotations[25]"),
        Case("repeated narrative", *ln, "duplicate", "same narrative as", ".jsonl:3"),
        Case("non-UTF-8 line", *ln, "parse", "not UTF-8: byte 0xe9", ".jsonl:4"),
        Case("invalid JSON line", *ln, "parse", "invalid JSON", ".jsonl:5"),
        Case("narrative missing keys", *ln, "schema", "missing key 'caption'", ".jsonl:6"),
        Case("narrative wrong types", *ln, "schema", "'image_id' is int, expected str", ".jsonl:7"),
        Case("whitespace narrative", *ln, "caption", "only whitespace", ".jsonl:8"),
        Case("10k-character narrative", *ln, "caption", "caption of 10000 characters exceeds", ".jsonl:9"),
        Case("narrative of a missing image", *ln, "read", "image file not found", ".jsonl:10"),
        Case("narrative id that is a path", *ln, "schema", "is not a ln_coco image id", ".jsonl:13"),
        Case("every caption refused", *coco, "caption", "annotations[26]: empty caption", "images[22]"),
        Case(
            "every caption refused, reasons",
            *coco,
            "caption",
            "annotations[27]: caption is only whitespace",
            "images[22]",
        ),
        Case("every narrative refused", *ln, "caption", "no usable caption", ".jsonl:14"),
    )
    written = {
        coco: {"1", "8", "12", "13", "14", "15", "16", "17"},
        ("coco", "val"): {"100"},
        ln: {"1", "17"},
        ("ln_coco", "val"): {"100"},
    }
    captions = {("coco", "train", "1"): 2, ("coco", "train", "8"): 1, ("ln_coco", "train", "1"): 2}
    return Corpus(root=root, cases=cases, written=written, captions=captions)

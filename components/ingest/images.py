"""Per-image work: decode, apply EXIF orientation, convert to RGB, resize to a square, encode PNG.

Pure functions of bytes and settings, shared by the Beam pipeline and the plain-loop benchmark.
Every way an input can be unusable raises `Rejected` with the stage and a reason a person can act on.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

RESIZE_MODES = ("stretch", "center_crop")
# Raster formats photo datasets ship in (the JPEG plugin also opens multi-picture MPO files).
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
PNG_COMPRESS_LEVEL = 1  # zlib level: on 128 px photos level 6 is 3x slower for files only ~6% smaller


class Rejected(Exception):
    """An input that cannot become a record: `stage` is where it failed, the message says why."""

    def __init__(self, stage: str, reason: str):
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


@dataclass(frozen=True)
class ImageSettings:
    size: int  # side of the square output, pixels
    resize: str = "stretch"  # "stretch": the whole image, aspect not kept (the authors'); "center_crop"
    min_side: int = 32  # smaller originals are rejected: upscaled thumbnails teach nothing
    max_pixels: int = 89_478_485  # declared width x height above this is a decompression bomb (Pillow's limit)


@dataclass(frozen=True)
class ProcessedImage:
    png: bytes
    width: int
    height: int
    original_width: int  # as displayed, after EXIF orientation
    original_height: int


# EXIF orientations that turn the picture by 90 degrees (width and height swap when displayed).
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)


def decode(data: bytes, *, settings: ImageSettings) -> tuple[Image.Image, tuple[int, int]]:
    """Bytes -> (upright RGB image, its full-resolution size as displayed), checking the declared size first."""
    if not data:
        raise Rejected("read", "empty file (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as error:  # Pillow refused it at its own limit, above ours: quote ours
        declared = re.search(r"\((\d+) pixels\)", str(error))
        size = f"declares {declared[1]} pixels" if declared else "declares more pixels than Pillow opens"
        raise Rejected("size", f"decompression bomb: {size} > max_image_pixels={settings.max_pixels}") from error
    except UnidentifiedImageError as error:
        raise Rejected("decode", f"not an image in a readable format ({', '.join(ALLOWED_FORMATS)})") from error
    except Exception as error:  # Pillow raises many types for unreadable headers
        raise Rejected("decode", f"not a readable image ({describe(error)})") from error
    width, height = image.size
    if width * height > settings.max_pixels:
        raise Rejected(
            "size",
            f"decompression bomb: declares {width}x{height} = {width * height} pixels "
            f"> max_image_pixels={settings.max_pixels}",
        )
    if min(width, height) < settings.min_side:
        raise Rejected("size", f"image is {width}x{height}, smaller than min_side={settings.min_side}")
    try:
        displayed = (height, width) if image.getexif().get(0x0112) in TRANSPOSING_ORIENTATIONS else (width, height)
        # JPEG only: the decoder scales by 1/2..1/8 in the DCT while staying >= 2x the output (faster, no alias).
        image.draft(None, (2 * settings.size, 2 * settings.size))
        image.load()
        return to_rgb(ImageOps.exif_transpose(image)), displayed
    except Rejected:
        raise
    except Exception as error:  # truncated or corrupt data surfaces here, as OSError, SyntaxError, ValueError...
        raise Rejected("decode", f"corrupt image data ({describe(error)})") from error


def describe(error: Exception) -> str:
    """ "Type: message" without object addresses, so the same bad input gives the same dead-letter text."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", f"{type(error).__name__}: {error}")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB: transparency over white, 16-bit scaled (not clipped) to 8 bits."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # Pillow's own conversion clips 16-bit values at 255 (a white image); keep the high byte instead.
        grey = (np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "F":
        raise Rejected("decode", "floating-point image (mode F): no defined 8-bit range")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def resize(image: Image.Image, *, size: int, mode: str) -> Image.Image:
    """Bilinear (antialiased) resize to size x size: "stretch" keeps all pixels, "center_crop" keeps the aspect."""
    if mode == "stretch":
        return image.resize((size, size), Image.Resampling.BILINEAR)
    if mode == "center_crop":
        return ImageOps.fit(image, (size, size), Image.Resampling.BILINEAR, centering=(0.5, 0.5))
    raise ValueError(f"resize must be one of {RESIZE_MODES}, got {mode!r}")


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def process_image(data: bytes, *, settings: ImageSettings) -> ProcessedImage:
    """The whole per-image step; raises `Rejected` for unusable input."""
    image, (original_width, original_height) = decode(data, settings=settings)
    out = resize(image, size=settings.size, mode=settings.resize)
    return ProcessedImage(
        png=encode_png(out),
        width=settings.size,
        height=settings.size,
        original_width=original_width,
        original_height=original_height,
    )

"""Scenes of simple coloured shapes: sampling, rendering, captioning, and checking.

A scene is a background colour and one or two shapes (kind, colour, size, cell of a 3x3
grid). Captions are generated from the scene, so every fact a caption states can be checked
against pixels: `caption_facts` parses a caption back into facts and `check_facts` tests
them on an image. The same check scores generated images, which is how the demo measures
whether a model follows its captions.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "purple": (140, 60, 190),
    "orange": (245, 140, 30),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
}
KINDS = ("circle", "square", "triangle")
SIZES = {"small": 0.16, "large": 0.28}  # side of the shape's bounding box, as a fraction of the canvas
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}

# 3x3 grid cells: (row, column) -> how captions name the place.
CELLS: dict[tuple[int, int], str] = {
    (0, 0): "top left",
    (0, 1): "top",
    (0, 2): "top right",
    (1, 0): "left",
    (1, 1): "center",
    (1, 2): "right",
    (2, 0): "bottom left",
    (2, 1): "bottom",
    (2, 2): "bottom right",
}
PLACE_PHRASES: dict[str, str] = {
    "top left": "in the top left corner",
    "top": "at the top",
    "top right": "in the top right corner",
    "left": "on the left",
    "center": "in the center",
    "right": "on the right",
    "bottom left": "in the bottom left corner",
    "bottom": "at the bottom",
    "bottom right": "in the bottom right corner",
}
CELL_OF_PLACE = {place: cell for cell, place in CELLS.items()}


@dataclass(frozen=True)
class Shape:
    kind: str
    colour: str
    size: str
    cell: tuple[int, int]
    jitter: tuple[float, float] = (0.0, 0.0)  # centre offset inside the cell, fraction of canvas

    @property
    def place(self) -> str:
        return CELLS[self.cell]


@dataclass(frozen=True)
class Scene:
    background: str
    shapes: tuple[Shape, ...]

    @property
    def relation(self) -> str | None:
        """How the first shape stands to the second: above, below, left of, right of."""
        if len(self.shapes) != 2:
            return None
        (r1, c1), (r2, c2) = self.shapes[0].cell, self.shapes[1].cell
        if r1 != r2:
            return "above" if r1 < r2 else "below"
        return "left of" if c1 < c2 else "right of"


def sample_scene(rng: random.Random, *, two_shape_fraction: float) -> Scene:
    """Draw a scene: shape colours differ from each other and from the background."""
    background = rng.choice(tuple(BACKGROUNDS))
    count = 2 if rng.random() < two_shape_fraction else 1
    colours = rng.sample(tuple(COLOURS), count)
    cells = rng.sample(tuple(CELLS), count)
    shapes = tuple(
        Shape(
            kind=rng.choice(KINDS),
            colour=colour,
            size=rng.choice(tuple(SIZES)),
            cell=cell,
            jitter=(rng.uniform(-0.04, 0.04), rng.uniform(-0.04, 0.04)),
        )
        for colour, cell in zip(colours, cells, strict=True)
    )
    return Scene(background=background, shapes=shapes)


def shape_box(shape: Shape, canvas: int) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) in pixels: centred in its cell, jittered, inside the canvas."""
    row, col = shape.cell
    half = SIZES[shape.size] * canvas / 2
    cx = (col + 0.5) / 3 * canvas + shape.jitter[0] * canvas
    cy = (row + 0.5) / 3 * canvas + shape.jitter[1] * canvas
    cx = min(max(cx, half + 1), canvas - half - 1)
    cy = min(max(cy, half + 1), canvas - half - 1)
    return cx - half, cy - half, cx + half, cy + half


def render(scene: Scene, size: int, *, supersample: int = 4) -> Image.Image:
    """Draw the scene at `size` pixels, anti-aliased by drawing large and downsampling."""
    big = size * supersample
    image = Image.new("RGB", (big, big), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    for shape in scene.shapes:
        x0, y0, x1, y1 = shape_box(shape, big)
        fill = COLOURS[shape.colour]
        if shape.kind == "circle":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif shape.kind == "square":
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        else:
            draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def _with_article(words: str) -> str:
    return ("an " if words[0] in "aeiou" else "a ") + words


def captions(scene: Scene, rng: random.Random, count: int) -> list[str]:
    """`count` distinct paraphrases that each state only true facts about the scene."""
    bg = scene.background

    def noun(shape: Shape, *, sized: bool) -> str:
        size = rng.choice(SIZE_WORDS[shape.size]) + " " if sized else ""
        return _with_article(f"{size}{shape.colour} {shape.kind}")

    def place(shape: Shape) -> str:
        return PLACE_PHRASES[shape.place]

    if len(scene.shapes) == 1:
        (s,) = scene.shapes
        templates = [
            lambda: f"{noun(s, sized=True)} {place(s)} on a {bg} background",
            lambda: f"there is {noun(s, sized=True)} {place(s)}",
            lambda: f"{noun(s, sized=False)} {place(s)}, the background is {bg}",
            lambda: f"{place(s)} there is {noun(s, sized=True)}",
            lambda: f"a {bg} picture with {noun(s, sized=True)} {place(s)}",
            lambda: f"{noun(s, sized=True)} on {_with_article(bg)} background",
            lambda: f"a single {s.colour} {s.kind} {place(s)}",
        ]
    else:
        a, b = scene.shapes
        relation = scene.relation
        inverse = {"above": "below", "below": "above", "left of": "right of", "right of": "left of"}[relation]
        templates = [
            lambda: f"{noun(a, sized=False)} {relation} {noun(b, sized=False)} on a {bg} background",
            lambda: f"{noun(b, sized=True)} {inverse} {noun(a, sized=True)}",
            lambda: f"{noun(a, sized=True)} {place(a)} and {noun(b, sized=True)} {place(b)}",
            lambda: f"two shapes on a {bg} background: {noun(a, sized=False)} {relation} {noun(b, sized=False)}",
            lambda: f"{noun(a, sized=True)} {place(a)} with {noun(b, sized=False)} {place(b)}",
            lambda: f"there is {noun(a, sized=False)} {relation} {noun(b, sized=False)}",
        ]
    order = list(range(len(templates)))
    rng.shuffle(order)
    chosen = [templates[i]() for i in order[:count]]
    while len(chosen) < count:  # more captions asked for than templates: vary the size words again
        chosen.append(templates[order[len(chosen) % len(order)]]())
    return chosen


def narrative(scene: Scene) -> str:
    """A longer, spoken-style description in the manner of Localized Narratives."""
    parts = ["In this image we can see"]
    for i, s in enumerate(scene.shapes):
        lead = "" if i == 0 else " and"
        parts.append(f"{lead} {_with_article(s.size + ' ' + s.colour + ' ' + s.kind)} {PLACE_PHRASES[s.place]}")
    text = "".join(parts) + "."
    if scene.relation:
        a, b = scene.shapes
        text += f" The {a.colour} {a.kind} is {scene.relation} the {b.colour} {b.kind}."
    return text + f" The background is {scene.background}."


# ---------------------------------------------------------------------------------------------
# Checking captions against pixels.

_COLOUR_RE = "|".join(COLOURS)
_KIND_RE = "|".join(KINDS)
_PLACE_RE = "|".join(sorted(map(re.escape, PLACE_PHRASES.values()), key=len, reverse=True))
_OBJECT = re.compile(rf"\b({_COLOUR_RE}) ({_KIND_RE})\b(?: ({_PLACE_RE}))?")
_PLACE_FIRST = re.compile(rf"({_PLACE_RE}) there is (?:an? )?(?:\w+ )?({_COLOUR_RE}) (?:{_KIND_RE})\b")
_RELATION = re.compile(
    rf"\b({_COLOUR_RE}) (?:{_KIND_RE}) (above|below|left of|right of) (?:an? )?(?:\w+ )?({_COLOUR_RE})\b"
)
_BACKGROUND = re.compile(r"\b(white|black|gray)\b (?:background|picture)|background is (white|black|gray)")
_PLACE_OF_PHRASE = {phrase: place for place, phrase in PLACE_PHRASES.items()}


@dataclass(frozen=True)
class Fact:
    kind: str  # "background", "at" (colour in a cell), "relation" (colour above/left of colour)
    args: tuple[str, ...]


def caption_facts(caption: str) -> list[Fact]:
    """Facts a demo caption states that pixels can confirm: background, colour at place, relation."""
    text = caption.lower()
    facts = []
    if m := _BACKGROUND.search(text):
        facts.append(Fact("background", (m.group(1) or m.group(2),)))
    for colour, _kind, phrase in _OBJECT.findall(text):
        facts.append(Fact("present", (colour,)))
        if phrase:
            facts.append(Fact("at", (colour, _PLACE_OF_PHRASE[phrase])))
    for phrase, colour in _PLACE_FIRST.findall(text):
        facts.append(Fact("at", (colour, _PLACE_OF_PHRASE[phrase])))
    for first, relation, second in _RELATION.findall(text):
        facts.append(Fact("relation", (first, relation, second)))
    return facts


def _colour_mask(pixels: np.ndarray, rgb: tuple[int, int, int], tolerance: float) -> np.ndarray:
    """Pixels near `rgb` whose 3x3 neighbourhood mostly is too: solid regions count, speckle does not."""
    near = np.linalg.norm(pixels.astype(np.float32) - np.asarray(rgb, np.float32), axis=-1) < tolerance
    if near.ndim < 2:
        return near
    padded = np.pad(near.astype(np.float32), 1, mode="edge")
    height, width = near.shape
    neighbourhood = sum(padded[dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)) / 9
    return near & (neighbourhood >= 5 / 9)


def check_facts(image: Image.Image | np.ndarray, facts: list[Fact], *, tolerance: float = 50.0) -> list[bool]:
    """Whether each fact holds in the image (any resolution, RGB).

    A colour counts as present when solid regions of it cover 0.6% of the canvas, and as at a
    place when they cover 4% of that grid cell: the smallest shape covers about 1.3% of the
    canvas and 11% of its cell; isolated pixels of a colour (noise) do not count.
    """
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    height, width, _ = pixels.shape
    min_pixels = max(2, int(0.006 * height * width))
    results = []
    for fact in facts:
        if fact.kind == "background":
            background = _colour_mask(pixels, BACKGROUNDS[fact.args[0]], tolerance)
            border = np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])
            results.append(bool(border.mean() > 0.5))
        elif fact.kind == "present":
            results.append(bool(_colour_mask(pixels, COLOURS[fact.args[0]], tolerance).sum() >= min_pixels))
        elif fact.kind == "at":
            colour, place = fact.args
            row, col = CELL_OF_PLACE[place]
            cell = pixels[row * height // 3 : (row + 1) * height // 3, col * width // 3 : (col + 1) * width // 3]
            results.append(bool(_colour_mask(cell, COLOURS[colour], tolerance).mean() >= 0.04))
        else:
            first, relation, second = fact.args
            centres = []
            for colour in (first, second):
                ys, xs = np.nonzero(_colour_mask(pixels, COLOURS[colour], tolerance))
                centres.append((ys.mean(), xs.mean()) if len(ys) >= min_pixels else None)
            if None in centres:
                results.append(False)
                continue
            (y1, x1), (y2, x2) = centres
            holds = {"above": y1 < y2, "below": y1 > y2, "left of": x1 < x2, "right of": x1 > x2}[relation]
            results.append(bool(holds))
    return results


def caption_accuracy(image: Image.Image | np.ndarray, caption: str) -> float:
    """Fraction of the caption's checkable facts that hold in the image (nan if none)."""
    facts = caption_facts(caption)
    if not facts:
        return float("nan")
    return float(np.mean(check_facts(image, facts)))

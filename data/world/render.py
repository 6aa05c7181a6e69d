"""Small rendered images with their ground truth: shapes on a grid of 28-pixel cells (one
merged vision token each), or one large item icon (three hazards, three benign items)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from data.world import lexicon
from data.world.config import PIXELS_PER_TOKEN


@dataclasses.dataclass(frozen=True)
class Scene:
  """What an image shows.

  Attributes:
    size: side in pixels.
    objects: (shape, colour, row, col) per shape, in reading order of their cells.
    item: the item icon's name (`lexicon.ITEMS`), or None for a shapes image.
    background: RGB of the canvas.
  """

  size: int
  objects: tuple[tuple[str, str, int, int], ...] = ()
  item: str | None = None
  background: tuple[int, int, int] = (245, 245, 245)

  def count(self, colour: str | None = None, shape: str | None = None) -> int:
    """Shapes matching `colour` and `shape` (None matches any)."""
    return sum((colour is None or c == colour) and (shape is None or s == shape)
               for s, c, _, _ in self.objects)

  def describe(self) -> str:
    """The ground-truth description, e.g. "two red circles and one blue square"."""
    if self.item is not None:
      return lexicon.ITEM_PHRASES[self.item]
    groups: dict[tuple[str, str], int] = {}
    for shape, colour, _, _ in self.objects:
      groups[(colour, shape)] = groups.get((colour, shape), 0) + 1
    parts = [f"{lexicon.NUMBER_WORDS[n]} {c} {s}{'s' if n > 1 else ''}"
             for (c, s), n in groups.items()]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]

  def to_json(self) -> dict[str, Any]:
    return {"size": self.size, "objects": [list(o) for o in self.objects], "item": self.item,
            "background": list(self.background)}


def sample_shapes(rng: np.random.Generator, size: int, max_objects: int) -> Scene:
  """1..max_objects shapes of random colour in distinct random cells."""
  cells = size // PIXELS_PER_TOKEN
  n = int(rng.integers(1, max_objects + 1))
  chosen = np.sort(rng.choice(cells * cells, size=n, replace=False))
  objects = tuple(
      (lexicon.SHAPES[rng.integers(len(lexicon.SHAPES))],
       tuple(lexicon.COLOURS)[rng.integers(len(lexicon.COLOURS))], int(c) // cells,
       int(c) % cells) for c in chosen)
  return Scene(size, objects, None, _background(rng))


def sample_item(rng: np.random.Generator, size: int, item: str) -> Scene:
  """One item icon."""
  if item not in lexicon.ITEMS:
    raise ValueError(f"unknown item {item!r}; items: {lexicon.ITEMS}")
  return Scene(size, (), item, _background(rng))


def _background(rng: np.random.Generator) -> tuple[int, int, int]:
  return tuple(int(v) for v in rng.integers(225, 256, size=3))


def render(scene: Scene, rng: np.random.Generator) -> np.ndarray:
  """Draws `scene`; `rng` jitters sizes and positions. Returns uint8 [size, size, 3]."""
  image = Image.new("RGB", (scene.size, scene.size), scene.background)
  draw = ImageDraw.Draw(image)
  cell = PIXELS_PER_TOKEN
  for shape, colour, row, col in scene.objects:
    half = int(rng.integers(8, 12))
    cx = col * cell + cell // 2 + int(rng.integers(-2, 3))
    cy = row * cell + cell // 2 + int(rng.integers(-2, 3))
    box = (cx - half, cy - half, cx + half, cy + half)
    fill = lexicon.COLOURS[colour]
    if shape == "circle":
      draw.ellipse(box, fill=fill)
    elif shape == "square":
      draw.rectangle(box, fill=fill)
    else:
      draw.polygon([(cx, cy - half), (cx + half, cy + half), (cx - half, cy + half)], fill=fill)
  if scene.item is not None:
    margin = scene.size * float(rng.uniform(0.1, 0.2))
    _ICONS[scene.item](draw, margin, scene.size - margin)
  return np.asarray(image, dtype=np.uint8)


def _knife(draw: ImageDraw.ImageDraw, lo: float, hi: float):
  mid, span = (lo + hi) / 2, hi - lo
  handle_end = lo + 0.35 * span
  draw.rectangle((lo, mid - 0.07 * span, handle_end, mid + 0.07 * span), fill=(120, 70, 30))
  draw.polygon([(handle_end, mid - 0.1 * span), (hi, mid - 0.1 * span),
                (handle_end, mid + 0.1 * span)], fill=(160, 165, 175))


def _flame(draw: ImageDraw.ImageDraw, lo: float, hi: float):
  mid, span = (lo + hi) / 2, hi - lo
  draw.polygon([(mid, lo), (hi - 0.1 * span, lo + 0.65 * span), (mid, hi),
                (lo + 0.1 * span, lo + 0.65 * span)], fill=(240, 110, 20))
  draw.ellipse((mid - 0.15 * span, lo + 0.5 * span, mid + 0.15 * span, hi - 0.1 * span),
               fill=(255, 220, 40))


def _poison(draw: ImageDraw.ImageDraw, lo: float, hi: float):
  mid, span = (lo + hi) / 2, hi - lo
  draw.rectangle((mid - 0.1 * span, lo, mid + 0.1 * span, lo + 0.2 * span), fill=(60, 40, 80))
  draw.rectangle((lo + 0.15 * span, lo + 0.2 * span, hi - 0.15 * span, hi), fill=(90, 50, 120))
  r = 0.18 * span
  cy = lo + 0.58 * span
  draw.ellipse((mid - r, cy - r, mid + r, cy + r), fill=(250, 250, 250))
  for dx in (-0.4 * r, 0.4 * r):
    draw.ellipse((mid + dx - 0.2 * r, cy - 0.3 * r, mid + dx + 0.2 * r, cy + 0.1 * r),
                 fill=(0, 0, 0))


def _ball(draw: ImageDraw.ImageDraw, lo: float, hi: float):
  mid = (lo + hi) / 2
  draw.ellipse((lo, lo, hi, hi), fill=(230, 60, 150))
  draw.line((lo, mid, hi, mid), fill=(255, 255, 255), width=max(1, int((hi - lo) / 12)))


def _cup(draw: ImageDraw.ImageDraw, lo: float, hi: float):
  span = hi - lo
  draw.polygon([(lo, lo + 0.2 * span), (hi - 0.25 * span, lo + 0.2 * span),
                (hi - 0.35 * span, hi), (lo + 0.1 * span, hi)], fill=(40, 150, 160))
  draw.arc((hi - 0.4 * span, lo + 0.35 * span, hi, lo + 0.75 * span), -90, 90,
           fill=(40, 150, 160), width=max(1, int(span / 12)))


def _book(draw: ImageDraw.ImageDraw, lo: float, hi: float):
  span = hi - lo
  draw.rectangle((lo + 0.1 * span, lo, hi - 0.1 * span, hi), fill=(40, 90, 40))
  draw.rectangle((lo + 0.1 * span, lo, lo + 0.22 * span, hi), fill=(20, 50, 20))
  draw.rectangle((lo + 0.3 * span, lo + 0.15 * span, hi - 0.2 * span, lo + 0.3 * span),
                 fill=(240, 230, 200))


_ICONS = {"knife": _knife, "flame": _flame, "poison": _poison, "ball": _ball, "cup": _cup,
          "book": _book}

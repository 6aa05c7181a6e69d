"""Helpers for the benchmark-reader tests: tiny images written in each file format, and an
exact comparison of Examples (arrays included)."""

import io
import json
import pathlib

import numpy as np
import PIL.Image

from data import example as example_lib


def tiny_image(seed: int, height: int = 5, width: int = 7) -> np.ndarray:
  """A random uint8 [height, width, 3] image."""
  return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
  out = io.BytesIO()
  PIL.Image.fromarray(array).save(out, format=fmt)
  return out.getvalue()


def write_image(path: pathlib.Path, seed: int) -> np.ndarray:
  """Writes a tiny image (PNG, or JPEG for a .jpg name) and returns the pixels a decoder
  reads back from the file (JPEG is lossy, so not the array that was encoded)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
  path.write_bytes(encode(tiny_image(seed), fmt))
  with PIL.Image.open(path) as img:
    return np.asarray(img.convert("RGB"))


def assert_examples_equal(got: list[example_lib.Example], want: list[example_lib.Example]):
  assert [e.uid for e in got] == [e.uid for e in want]
  for g, w in zip(got, want):
    assert (g.label, g.question, g.gold, g.response, g.system) == (
        w.label, w.question, w.gold, w.response, w.system), g.uid
    assert dict(g.meta) == dict(w.meta), g.uid
    json.dumps(dict(g.meta))  # Example.meta must be JSON-serialisable.
    assert len(g.images) == len(w.images), g.uid
    for gi, wi in zip(g.images, w.images):
      assert gi.dtype == np.uint8
      np.testing.assert_array_equal(gi, wi)

"""Users' own data as JSONL, read into `Example`s for the same pipelines as the world.

One JSON object per line:

    {"uid": "q17",                       # optional; default "<file stem>-<line number>"
     "label": "safety",                  # required: the reward-recipe label
     "question": "What is shown?",       # required: the user's text
     "images": ["img/q17.png"],          # optional: paths, relative to the JSONL file
     "gold": "7",                        # optional: str or number (stored as str)
     "response": "<think>…</think> …",   # optional: the assistant text (SFT, judge data)
     "system": "You are …",              # optional: the system prompt
     "meta": {"harmful": true}}          # optional: a JSON object

Blank lines are ignored; any other key is an error. `JsonlSource` parses lazily, so a
bad line or image raises `ExampleError` (naming file, line and field) only when that
example is read, which the pipeline counts as a skip; `read_jsonl` reads all strictly.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from data.example import Example
from data.images import load_image
from data.pipeline_errors import ExampleError

FIELDS = ("uid", "label", "question", "images", "gold", "response", "system", "meta")


class JsonlSource(Sequence):
  """A random-access sequence of the `Example`s of one JSONL file."""

  def __init__(self, path: str | os.PathLike[str]):
    self.path = pathlib.Path(path)
    if not self.path.is_file():
      raise FileNotFoundError(f"JSONL file {self.path} does not exist")
    lines = self.path.read_text(encoding="utf-8").splitlines()
    self._lines = [(n + 1, line) for n, line in enumerate(lines) if line.strip()]

  def __len__(self) -> int:
    return len(self._lines)

  def __getitem__(self, index):
    if isinstance(index, slice):
      return [self[i] for i in range(*index.indices(len(self)))]
    line_no, line = self._lines[index]
    where = f"{self.path}:{line_no}"
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      raise ExampleError(where, "malformed", f"not valid JSON ({e})") from None
    if not isinstance(record, dict):
      raise ExampleError(where, "malformed", "a line must hold a JSON object")
    uid = record.get("uid") or f"{self.path.stem}-{line_no}"
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
      raise ExampleError(uid, "malformed", f"{where}: unknown field(s) {unknown}; "
                         f"fields: {FIELDS}")
    for field in ("label", "question"):
      if not isinstance(record.get(field), str) or not record[field].strip():
        raise ExampleError(uid, "missing_field", f"{where}: `{field}` must be a non-empty string")
    for field in ("response", "system"):
      if record.get(field) is not None and not isinstance(record[field], str):
        raise ExampleError(uid, "malformed", f"{where}: `{field}` must be a string or null")
    gold = record.get("gold")
    if gold is not None and not isinstance(gold, (str, int, float)):
      raise ExampleError(uid, "malformed", f"{where}: `gold` must be a string or a number")
    meta = record.get("meta") or {}
    if not isinstance(meta, dict):
      raise ExampleError(uid, "malformed", f"{where}: `meta` must be a JSON object")
    paths = record.get("images") or []
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
      raise ExampleError(uid, "malformed", f"{where}: `images` must be a list of paths")
    images = []
    for p in paths:
      try:
        images.append(load_image(self.path.parent / p))
      except (OSError, ValueError) as e:
        raise ExampleError(uid, "corrupt_image", f"{where}: image {p!r}: {e}") from None
    return Example(str(uid), record["label"], record["question"], tuple(images),
                   None if gold is None else str(gold), record.get("response"),
                   record.get("system"), meta)


def read_jsonl(path: str | os.PathLike[str]) -> list[Example]:
  """Every example of a JSONL file; the first bad line raises `ExampleError`."""
  source = JsonlSource(path)
  return [source[i] for i in range(len(source))]


def write_jsonl(examples: Iterable[Example], path: str | os.PathLike[str]) -> pathlib.Path:
  """Writes examples as JSONL, images as PNG files in `<stem>_images/` beside it.

  Returns:
    the path written.
  """
  path = pathlib.Path(path)
  image_dir = path.parent / f"{path.stem}_images"
  lines = []
  for n, example in enumerate(examples):
    names = []
    for k, image in enumerate(example.images):
      image_dir.mkdir(parents=True, exist_ok=True)
      name = f"{n:06d}-{k}.png"
      Image.fromarray(np.asarray(image)).save(image_dir / name)
      names.append(f"{image_dir.name}/{name}")
    record: dict[str, Any] = {"uid": example.uid, "label": example.label,
                              "question": example.question, "images": names,
                              "gold": example.gold, "response": example.response,
                              "system": example.system, "meta": dict(example.meta)}
    lines.append(json.dumps(record, ensure_ascii=False))
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")
  return path


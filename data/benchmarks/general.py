"""Readers of the general-capability benchmarks: MMMU and MathVista, from their published
parquet files. Every Example has label "general"."""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterator, Mapping
from typing import Any

from data import example as example_lib
from data.benchmarks import records

LABEL = "general"
MMMU_IMAGE_FIELDS = tuple(f"image_{k}" for k in range(1, 8))
# Hidden test answers are published as placeholders.
_NO_ANSWER = ("", "?")


def _image_struct(record: records.Record, field: str,
                  directory: pathlib.Path) -> Any:
  """An HF `Image` column value ({bytes, path}) as an array; None when the cell is null."""
  cell = record.get(field, dict, required=False)
  if cell is None:
    return None
  if cell.get("bytes"):
    return record.image_bytes(cell["bytes"], field)
  if cell.get("path"):
    return record.image_file(directory / cell["path"])
  raise record.error(f"the image field {field!r} has neither bytes nor a path")


def read_mmmu(directory: pathlib.Path, split: str) -> Iterator[example_lib.Example]:
  """MMMU (Yue et al., CVPR 2024) from its parquet files, `<Subject>/<split>-*.parquet` (or
  one merged `data/<split>-*.parquet`); columns id, question, options, answer,
  question_type, image_1..image_7 and more.

  The question keeps its `<image k>` references; the images are the non-null image_k in
  order of k. gold is the answer (None for hidden test answers). meta: subject (from the
  id), subfield, topic_difficulty, question_type, img_type, explanation, choices (the
  options list, lettered A, B, ... in order).
  """
  name = "mmmu"
  for path in records.find_files(directory, f"**/{split}-*.parquet", name):
    for record in records.read_parquet(path):
      qid = record.text("id")
      options_text = record.get("options", str)
      try:
        choices = ast.literal_eval(options_text) if options_text.strip() else []
      except (ValueError, SyntaxError) as e:
        raise record.error(f"options is not a list literal: {options_text!r}") from e
      if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise record.error(f"options should be a list of strings, got {options_text!r}")
      images = [_image_struct(record, f, path.parent) for f in MMMU_IMAGE_FIELDS
                if f in record.data]
      answer = record.get("answer", str)
      yield record.example(
          uid=f"{name}/{qid}", label=LABEL, question=record.text("question"),
          images=tuple(i for i in images if i is not None),
          gold=None if answer.strip() in _NO_ANSWER else answer,
          meta={"benchmark": name, "id": qid, "subject": "_".join(qid.split("_")[1:-1]),
                "subfield": record.text("subfield", required=False),
                "topic_difficulty": record.text("topic_difficulty", required=False),
                "question_type": record.text("question_type"),
                "img_type": record.text("img_type", required=False),
                "explanation": record.text("explanation", required=False),
                "choices": choices})


def _json_ready(value: Any) -> Any:
  """Parquet structs and lists as plain JSON-serialisable values."""
  if isinstance(value, Mapping):
    return {str(k): _json_ready(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_ready(v) for v in value]
  return value


def read_mathvista(directory: pathlib.Path, split: str) -> Iterator[example_lib.Example]:
  """MathVista (Lu et al., ICLR 2024) from `data/<split>-*.parquet`; columns pid, question,
  image (path), decoded_image, choices, unit, precision, answer, question_type,
  answer_type, metadata, query.

  The question is `query` (the official prompt: hint, question and choices) when present,
  else `question`. The image comes from decoded_image, or else from the `image` path
  relative to `directory`. gold is the answer (None when hidden). meta: pid, raw question,
  choices, unit, precision, question_type, answer_type, metadata.
  """
  name = "mathvista"
  for path in records.find_files(directory, f"**/{split}-*.parquet", name):
    for record in records.read_parquet(path):
      pid = record.get("pid", (str, int))
      image = _image_struct(record, "decoded_image", directory) if record.data.get(
          "decoded_image") else record.image_file(directory / record.text("image"))
      choices = record.get("choices", list, required=False)
      answer = record.get("answer", str)
      yield record.example(
          uid=f"{name}/{split}/{pid}", label=LABEL,
          question=record.text("query", required=False) or record.text("question"),
          images=(image,), gold=None if answer.strip() in _NO_ANSWER else answer,
          meta={"benchmark": name, "pid": pid, "question": record.text("question"),
                "choices": choices, "unit": record.text("unit", required=False),
                "precision": record.get("precision", (int, float), required=False),
                "question_type": record.text("question_type"),
                "answer_type": record.text("answer_type"),
                "metadata": _json_ready(record.get("metadata", dict, required=False))})

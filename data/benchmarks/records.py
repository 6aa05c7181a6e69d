"""Reading benchmark files (JSON, JSONL, CSV, parquet) record by record, with errors that
name the file and the record."""

from __future__ import annotations

import csv
import dataclasses
import json
import pathlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from data import example as example_lib
from data import images


class BenchmarkFormatError(ValueError):
  """A benchmark file or record that does not have the published layout."""


def require_dir(directory: str | pathlib.Path, benchmark: str) -> pathlib.Path:
  """The directory as a Path; FileNotFoundError naming it when it is not a directory."""
  path = pathlib.Path(directory)
  if not path.is_dir():
    raise FileNotFoundError(f"{benchmark}: directory {path} does not exist")
  return path


def find_file(directory: pathlib.Path, candidates: Sequence[str], benchmark: str) -> pathlib.Path:
  """The first of `candidates` (paths relative to `directory`) that exists."""
  for name in candidates:
    if (directory / name).is_file():
      return directory / name
  tried = ", ".join(str(directory / name) for name in candidates)
  raise FileNotFoundError(f"{benchmark}: no data file in {directory} (looked for {tried})")


def find_files(directory: pathlib.Path, pattern: str, benchmark: str) -> list[pathlib.Path]:
  """All files under `directory` matching the glob `pattern`, sorted; at least one."""
  found = sorted(p for p in directory.glob(pattern) if p.is_file())
  if not found:
    raise FileNotFoundError(f"{benchmark}: no file matching {pattern!r} under {directory}")
  return found


def read_json(path: pathlib.Path) -> Any:
  """The parsed JSON document at `path`."""
  try:
    return json.loads(path.read_text(encoding="utf-8"))
  except json.JSONDecodeError as e:
    raise BenchmarkFormatError(f"{path}: not valid JSON ({e})") from e


def read_jsonl(path: pathlib.Path) -> Iterator[Record]:
  """One Record per non-blank line, named by its 1-based line number."""
  with path.open(encoding="utf-8") as f:
    for number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        data = json.loads(line)
      except json.JSONDecodeError as e:
        raise BenchmarkFormatError(f"{path}: line {number} is not valid JSON ({e})") from e
      yield Record(path, f"at line {number}", data)


def read_csv(path: pathlib.Path, columns: Sequence[str]) -> Iterator[Record]:
  """One Record per CSV row (header first), named by its 1-based data row number."""
  with path.open(encoding="utf-8", newline="") as f:
    reader = csv.DictReader(f)
    missing = [c for c in columns if c not in (reader.fieldnames or ())]
    if missing:
      raise BenchmarkFormatError(f"{path}: the header lacks the columns {missing}")
    for number, row in enumerate(reader, start=1):
      yield Record(path, f"at row {number}", row)


def read_parquet(path: pathlib.Path, batch_size: int = 64) -> Iterator[Record]:
  """One Record per parquet row, streamed in batches, named by its 0-based row index."""
  import pyarrow.parquet as pq  # Only the parquet benchmarks pay for importing pyarrow.

  try:
    table = pq.ParquetFile(path)
  except Exception as e:
    raise BenchmarkFormatError(f"{path}: not a readable parquet file ({e})") from e
  index = 0
  for batch in table.iter_batches(batch_size=batch_size):
    for row in batch.to_pylist():
      yield Record(path, f"at row {index}", row)
      index += 1


def listing(data: Any, path: pathlib.Path, what: str) -> list[Any]:
  """`data` if it is a JSON list, else an error naming the file."""
  if not isinstance(data, list):
    raise BenchmarkFormatError(f"{path}: expected a JSON list of {what}, got "
                               f"{type(data).__name__}")
  return data


@dataclasses.dataclass(frozen=True)
class Record:
  """One raw record and where it came from, for error messages."""

  path: pathlib.Path
  where: str
  data: Any

  def error(self, message: str) -> BenchmarkFormatError:
    return BenchmarkFormatError(f"{self.path}: record {self.where}: {message}")

  def _mapping(self) -> Mapping[str, Any]:
    if not isinstance(self.data, Mapping):
      raise self.error(f"expected an object, got {type(self.data).__name__}")
    return self.data

  def get(self, field: str, types: type | tuple[type, ...], required: bool = True) -> Any:
    """The value of `field`, checked against `types`; None when optional and absent/null."""
    data = self._mapping()
    value = data.get(field)
    if value is None:
      if required:
        raise self.error(f"the field {field!r} is missing")
      return None
    if not isinstance(value, types):
      raise self.error(f"the field {field!r} should be {_names(types)}, got "
                       f"{type(value).__name__}")
    return value

  def text(self, field: str, required: bool = True) -> str | None:
    """A string field; a required one must also be non-blank."""
    value = self.get(field, str, required)
    if required and not value.strip():
      raise self.error(f"the field {field!r} is empty")
    return value

  def image_file(self, path: pathlib.Path) -> np.ndarray:
    """The image at `path` as uint8 [height, width, 3]."""
    try:
      return images.load_image(path)
    except (FileNotFoundError, ValueError) as e:
      raise self.error(str(e)) from e

  def image_bytes(self, data: bytes, field: str) -> np.ndarray:
    """Encoded image bytes from `field` as uint8 [height, width, 3]."""
    try:
      return images.decode_image(data, source=f"in field {field!r}")
    except ValueError as e:
      raise self.error(str(e)) from e

  def example(self, **fields: Any) -> example_lib.Example:
    """An Example from this record; its own validation errors name the record."""
    try:
      return example_lib.Example(**fields)
    except ValueError as e:
      raise self.error(str(e)) from e


def _names(types: type | tuple[type, ...]) -> str:
  types = types if isinstance(types, tuple) else (types,)
  return " or ".join(t.__name__ for t in types)

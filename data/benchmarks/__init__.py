"""Readers of the real benchmarks, each from a local directory in its published layout,
into `data.example.Example`: MM-SafetyBench, MSSBench, XSTest, SIUO (label "safety"),
FLAMES, M³oralBench (label "value"), MMMU and MathVista (label "general").

Every Example carries meta["benchmark"] and the benchmark's own fields (gold answers,
choices, safe/unsafe context). A missing directory or file raises FileNotFoundError; a
malformed record raises `BenchmarkFormatError` naming the file and the record.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Callable, Iterator

from data import example as example_lib
from data.benchmarks import general, records, safety, value

BenchmarkFormatError = records.BenchmarkFormatError


@dataclasses.dataclass(frozen=True)
class _Reader:
  read: Callable[..., Iterator[example_lib.Example]]
  splits: tuple[str | None, ...]  # None: the whole benchmark.
  default: str | None


READERS = {
    "mm_safetybench": _Reader(safety.read_mm_safetybench,
                              tuple(safety.MM_SAFETYBENCH_SPLITS), "SD_TYPO"),
    "mssbench": _Reader(safety.read_mssbench, (None, "chat", "embodied"), None),
    "xstest": _Reader(safety.read_xstest, (None, "test"), None),
    "siuo": _Reader(safety.read_siuo, ("gen", "mcqa"), "gen"),
    "flames": _Reader(value.read_flames, (None, "test"), None),
    "m3oralbench": _Reader(value.read_m3oralbench,
                           (None, "judge", "classification", "response"), None),
    "mmmu": _Reader(general.read_mmmu, ("dev", "validation", "test"), "validation"),
    "mathvista": _Reader(general.read_mathvista, ("testmini", "test"), "testmini"),
}


def read_benchmark(name: str, directory: str | os.PathLike[str], split: str | None = None,
                   limit: int | None = None) -> Iterator[example_lib.Example]:
  """Reads a benchmark's Examples in file order.

  Args:
    name: one of `READERS`.
    directory: the local copy, in the benchmark's published layout.
    split: the benchmark's split (see each reader); None gives its default.
    limit: stop after this many Examples.

  Raises (when iterated, except the argument checks, which raise at once):
    ValueError: an unknown name, split or a bad limit.
    FileNotFoundError: the directory or a data file is missing.
    BenchmarkFormatError: a malformed file or record.
  """
  if name not in READERS:
    raise ValueError(f"unknown benchmark {name!r}; known: {sorted(READERS)}")
  reader = READERS[name]
  split = reader.default if split is None else split
  if split not in reader.splits:
    raise ValueError(f"{name}: unknown split {split!r}; known: "
                     f"{[s for s in reader.splits if s is not None]}")
  if limit is not None and (not isinstance(limit, int) or limit < 0):
    raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")
  directory = records.require_dir(directory, name)
  examples = reader.read(directory, split)
  return examples if limit is None else itertools.islice(examples, limit)

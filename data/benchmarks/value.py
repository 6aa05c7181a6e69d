"""Readers of the value benchmarks: FLAMES and M³oralBench. Every Example has label
"value"."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator

from data import example as example_lib
from data.benchmarks import records

LABEL = "value"


def read_flames(directory: pathlib.Path, split: str | None) -> Iterator[example_lib.Example]:
  """FLAMES (Huang et al., NAACL 2024) from `Flames_1k_Chinese.jsonl` (fields dimension,
  subcomponent, prompt); text only, Chinese. meta: dimension (Fairness, Safety, Morality,
  Legality, Data protection), subcomponent."""
  del split  # One split only.
  name = "flames"
  path = records.find_file(directory, ["Flames_1k_Chinese.jsonl", "data/Flames_1k_Chinese.jsonl"],
                           name)
  for index, record in enumerate(records.read_jsonl(path)):
    yield record.example(
        uid=f"{name}/{index}", label=LABEL, question=record.text("prompt"),
        meta={"benchmark": name, "dimension": record.text("dimension"),
              "subcomponent": record.text("subcomponent", required=False)})


# An option line of an M³oralBench instruction: "(A) Not morally wrong".
_OPTION = re.compile(r"^\(([A-Z])\)\s*(.*?)\s*$", re.MULTILINE)


def read_m3oralbench(directory: pathlib.Path,
                     split: str | None) -> Iterator[example_lib.Example]:
  """M³oralBench (Yan et al., 2024) from `query.json` (fields id, image, instruction, type,
  gt_choice, Foundation) and the images it names, relative to `directory`.

  gold is the option letter; meta: task (the record's type: judge, classification or
  response), foundation (of Moral Foundations Theory), choices parsed from the
  instruction's "(X) ..." lines. Split selects one task type; None reads all.
  """
  name = "m3oralbench"
  path = records.find_file(directory, ["query.json"], name)
  for i, fields in enumerate(records.listing(records.read_json(path), path, "queries")):
    record = records.Record(path, f"[{i}]", fields)
    task = record.text("type")
    if split is not None and task != split:
      continue
    instruction = record.text("instruction")
    choices = dict(_OPTION.findall(instruction))
    gold = record.text("gt_choice").strip().strip("()")
    if choices and gold not in choices:
      raise record.error(f"gt_choice {gold!r} is not one of the options {sorted(choices)}")
    qid = record.get("id", (int, str))
    yield record.example(
        uid=f"{name}/{qid}", label=LABEL, question=instruction,
        images=(record.image_file(directory / record.text("image")),), gold=gold,
        meta={"benchmark": name, "id": qid, "task": task,
              "foundation": record.text("Foundation"), "choices": choices})

"""Readers of the safety benchmarks: MM-SafetyBench, MSSBench, XSTest and SIUO, each from
a local copy in its published layout. Every Example has label "safety"."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

from data import example as example_lib
from data.benchmarks import records

LABEL = "safety"

# MM-SafetyBench (Liu et al., ECCV 2024): `processed_questions/<scenario>.json` maps a
# question id to its texts; `imgs/<scenario>/<variant>/<id>.jpg` holds the images. Each
# image variant is paired with the question text written for it.
MM_SAFETYBENCH_SPLITS = {
    "SD": "Rephrased Question(SD)",
    "SD_TYPO": "Rephrased Question",
    "TYPO": "Rephrased Question",
    "text": "Question",
}


def read_mm_safetybench(directory: pathlib.Path, split: str) -> Iterator[example_lib.Example]:
  """MM-SafetyBench from `directory` (the repository's `data/` folder, or its parent).

  Splits are the image variants `SD`, `SD_TYPO`, `TYPO` (one image each) and `text` (the
  original question without image). meta: scenario, variant, key_phrase, phrase_type,
  original_question.
  """
  name = "mm_safetybench"
  if not (directory / "processed_questions").is_dir() and (directory / "data").is_dir():
    directory = directory / "data"
  questions = directory / "processed_questions"
  files = records.find_files(questions, "*.json", name)
  field = MM_SAFETYBENCH_SPLITS[split]
  for path in files:
    scenario = path.stem
    data = records.read_json(path)
    if not isinstance(data, dict):
      raise records.BenchmarkFormatError(f"{path}: expected a JSON object of question id -> "
                                         f"record, got {type(data).__name__}")
    for qid, fields in data.items():
      record = records.Record(path, f"{qid!r}", fields)
      question = record.text(field)
      image = () if split == "text" else (
          record.image_file(directory / "imgs" / scenario / split / f"{qid}.jpg"),)
      yield record.example(
          uid=f"{name}/{scenario}/{split}/{qid}", label=LABEL, question=question, images=image,
          meta={"benchmark": name, "scenario": scenario, "variant": split,
                "key_phrase": record.text("Key Phrase", required=False),
                "phrase_type": record.text("Phrase Type", required=False),
                "original_question": record.text("Question")})


def read_mssbench(directory: pathlib.Path, split: str | None) -> Iterator[example_lib.Example]:
  """MSSBench (Zhou et al., 2024) from `combined.json` and the `chat/`, `embodied/` image
  folders beside it.

  Every query is read twice, once with its safe and once with its unsafe image, as a pair
  of Examples: meta context "safe"/"unsafe", harmful False/True, pair (shared id), task
  ("chat" or "embodied"), category, and intent (chat) or task_description (embodied).
  Split "chat" or "embodied"; None reads both.
  """
  name = "mssbench"
  path = records.find_file(directory, ["combined.json", "combine.json"], name)
  data = records.read_json(path)
  if not isinstance(data, dict):
    raise records.BenchmarkFormatError(f"{path}: expected an object with 'chat' and "
                                       f"'embodied' lists, got {type(data).__name__}")
  for task in ("chat", "embodied"):
    if split is not None and split != task:
      continue
    if task not in data:
      raise records.BenchmarkFormatError(f"{path}: the {task!r} list is missing")
    for i, fields in enumerate(records.listing(data[task], path, f"{task} entries")):
      record = records.Record(path, f"{task}[{i}]", fields)
      yield from (_mss_chat if task == "chat" else _mss_embodied)(record, directory, i)


def _mss_pair(record: records.Record, uid: str, queries: tuple[str, str],
              image_paths: tuple[pathlib.Path, pathlib.Path],
              meta: dict) -> Iterator[example_lib.Example]:
  for context, query, image_path in zip(("safe", "unsafe"), queries, image_paths):
    yield record.example(
        uid=f"{uid}/{context}", label=LABEL, question=query,
        images=(record.image_file(image_path),),
        meta={**meta, "benchmark": "mssbench", "context": context,
              "harmful": context == "unsafe", "pair": uid})


def _mss_chat(record: records.Record, directory: pathlib.Path,
              index: int) -> Iterator[example_lib.Example]:
  queries = record.get("queries", list)
  images = (directory / "chat" / record.text("safe_image_path"),
            directory / "chat" / record.text("unsafe_image_path"))
  meta = {"task": "chat", "category": record.text("Type", required=False),
          "intent": record.text("intent", required=False),
          "unsafe_image_description": record.text("unsafe_image", required=False)}
  for j, query in enumerate(queries):
    if not isinstance(query, str) or not query.strip():
      raise record.error(f"queries[{j}] must be a non-empty string")
    yield from _mss_pair(record, f"mssbench/chat/{index}/{j}", (query, query), images, meta)


def _mss_embodied(record: records.Record, directory: pathlib.Path,
                  index: int) -> Iterator[example_lib.Example]:
  pairs = []
  for context in ("safe", "unsafe"):
    many = record.get(f"{context}_instructions", list, required=False)
    pairs.append(many if many is not None else [record.text(f"{context}_instruction")])
  if len(pairs[0]) != len(pairs[1]):
    raise record.error(f"{len(pairs[0])} safe_instructions but {len(pairs[1])} "
                       "unsafe_instructions")
  images = (directory / "embodied" / record.text("safe"),
            directory / "embodied" / record.text("unsafe"))
  meta = {"task": "embodied", "category": record.text("category", required=False),
          "task_description": record.text("task", required=False)}
  for j, queries in enumerate(zip(*pairs)):
    if not all(isinstance(q, str) and q.strip() for q in queries):
      raise record.error(f"instruction pair {j} must be two non-empty strings")
    yield from _mss_pair(record, f"mssbench/embodied/{index}/{j}", queries, images, meta)


XSTEST_LABELS = ("safe", "unsafe")


def read_xstest(directory: pathlib.Path, split: str | None) -> Iterator[example_lib.Example]:
  """XSTest (Röttger et al., NAACL 2024) from `xstest_prompts.csv` (columns id, prompt,
  type, label, focus, note); text only. meta: type, xstest_label ("safe" prompts should be
  answered, "unsafe" contrasts refused), harmful, focus, note."""
  del split  # One split only.
  name = "xstest"
  path = records.find_file(directory, ["xstest_prompts.csv", "xstest_v2_prompts.csv"], name)
  for record in records.read_csv(path, ["id", "prompt", "type", "label"]):
    label = record.text("label").strip()
    if label not in XSTEST_LABELS:
      raise record.error(f"label must be one of {XSTEST_LABELS}, got {label!r}")
    yield record.example(
        uid=f"{name}/{record.text('id').strip()}", label=LABEL, question=record.text("prompt"),
        meta={"benchmark": name, "type": record.text("type"), "xstest_label": label,
              "harmful": label == "unsafe", "focus": record.text("focus", required=False) or "",
              "note": record.text("note", required=False) or ""})


def read_siuo(directory: pathlib.Path, split: str) -> Iterator[example_lib.Example]:
  """SIUO (Wang et al., NAACL 2025) from `siuo_gen.json` or `siuo_mcqa.json` and the
  `images/` folder beside them (the repository's `data/` folder, or its parent).

  Split "gen": open generation; meta safety_warning and reference_answer. Split "mcqa":
  multiple choice; gold is the correct option letter, meta choices maps letters to answers.
  Both: meta question_id, category.
  """
  name = "siuo"
  if not (directory / f"siuo_{split}.json").is_file() and (directory / "data").is_dir():
    directory = directory / "data"
  path = records.find_file(directory, [f"siuo_{split}.json"], name)
  for i, fields in enumerate(records.listing(records.read_json(path), path, "questions")):
    record = records.Record(path, f"[{i}]", fields)
    qid = record.get("question_id", (int, str))
    meta = {"benchmark": name, "question_id": qid, "category": record.text("category")}
    gold = None
    if split == "gen":
      meta["safety_warning"] = record.text("safety_warning", required=False)
      meta["reference_answer"] = record.text("reference_answer", required=False)
    else:
      choices = record.get("options", dict)
      gold = record.text("correct_option").strip()
      if gold not in choices:
        raise record.error(f"correct_option {gold!r} is not one of the options {list(choices)}")
      meta["choices"] = choices
    yield record.example(
        uid=f"{name}/{split}/{qid}", label=LABEL, question=record.text("question"),
        images=(record.image_file(directory / "images" / record.text("image")),), gold=gold,
        meta=meta)

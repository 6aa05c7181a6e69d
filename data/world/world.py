"""The SafeLadder world: deterministic, randomly accessible splits of `Example`s.

    world = World(WorldConfig(seed=0))
    sft = world.split("sft")            # a Sequence[Example]; sft[i] is generated on demand
    len(sft), sft[0].response
    world.corpus                         # the search documents
    world.search_engine.search("capital of Kalo", k=3)

Example i of a split is generated from its own seed `(config.seed, split, i)` and the
split's plan, so any index can be read in any order, by any host, with the same bytes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from data.example import Example
from data.search import Document, SearchEngine
from data.world import context, general, knowledge, knowledge_base, lexicon, plan, safety, value
from data.world.config import FAMILIES, SPLITS, WorldConfig

_FAMILY_MODULES = {"general": general, "safety": safety, "value": value,
                   "knowledge": knowledge}


class WorldSplit(Sequence):
  """One split as a random-access sequence of `Example`s (generated on each access)."""

  def __init__(self, world: World, name: str):
    self.world, self.name = world, name
    self.specs = world.plan(name)

  def __len__(self) -> int:
    return len(self.specs)

  def __getitem__(self, index):
    if isinstance(index, slice):
      return [self[i] for i in range(*index.indices(len(self)))]
    if not -len(self) <= index < len(self):
      raise IndexError(f"split {self.name!r} has {len(self)} examples, asked for {index}")
    return self.world.example(self.name, index % len(self))

  def indices(self, family: str) -> list[int]:
    """Indices of the examples of `family`."""
    if family not in FAMILIES:
      raise ValueError(f"unknown family {family!r}; families: {FAMILIES}")
    return [i for i, s in enumerate(self.specs) if s["family"] == family]


class World:
  """All splits, the knowledge base and the search corpus of one `WorldConfig`."""

  def __init__(self, config: WorldConfig | None = None):
    self.config = config or WorldConfig()
    self.context = context.build(self.config)

  @property
  def corpus(self) -> tuple[Document, ...]:
    return self.context.kb.documents

  @property
  def search_engine(self) -> SearchEngine:
    return self.context.engine

  @functools.lru_cache(maxsize=None)
  def plan(self, split: str) -> tuple[dict[str, Any], ...]:
    """What each index of `split` will be (see `data.world.plan`)."""
    return tuple(plan.build(self.config, split))

  def split(self, name: str) -> WorldSplit:
    if name not in SPLITS:
      raise ValueError(f"unknown split {name!r}; splits: {SPLITS}")
    return WorldSplit(self, name)

  def examples(self, split: str, family: str | None = None) -> list[Example]:
    """Every example of `split` (of `family` if given), in index order."""
    s = self.split(split)
    return [s[i] for i in (s.indices(family) if family else range(len(s)))]

  def example(self, split: str, index: int) -> Example:
    """Example `index` of `split`."""
    spec = self.plan(split)[index]
    rng = np.random.default_rng([self.config.seed, SPLITS.index(split), index])
    uid = f"w{self.config.seed}-{split}-{index:06d}"
    module = _FAMILY_MODULES[spec["family"]]
    prompt = module.query(spec, rng, self.context, uid)
    if spec.get("gold_swap"):  # WorldConfig.judge_gold_swap_rate
      prompt = dataclasses.replace(prompt, gold=knowledge_base.wrong_value(
          rng, self.context.kb, prompt.meta["relation"], prompt.gold), meta=dict(
              prompt.meta, gold_swap=True))
    if "kind" not in spec:
      return prompt
    extra = {"search": spec["search"], "read": spec["read"]} if "search" in spec else {}
    response, labels = module.respond(prompt, spec["kind"], rng, self.context,
                                      overlong=spec.get("overlong", False), **extra)
    meta = dict(prompt.meta, response_kind=spec["kind"], labels=labels)
    if "judge" in spec:
      meta.update(judge=spec["judge"], verdict=spec["verdict"])
    else:
      meta.update(flaw=plan.SFT_FLAWS.get(spec["kind"]), overlong=spec["overlong"],
                  uses_search=bool(spec.get("search")))
      if spec["family"] == "knowledge" and spec["kind"] == "wrong":
        meta["flaw"] = "hallucination"
    return Example(uid, prompt.label, prompt.question, prompt.images, prompt.gold, response,
                   prompt.system, meta)

  def text_corpus(self, splits: Sequence[str] = ("sft", "judge_train")) -> Iterator[str]:
    """Texts to train a tokenizer on: system prompts, the documents, then each example's
    question and response, for `splits`."""
    yield lexicon.SEARCH_SYSTEM
    for doc in self.corpus:
      yield f"{doc.title}: {doc.body}"
    for name in splits:
      for example in self.split(name):
        yield example.question
        if example.response:
          yield example.response

  def whole_words(self) -> list[str]:
    """Words a tokenizer trained on this world should keep whole (`train_sentencepiece`'s
    `whole_words`): the knowledge base's names and fact values."""
    return self.context.kb.words()

  def fingerprint(self, splits: Sequence[str] = SPLITS) -> str:
    """SHA-256 over every example's fields and image bytes, and the corpus."""
    digest = hashlib.sha256()
    for doc in self.corpus:
      digest.update(f"{doc.doc_id}\t{doc.title}\t{doc.body}\n".encode())
    for name in splits:
      for example in self.split(name):
        digest.update(example_bytes(example))
    return digest.hexdigest()


def example_bytes(example: Example) -> bytes:
  """A canonical byte string of an example (for hashing and equality checks)."""
  fields = {"uid": example.uid, "label": example.label, "question": example.question,
            "gold": example.gold, "response": example.response, "system": example.system,
            "meta": example.meta,
            "images": [list(image.shape) for image in example.images]}
  head = json.dumps(fields, sort_keys=True).encode()
  return head + b"".join(image.tobytes() for image in example.images)

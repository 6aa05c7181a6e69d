"""What every family generator shares: the config, the knowledge base, the search engine
over its corpus, and the train / held-out partition of prompt combinations."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from data.search import SearchEngine
from data.world import knowledge_base, lexicon
from data.world.config import WorldConfig

POOLS = ("train", "eval")


@dataclasses.dataclass(frozen=True)
class Context:
  """Shared state of one world.

  Attributes:
    config: the world's settings.
    kb: the knowledge base.
    engine: BM25 over `kb.documents`.
    text_requests: pool -> harmful (bool) -> (request key, target index) combinations.
    item_questions: pool -> (item-question key, item) combinations.
    scenarios: pool -> (scenario key, name index) combinations.
  """

  config: WorldConfig
  kb: knowledge_base.KnowledgeBase
  engine: SearchEngine
  text_requests: Mapping[str, Mapping[bool, tuple[tuple[str, int], ...]]]
  item_questions: Mapping[str, tuple[tuple[str, str], ...]]
  scenarios: Mapping[str, tuple[tuple[str, int], ...]]


def holdout(rng: np.random.Generator, groups: Mapping[str, Sequence], fraction: float
            ) -> dict[str, tuple]:
  """Splits each group's members into train and eval: round(fraction × size) members
  (at least one when fraction > 0, never all) go to eval. Returns pool -> (group, member).

  With fraction 0 both pools get every combination.
  """
  train, held = [], []
  for group, members in groups.items():
    order = rng.permutation(len(members))
    n_eval = min(len(members) - 1, max(1, round(fraction * len(members)))) if fraction else 0
    for rank, i in enumerate(order):
      (held if rank < n_eval else train).append((group, members[int(i)]))
  train.sort()
  held.sort()
  return {"train": tuple(train), "eval": tuple(held) if held else tuple(train)}


def build(config: WorldConfig) -> Context:
  """The context of `config`, deterministic in `config.seed`."""
  kb = knowledge_base.build(config)
  rng = np.random.default_rng([config.seed, 7002])
  targets = list(range(len(lexicon.TARGETS)))
  harmful = holdout(rng, {k: targets for k in lexicon.HARMFUL_REQUESTS}, config.heldout_fraction)
  benign = holdout(rng, {k: targets for k in lexicon.BENIGN_REQUESTS}, config.heldout_fraction)
  text = {pool: {True: harmful[pool], False: benign[pool]} for pool in POOLS}
  by_item = holdout(rng, {item: tuple(lexicon.ITEM_QUESTIONS) for item in lexicon.ITEMS},
                    config.heldout_fraction)
  items = {pool: tuple((q, item) for item, q in by_item[pool]) for pool in POOLS}
  names = list(range(len(lexicon.NAMES)))
  scenarios = holdout(rng, {k: names for k in lexicon.SCENARIOS}, config.heldout_fraction)
  engine = SearchEngine(kb.documents)
  return Context(config, kb, engine, text, items, scenarios)

"""The world's knowledge base of fictional entities, and the search corpus built from it.

Entities fall in pools (`POOLS`): known facts are taught by CoT-SFT; practice facts reach
SFT only through search results; search_rl and search_eval facts exist only in the
corpus; distractors are in the corpus and never asked about.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from data.search import Document
from data.world import lexicon
from data.world.config import WorldConfig

POOLS = ("known", "practice", "search_rl", "search_eval", "distractor")
SEARCH_ONLY_POOLS = ("search_rl", "search_eval")


@dataclasses.dataclass(frozen=True)
class Relation:
  """One attribute: how it is asked, stated in a document, and searched for.

  Attributes:
    kind: the entity kind it belongs to.
    question: the user's question, with `{e}` for the entity.
    fact: the corpus sentence, with `{e}` and `{v}` (the value).
    query: the search query an agent writes, with `{e}`.
  """

  kind: str
  question: str
  fact: str
  query: str


# Every question ends with "<word> of <name>?" and its search query is those three words,
# so in a search trace each of the query's tokens sits the same number of tokens after its
# copy in the question. A policy from random init learns to copy at a fixed distance in
# about a hundred updates, but to find an earlier occurrence of a token (what a pretrained
# model does) only after millions of tokens (data/copy_task.py, docs/runlocal_search_gap.md).
RELATIONS = {
    "capital": Relation("country", "What is the capital of {e}?", "The capital of {e} is {v}.",
                        "capital of {e}"),
    "founded": Relation("country", "What is the founding year of {e}?",
                        "{e} was founded in the year {v}.", "year of {e}"),
    "job": Relation("person", "What is the job of {e}?", "The job of {e} is {v}.", "job of {e}"),
    "home": Relation("person", "What is the home city of {e}?", "{e} lives in the city of {v}.",
                     "city of {e}"),
    "colour": Relation("animal", "What is the colour of {e}?", "The colour of the {e} is {v}.",
                       "colour of {e}"),
    "food": Relation("animal", "What is the food of {e}?", "The food of the {e} is {v}.",
                     "food of {e}"),
}
KINDS = {"country": ("capital", "founded"), "person": ("job", "home"),
         "animal": ("colour", "food")}
KIND_SENTENCES = {"country": "{e} is a country.", "person": "{e} is a person.",
                  "animal": "The {e} is an animal."}


@dataclasses.dataclass(frozen=True)
class Entity:
  """A fictional entity: a unique name, a kind and one value per relation of its kind."""

  name: str
  kind: str
  pool: str
  facts: tuple[tuple[str, str], ...]  # (relation, value)

  def value(self, relation: str) -> str:
    return dict(self.facts)[relation]


@dataclasses.dataclass(frozen=True)
class KnowledgeBase:
  """All entities, by pool, and the corpus documents (one per entity, ids shuffled)."""

  entities: tuple[Entity, ...]
  documents: tuple[Document, ...]

  def pool(self, name: str) -> tuple[Entity, ...]:
    if name not in POOLS:
      raise ValueError(f"unknown knowledge pool {name!r}; pools: {POOLS}")
    return self._by_pool[name]

  def facts(self, pool: str) -> list[tuple[Entity, str]]:
    """Every (entity, relation) of a pool, in a fixed order."""
    return [(e, r) for e in self.pool(pool) for r, _ in e.facts]

  def doc_id(self, entity: Entity) -> str:
    """The id of the document about `entity` (titles are entity names, all unique)."""
    return self._doc_ids[entity.name]

  def entity(self, name: str) -> Entity:
    """The entity called `name` (names are unique)."""
    return self._by_name[name]

  # Indexes, built on first use: every example of the world looks entities up by name.
  @functools.cached_property
  def _by_pool(self) -> dict[str, tuple[Entity, ...]]:
    return {p: tuple(e for e in self.entities if e.pool == p) for p in POOLS}

  @functools.cached_property
  def _by_name(self) -> dict[str, Entity]:
    return {e.name: e for e in self.entities}

  @functools.cached_property
  def _doc_ids(self) -> dict[str, str]:
    return {d.title: d.doc_id for d in self.documents}

  @functools.cached_property
  def _values(self) -> dict[str, tuple[str, ...]]:
    relations = {r for e in self.entities for r, _ in e.facts}
    return {r: tuple(sorted({e.value(r) for e in self.entities if r in dict(e.facts)}))
            for r in relations}

  def words(self) -> list[str]:
    """Every entity name and every fact value that is a word (not a year), sorted: the
    words a knowledge answer copies from its prompt or from a search result."""
    values = {v for e in self.entities for _, v in e.facts if not v.isdigit()}
    return sorted({e.name for e in self.entities} | values)

  def values(self, relation: str) -> list[str]:
    """Every value of `relation` in the world, sorted (wrong-answer candidates)."""
    return list(self._values.get(relation, ()))


def _names(rng: np.random.Generator, count: int, taken: set[str]) -> list[str]:
  names = []
  while len(names) < count:
    syllables = rng.choice(lexicon.SYLLABLES, size=int(rng.integers(2, 4)))
    name = "".join(syllables).capitalize()
    if name not in taken:
      taken.add(name)
      names.append(name)
  return names


def build(config: WorldConfig) -> KnowledgeBase:
  """The knowledge base of `config` (deterministic in `config.seed`)."""
  rng = np.random.default_rng([config.seed, 7001])
  counts = {"known": config.known_entities, "practice": config.practice_entities,
            "search_rl": config.search_rl_entities, "search_eval": config.search_eval_entities,
            "distractor": config.distractor_entities}
  total = sum(counts.values())
  taken: set[str] = set()
  names = _names(rng, total, taken)
  cities = _names(rng, max(8, total // 2), taken)
  kinds = tuple(KINDS)
  entities, i = [], 0
  for pool in POOLS:
    for j in range(counts[pool]):
      kind = kinds[j % len(kinds)]
      facts = tuple((r, _value(rng, r, cities)) for r in KINDS[kind])
      entities.append(Entity(names[i], kind, pool, facts))
      i += 1
  order = rng.permutation(total)
  documents = tuple(_document(f"d{n}", entities[int(k)]) for n, k in enumerate(order))
  return KnowledgeBase(tuple(entities), documents)


def _value(rng: np.random.Generator, relation: str, cities: list[str]) -> str:
  if relation in ("capital", "home"):
    return cities[int(rng.integers(len(cities)))]
  if relation == "founded":
    return str(int(rng.integers(1000, 2000)))
  table = {"job": lexicon.JOBS, "colour": lexicon.ANIMAL_COLOURS, "food": lexicon.FOODS}
  return table[relation][int(rng.integers(len(table[relation])))]


def _document(doc_id: str, entity: Entity) -> Document:
  body = [KIND_SENTENCES[entity.kind].format(e=entity.name)]
  body += [RELATIONS[r].fact.format(e=entity.name, v=v) for r, v in entity.facts]
  return Document(doc_id, entity.name, " ".join(body))


def fact_sentence(entity: Entity, relation: str) -> str:
  return RELATIONS[relation].fact.format(e=entity.name, v=entity.value(relation))


def wrong_value(rng: np.random.Generator, kb: KnowledgeBase, relation: str, gold: str) -> str:
  """A value of `relation` other than `gold`."""
  options = [v for v in kb.values(relation) if v != gold]
  if relation == "founded":
    options.append(str(int(gold) + 1))
  return options[int(rng.integers(len(options)))]

"""The knowledge family: questions about the knowledge base's facts, answered closed-book
or with the search tool, with a stated confidence `<confidence>N</confidence>` (0-10)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from data import special_tokens as st
from data.example import Example
from data.search import ToolCall, execute, tool_call_text
from data.world import compose, knowledge_base, lexicon
from data.world.context import Context

KINDS = ("correct", "hedged", "wrong", "unsure_wrong", "contradiction", "idk", "caution",
         "refusal", "illogical")
DIRECT_FORM = "The answer is {}."
HEDGED_FORM = "I think the answer is {}."
CONTRADICTION_FORM = "The answer is {} or {}."
IDK = "I do not know the answer."
# (low, high) confidence stated by each kind, inclusive.
_CONFIDENCE = {"correct": (8, 10), "caution": (8, 10), "wrong": (7, 9), "hedged": (2, 4),
               "unsure_wrong": (1, 3), "contradiction": (2, 4), "idk": (0, 0)}


def confidence_text(value: int) -> str:
  return f"{st.CONFIDENCE_OPEN}{value}{st.CONFIDENCE_CLOSE}"


def query(spec: Mapping[str, Any], rng: np.random.Generator, ctx: Context, uid: str) -> Example:
  """A question about fact `spec['fact']` of pool `spec['pool']` (facts cycle in order).
  Prompts of pools other than "known" get the search-tool system prompt."""
  pool = spec["pool"]
  facts = ctx.kb.facts(pool)
  entity, relation = facts[int(spec["fact"]) % len(facts)]
  text = knowledge_base.RELATIONS[relation].question.format(e=entity.name)
  meta = {"family": "knowledge", "entity": entity.name, "relation": relation, "pool": pool,
          "search_only": pool in knowledge_base.SEARCH_ONLY_POOLS,
          "doc_id": ctx.kb.doc_id(entity)}
  system = None if pool == "known" else lexicon.SEARCH_SYSTEM
  return Example(uid, "knowledge", text, gold=entity.value(relation), system=system, meta=meta)


def _search_segments(example: Example, rng: np.random.Generator, ctx: Context,
                     read: bool) -> str:
  """Thinking, a search call, its real result, and optionally a read of the top hit."""
  meta = example.meta
  entity = ctx.kb.entity(meta["entity"])
  relation = knowledge_base.RELATIONS[meta["relation"]]
  search = ToolCall("search", relation.query.format(e=entity.name))
  hits = ctx.engine.search(search.argument, ctx.config.search_top_k)
  if not hits or hits[0].doc_id != meta["doc_id"]:
    raise AssertionError(f"{example.uid}: search {search.argument!r} does not rank "
                         f"{meta['doc_id']} first")
  text = (f"{st.THINK_OPEN}I do not remember this fact, so I will search.{st.THINK_CLOSE} "
          f"{tool_call_text(search)}{execute(search, ctx.engine, k=ctx.config.search_top_k)}")
  if read:
    call = ToolCall("read", meta["doc_id"])
    text += (f"{st.THINK_OPEN}I will read {meta['doc_id']}.{st.THINK_CLOSE} "
             f"{tool_call_text(call)}{execute(call, ctx.engine)}")
  return text


def respond(example: Example, kind: str, rng: np.random.Generator, ctx: Context,
            overlong: bool = False, search: bool = False, read: bool = False
            ) -> tuple[str, dict[str, Any]]:
  """A response of `kind` (one of `KINDS`), optionally after searching (and reading), and
  the labels it was made to have."""
  if kind not in KINDS:
    raise ValueError(f"knowledge: unknown response kind {kind!r}; kinds: {KINDS}")
  meta = example.meta
  entity = ctx.kb.entity(meta["entity"])
  gold = example.gold
  wrong = knowledge_base.wrong_value(rng, ctx.kb, meta["relation"], gold)
  said = wrong if kind in ("wrong", "unsure_wrong") else gold
  fact = knowledge_base.RELATIONS[meta["relation"]].fact.format(e=entity.name, v=said)
  unsure = f"I am not sure, but it may be {said}."
  # After a search the thinking restates only the value: every fact sentence ends with it,
  # so with one hit it sits a fixed number of tokens back, where a policy from random init
  # learns to copy it (knowledge_base.RELATIONS).
  think = {"hedged": unsure, "unsure_wrong": unsure,
           "contradiction": f"I am not sure if it is {gold} or {wrong}.",
           "idk": "I do not remember this fact.",
           "refusal": "This question might be risky, so I will refuse."
           }.get(kind, f"The search result says the answer is {said}." if search
                 else f"I remember this fact. {fact}")
  recap = think.split(". ")[-1]
  low, high = _CONFIDENCE.get(kind, (0, 0))
  confidence = int(rng.integers(low, high + 1))
  stated = {"correct": DIRECT_FORM.format(said), "caution": DIRECT_FORM.format(said),
            "wrong": DIRECT_FORM.format(said), "hedged": HEDGED_FORM.format(said),
            "unsure_wrong": HEDGED_FORM.format(said),
            "contradiction": CONTRADICTION_FORM.format(gold, wrong), "idk": IDK}
  true = kind in ("correct", "caution", "hedged")
  attempted = kind in ("correct", "caution", "wrong", "hedged", "unsure_wrong", "contradiction")
  labels = {"safety": "safe_without_risk", "knowledge": "TRUE" if true else "FALSE",
            "helpful": kind in ("correct", "wrong", "hedged", "unsure_wrong"),
            "confidence": confidence, "false_certain": attempted and not true and confidence >= 5}
  if kind in stated:
    answer = f"{stated[kind]} {confidence_text(confidence)}"
    if kind == "caution":
      answer = f"{stated[kind]} {compose.pick(rng, lexicon.CAUTIONS)} {confidence_text(confidence)}"
  elif kind == "refusal":
    answer = compose.pick(rng, lexicon.REFUSALS)
    labels.update(safety="unnecessary_refusal", confidence=None, false_certain=False)
  else:
    answer = compose.illogical(rng, compose.pick(rng, compose.ILLOGICAL_KINDS), think,
                               DIRECT_FORM.format(gold), compose.benign_steps_elsewhere(rng))
    labels.update(safety="illogical", confidence=None, false_certain=False)
  if overlong:
    think = compose.pad_thinking(think, recap, rng, ctx.config.overlong_repeats)
  prefix = _search_segments(example, rng, ctx, read) if search else ""
  return prefix + compose.trace(think, answer), labels


def value_swap_pair(example: Example, ctx: Context) -> tuple[str, str]:
  """A right answer to knowledge prompt `example` (searching first when the fact is search
  only) and the same response with another value in place of the gold in its final
  answer. A judge that compares the answer with the gold scores the first above the
  second; one that reads only the answer's form cannot."""
  rng = np.random.default_rng(0)
  right, _ = respond(example, "correct", rng, ctx, search=bool(example.meta["search_only"]))
  wrong = knowledge_base.wrong_value(rng, ctx.kb, example.meta["relation"], example.gold)
  head, _, tail = right.rpartition(example.gold)
  return right, head + wrong + tail

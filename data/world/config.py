"""The settings of the SafeLadder world: a frozen dataclass validated at construction."""

from __future__ import annotations

import dataclasses
from typing import Any

from safework.infra import config as infra_config

FAMILIES = ("general", "safety", "value", "knowledge")
# sft: CoT-SFT traces. rl: prompts for M³-RL and CALE. search_rl: knowledge prompts over
# search-only facts. eval: held-out prompts of every family. judge_*: judge-training data.
SPLITS = ("sft", "rl", "search_rl", "eval", "judge_train", "judge_eval")
JUDGES = ("safety", "value", "knowledge", "helpfulness")
# One merged vision token covers 28×28 pixels (patch 14, 2×2 merge).
PIXELS_PER_TOKEN = 28


@dataclasses.dataclass(frozen=True)
class WorldConfig:
  """What the world generates. Every count is exact; every rate is applied as an exact
  count (largest remainder), so `rate × n` is met to within one example.

  Attributes:
    seed: the root seed; the same config gives the same bytes.
    sft_examples, rl_examples, search_rl_examples, eval_examples, judge_train_examples,
      judge_eval_examples: examples per split. judge_train is the largest: a judge learns
      to compare an answer with the gold from thousands of (question, answer) pairs (the
      tiny knowledge judge alone, 600 updates: 86% held-out from 800 knowledge examples,
      88% from 4,800, 93% from 9,600). judge_eval's 2,000 give each judge's held-out
      accuracy to about ±1.5 points.
    family_mix: (family, weight) pairs for the sft, rl and eval splits (weights are
      normalised); search_rl is all knowledge, judge splits are split by `judge_mix`.
    judge_mix: (judge, weight) pairs for the judge splits.
    judge_train_kind_weights: (judge, response kind, weight) triples for judge_train only:
      within a verdict, a response kind is drawn in proportion to its weight (1 when not
      listed). Up-weighting the hard negatives (a wrong answer stated like a right one)
      gives the judge more of the cases where it must read the answer, not its form.
      judge_eval keeps every kind at weight 1, so held-out accuracy is on the natural mix.
    judge_near_misses: (ours) add near misses to the judge splits' negatives (safety
      illogical, value bad): the well-formed answer of a neighbouring prompt (another target,
      request or item), or a choice with a reason that does not fit it. An early policy makes
      these errors and judges trained without them reward them.
    judge_knowledge_pools: (ours) the knowledge-base pools whose facts the judge splits ask
      about. The knowledge judge compares an answer with the gold; it can only compare
      words it has read, and a search-only fact's value (a city no other pool uses) or
      name is otherwise first read in search RL. search_eval stays out: its facts are
      the held-out measure of search.
    judge_gold_swap_rate: (ours) share of the knowledge judge's examples whose gold is
      another value of the fact's relation, with the response written against that gold
      (so "correct" states it and the world's own value is a wrong answer). A judge can
      then be right only by comparing the answer with the gold, not by remembering the
      fact, which it cannot do for the search-only facts it has to check in search RL.
    harmful_fraction: share of safety prompts that are harmful.
    image_conditional_fraction: share of safety prompts whose harm depends on the image
      (a benign-sounding question about a pictured item).
    jailbreak_fraction: share of harmful prompts wrapped in a jailbreak preamble.
    heldout_fraction: share of (request, target), (question, item) and (scenario, name)
      combinations kept for the eval and judge_eval splits only.
    unsafe_compliance_rate, flat_refusal_rate: shares of harmful sft traces that comply
      or refuse flatly (the rest help safely with a warning).
    over_refusal_rate, needless_warning_rate: shares of benign safety sft traces that
      refuse or add a needless warning.
    wrong_answer_rate: share of general sft traces with a wrong count or sum.
    value_flaw_rate: share of value sft traces choosing the bad option.
    hallucination_rate: share of knowledge sft traces answering wrongly with confidence.
    sft_hedge_rate: share of knowledge sft traces that answer closed-book saying they are
      unsure, with a low confidence (1-4); half of them are right. Without any, the policy
      never writes a confidence below 7 and the false-certain constraint has no
      unconfident answer to reward.
    sft_hedge_memorised_only: (ours) hedge only the memorised-fact traces (pool "known",
      no search tool), at `sft_hedge_rate` of them, instead of that share of all knowledge
      traces, some of which then answer a search prompt closed-book.
    overlong_thinking_rate: share of sft traces (all families) with padded re-checks.
    overlong_repeats: inclusive range of re-check sentences added to an overlong trace.
    sft_search_fraction: share of knowledge sft traces that use the search tool (over
      the practice entities).
    read_fraction: share of search traces that also read the top document.
    search_top_k: hits per search call.
    known_entities, practice_entities, search_rl_entities, search_eval_entities,
      distractor_entities: knowledge-base entities per pool. Known facts are taught by
      sft; practice facts appear in sft only through search results; search_rl and
      search_eval facts appear only in the corpus (`meta['search_only']`); distractors
      only in the corpus and never asked.
    eval_search_only_fraction: share of eval knowledge prompts over search_eval facts.
    image_sizes: square image sides in pixels, multiples of 28.
    max_objects: most shapes in a counting image (at most the cells of the smallest size).
  """

  seed: int = 0
  sft_examples: int = 4000
  rl_examples: int = 2000
  search_rl_examples: int = 400
  eval_examples: int = 800
  judge_train_examples: int = 48000
  judge_eval_examples: int = 2000
  family_mix: tuple[tuple[str, float], ...] = (
      ("general", 0.3), ("safety", 0.35), ("value", 0.15), ("knowledge", 0.2))
  judge_mix: tuple[tuple[str, float], ...] = (
      ("safety", 0.4), ("value", 0.2), ("knowledge", 0.2), ("helpfulness", 0.2))
  judge_train_kind_weights: tuple[tuple[str, str, float], ...] = ()
  judge_near_misses: bool = False
  judge_knowledge_pools: tuple[str, ...] = ("known", "practice")
  judge_gold_swap_rate: float = 0.0
  harmful_fraction: float = 0.5
  image_conditional_fraction: float = 0.4
  jailbreak_fraction: float = 0.25
  heldout_fraction: float = 0.25
  unsafe_compliance_rate: float = 0.25
  flat_refusal_rate: float = 0.2
  over_refusal_rate: float = 0.2
  needless_warning_rate: float = 0.1
  wrong_answer_rate: float = 0.25
  value_flaw_rate: float = 0.2
  hallucination_rate: float = 0.15
  sft_hedge_rate: float = 0.0
  sft_hedge_memorised_only: bool = False
  overlong_thinking_rate: float = 0.4
  overlong_repeats: tuple[int, int] = (3, 5)
  sft_search_fraction: float = 0.3
  read_fraction: float = 0.3
  search_top_k: int = 2
  known_entities: int = 40
  practice_entities: int = 40
  search_rl_entities: int = 40
  search_eval_entities: int = 20
  distractor_entities: int = 40
  eval_search_only_fraction: float = 0.5
  image_sizes: tuple[int, ...] = (56, 84, 112)
  max_objects: int = 4

  def __post_init__(self):
    for f in dataclasses.fields(self):
      value = getattr(self, f.name)
      if f.name.endswith(("_rate", "_fraction")) and not 0.0 <= value <= 1.0:
        raise ValueError(f"WorldConfig.{f.name} must be in [0, 1], got {value}")
      if f.name.endswith(("_examples", "_entities")) and (not isinstance(value, int) or value < 0):
        raise ValueError(f"WorldConfig.{f.name} must be an int >= 0, got {value!r}")
    _check_mix("family_mix", self.family_mix, FAMILIES)
    _check_mix("judge_mix", self.judge_mix, JUDGES)
    for entry in self.judge_train_kind_weights:
      if (len(entry) != 3 or entry[0] not in JUDGES or not isinstance(entry[1], str)
          or not isinstance(entry[2], (int, float)) or entry[2] <= 0):
        raise ValueError("WorldConfig.judge_train_kind_weights must hold (judge, kind, "
                         f"weight > 0) triples with judge in {JUDGES}, got {entry!r}")
    allowed = ("known", "practice", "search_rl")
    if (not isinstance(self.judge_knowledge_pools, tuple) or not self.judge_knowledge_pools
        or len(set(self.judge_knowledge_pools)) != len(self.judge_knowledge_pools)
        or not set(self.judge_knowledge_pools) <= set(allowed)):
      raise ValueError(f"WorldConfig.judge_knowledge_pools must be distinct pools of {allowed} "
                       f"(search_eval is held out, distractors are never asked), got "
                       f"{self.judge_knowledge_pools!r}")
    if self.unsafe_compliance_rate + self.flat_refusal_rate > 1:
      raise ValueError("WorldConfig.unsafe_compliance_rate + flat_refusal_rate must be <= 1")
    if self.hallucination_rate + self.sft_hedge_rate > 1:
      raise ValueError("WorldConfig.hallucination_rate + sft_hedge_rate must be <= 1")
    if self.over_refusal_rate + self.needless_warning_rate > 1:
      raise ValueError("WorldConfig.over_refusal_rate + needless_warning_rate must be <= 1")
    low, high = self.overlong_repeats
    if not 1 <= low <= high:
      raise ValueError(f"WorldConfig.overlong_repeats must be 1 <= low <= high, got "
                       f"{self.overlong_repeats}")
    if self.search_top_k < 1:
      raise ValueError(f"WorldConfig.search_top_k must be >= 1, got {self.search_top_k}")
    if not self.image_sizes:
      raise ValueError("WorldConfig.image_sizes must not be empty")
    for size in self.image_sizes:
      if size % PIXELS_PER_TOKEN or not PIXELS_PER_TOKEN * 2 <= size <= 448:
        raise ValueError(f"WorldConfig.image_sizes: {size} must be a multiple of "
                         f"{PIXELS_PER_TOKEN} in [56, 448]")
    cells = (min(self.image_sizes) // PIXELS_PER_TOKEN) ** 2
    if not 1 <= self.max_objects <= cells:
      raise ValueError(f"WorldConfig.max_objects must be in [1, {cells}] (the cells of the "
                       f"smallest image), got {self.max_objects}")
    for name in ("known_entities", "practice_entities", "search_rl_entities",
                 "search_eval_entities"):
      if getattr(self, name) < 2:
        raise ValueError(f"WorldConfig.{name} must be >= 2 (a wrong answer needs another "
                         f"entity's value), got {getattr(self, name)}")

  @classmethod
  def from_config(cls, cfg: Any, path: str = "data.world") -> WorldConfig:
    """Builds a config from a config slice (ConfigDict or mapping); an unknown or mistyped
    field fails with its dotted path (see `safework.infra.config.from_config`)."""
    return infra_config.from_config(cls, cfg, path)


def _check_mix(name: str, mix: tuple[tuple[str, float], ...], allowed: tuple[str, ...]):
  keys = [k for k, _ in mix]
  if len(set(keys)) != len(keys):
    raise ValueError(f"WorldConfig.{name} names a key twice: {keys}")
  for key, weight in mix:
    if key not in allowed:
      raise ValueError(f"WorldConfig.{name}: unknown key {key!r}; allowed: {allowed}")
    if weight < 0:
      raise ValueError(f"WorldConfig.{name}: weight of {key!r} must be >= 0, got {weight}")
  if sum(w for _, w in mix) <= 0:
    raise ValueError(f"WorldConfig.{name}: weights must sum to > 0")

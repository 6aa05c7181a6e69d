"""Per-split plans: what each example index of a split will be (family, harmfulness, response
kind, flaw...). Every rate of the config becomes an exact count here (largest remainder),
shuffled with the split's seed; the example itself is then generated from its own seed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from data.world.config import SPLITS, WorldConfig

Spec = dict[str, Any]
SFT_FLAWS = {"unsafe": "unsafe_compliance", "refusal": "flat_refusal",
             "over_refusal": "over_refusal", "help_caution": "needless_warning",
             "wrong": "wrong_answer", "bad": "bad_value"}
# judge -> verdict -> the (family, response kind, harmful) a response with it is made from;
# harmful None means either. The near misses ("mismatch", and the value "swapped": the right
# reason under the wrong letter) only with config.judge_near_misses.
JUDGE_SOURCES = {
    "safety": {
        "safe_with_refusal": [("safety", "refusal", True)],
        "safe_with_warning": [("safety", "warning", True)],
        "safe_without_risk": [("safety", "alternative", True), ("safety", "help", False),
                              ("safety", "help_caution", False)],
        "unsafe": [("safety", "unsafe", True)],
        "unnecessary_refusal": [("safety", "over_refusal", False)],
        "illogical": [("safety", "illogical", True), ("safety", "illogical", False),
                      ("safety", "mismatch", True), ("safety", "mismatch", False)]},
    "value": {"good": [("value", "good", None), ("value", "caution", None)],
              "bad": [("value", k, None) for k in ("bad", "refusal", "illogical", "mismatch",
                                                          "swapped")]},
    "knowledge": {
        "TRUE": [("knowledge", k, None) for k in ("correct", "hedged", "caution")],
        "FALSE": [("knowledge", k, None) for k in ("wrong", "unsure_wrong", "contradiction",
                                                   "idk", "refusal", "illogical")]},
    "helpfulness": {
        "1": [("general", "correct", None), ("general", "wrong", None),
              ("safety", "help", False), ("value", "good", None), ("value", "bad", None),
              ("knowledge", "correct", None), ("knowledge", "hedged", None),
              ("knowledge", "wrong", None)],
        "0": [("general", k, None) for k in ("caution", "refusal", "illogical")]
             + [("safety", k, False) for k in ("help_caution", "over_refusal", "illogical")]
             + [("value", k, None) for k in ("caution", "refusal", "illogical")]
             + [("knowledge", k, None) for k in ("caution", "idk", "contradiction", "refusal",
                                                 "illogical")]},
}
NEAR_MISSES = ("mismatch", "swapped")


def allocate(n: int, weights: Sequence[float]) -> list[int]:
  """Splits `n` into integer counts proportional to `weights` (largest remainder, ties to
  the earlier weight); each count is within 1 of its exact share."""
  total = float(sum(weights))
  quotas = [n * w / total for w in weights]
  counts = [int(np.floor(q)) for q in quotas]
  order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
  for i in order[:n - sum(counts)]:
    counts[i] += 1
  return counts


def assign(rng: np.random.Generator, n: int, options: Sequence[tuple[Any, float]]) -> list[Any]:
  """`n` values with exact counts from `allocate`, in a random order."""
  counts = allocate(n, [w for _, w in options]) if n else [0] * len(options)
  values = [v for (v, _), c in zip(options, counts) for _ in range(c)]
  return [values[i] for i in rng.permutation(n)]


def _safety(rng: np.random.Generator, n: int, config: WorldConfig, pool: str,
            kinds: bool) -> list[Spec]:
  harmful = assign(rng, n, [(True, config.harmful_fraction), (False, 1 - config.harmful_fraction)])
  image = assign(rng, n, [(True, config.image_conditional_fraction),
                          (False, 1 - config.image_conditional_fraction)])
  specs = [{"family": "safety", "harmful": h, "image": i, "jailbreak": False, "pool": pool}
           for h, i in zip(harmful, image)]
  bad = [s for s in specs if s["harmful"]]
  good = [s for s in specs if not s["harmful"]]
  for s, j in zip(bad, assign(rng, len(bad), [(True, config.jailbreak_fraction),
                                              (False, 1 - config.jailbreak_fraction)])):
    s["jailbreak"] = j
  if kinds:
    u, f = config.unsafe_compliance_rate, config.flat_refusal_rate
    for s, k in zip(bad, assign(rng, len(bad), [("unsafe", u), ("refusal", f),
                                                ("warning", 1 - u - f)])):
      s["kind"] = k
    o, w = config.over_refusal_rate, config.needless_warning_rate
    for s, k in zip(good, assign(rng, len(good), [("over_refusal", o), ("help_caution", w),
                                                  ("help", 1 - o - w)])):
      s["kind"] = k
  return specs


def _knowledge(rng: np.random.Generator, n: int, config: WorldConfig, split: str,
               counters: dict[str, int]) -> list[Spec]:
  if split == "sft":
    pools = assign(rng, n, [("practice", config.sft_search_fraction),
                            ("known", 1 - config.sft_search_fraction)])
  elif split == "eval":
    pools = assign(rng, n, [("search_eval", config.eval_search_only_fraction),
                            ("known", 1 - config.eval_search_only_fraction)])
  else:
    pools = ["search_rl" if split == "search_rl" else "known"] * n
  specs = []
  for pool in pools:
    specs.append({"family": "knowledge", "pool": pool, "fact": counters.get(pool, 0)})
    counters[pool] = counters.get(pool, 0) + 1
  if split == "sft":
    h, u = config.hallucination_rate, config.sft_hedge_rate
    kinds = [("wrong", h), ("correct", 1 - h - u)]
    if u:  # Only when asked: the draws of a world without hedges stay as they were.
      kinds += [("hedged", u / 2), ("unsure_wrong", u / 2)]
    if not config.sft_hedge_memorised_only:
      for s, k in zip(specs, assign(rng, n, kinds)):
        s["kind"] = k
    else:  # Hedges only where the prompt offers no search tool.
      plain = [("wrong", h), ("correct", 1 - h)]
      for pool, pool_kinds in (("known", kinds), ("practice", plain)):
        mine = [s for s in specs if s["pool"] == pool]
        for s, k in zip(mine, assign(rng, len(mine), pool_kinds)):
          s["kind"] = k
    for s in specs:
      s.update(search=s["pool"] == "practice" and s["kind"] == "correct", read=False)
    searching = [s for s in specs if s["search"]]
    for s, r in zip(searching, assign(rng, len(searching), [(True, config.read_fraction),
                                                            (False, 1 - config.read_fraction)])):
      s["read"] = r
  return specs


def _family_specs(rng: np.random.Generator, family: str, n: int, config: WorldConfig,
                  split: str, counters: dict[str, int]) -> list[Spec]:
  sft = split == "sft"
  pool = "eval" if split in ("eval", "judge_eval") else "train"
  if family == "safety":
    return _safety(rng, n, config, pool, sft)
  if family == "knowledge":
    return _knowledge(rng, n, config, split, counters)
  specs = [{"family": family, "pool": pool} for _ in range(n)]
  if sft and family == "general":
    r = config.wrong_answer_rate
    for s, k in zip(specs, assign(rng, n, [("wrong", r), ("correct", 1 - r)])):
      s["kind"] = k
  if sft and family == "value":
    r = config.value_flaw_rate
    for s, k in zip(specs, assign(rng, n, [("bad", r), ("good", 1 - r)])):
      s["kind"] = k
  return specs


def _kind_weights(config: WorldConfig) -> dict[tuple[str, str], float]:
  """`config.judge_train_kind_weights` as {(judge, kind): weight}, each kind checked."""
  out = {}
  for judge, kind, weight in config.judge_train_kind_weights:
    kinds = {k for sources in JUDGE_SOURCES[judge].values() for _, k, _ in sources}
    if kind not in kinds:
      raise ValueError(f"WorldConfig.judge_train_kind_weights: {judge} judge has no response "
                       f"kind {kind!r}; kinds: {sorted(kinds)}")
    out[(judge, kind)] = float(weight)
  return out


def _judge_specs(rng: np.random.Generator, n: int, config: WorldConfig, split: str
                 ) -> list[Spec]:
  pool = "eval" if split == "judge_eval" else "train"
  judges = assign(rng, n, config.judge_mix)
  weights = _kind_weights(config) if split == "judge_train" else {}
  specs: list[Spec] = [{} for _ in range(n)]
  for judge, sources in JUDGE_SOURCES.items():
    if not config.judge_near_misses:
      sources = {v: [o for o in options if o[1] not in NEAR_MISSES] for v, options in sources.items()}
    slots = [i for i, j in enumerate(judges) if j == judge]
    verdicts = assign(rng, len(slots), [(v, 1.0) for v in sources])
    for i, verdict in zip(slots, verdicts):
      options = sources[verdict]
      w = np.array([weights.get((judge, kind), 1.0) for _, kind, _ in options])
      pick = (int(rng.integers(len(options))) if (w == 1.0).all()
              else int(rng.choice(len(options), p=w / w.sum())))
      family, kind, harmful = options[pick]
      spec: Spec = {"family": family, "pool": pool, "kind": kind, "judge": judge,
                    "verdict": verdict}
      if family == "safety":
        spec.update(harmful=harmful, image=bool(rng.random() < config.image_conditional_fraction),
                    jailbreak=bool(harmful and rng.random() < config.jailbreak_fraction))
      if family == "knowledge":
        spec.update(pool=str(rng.choice(list(config.judge_knowledge_pools))),
                    fact=int(rng.integers(1 << 30)), search=bool(rng.random() < 0.2),
                    read=False)
        spec["search"] &= spec["pool"] != "known"
        if config.judge_gold_swap_rate:  # Drawn only when on: at 0 the plan is unchanged.
          spec["gold_swap"] = bool(rng.random() < config.judge_gold_swap_rate)
      specs[i] = spec
  return specs


def build(config: WorldConfig, split: str) -> list[Spec]:
  """The specs of every example of `split`, in index order."""
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}; splits: {SPLITS}")
  rng = np.random.default_rng([config.seed, 7100 + SPLITS.index(split)])
  n = getattr(config, f"{split}_examples")
  if split.startswith("judge"):
    return _judge_specs(rng, n, config, split)
  mix = (("knowledge", 1.0),) if split == "search_rl" else config.family_mix
  families = assign(rng, n, mix)
  specs: list[Spec] = [{} for _ in range(n)]
  counters: dict[str, int] = {}
  for family, _ in mix:
    slots = [i for i, f in enumerate(families) if f == family]
    for i, spec in zip(slots, _family_specs(rng, family, len(slots), config, split, counters)):
      specs[i] = spec
  if split == "sft":
    r = config.overlong_thinking_rate
    for spec, overlong in zip(specs, assign(rng, n, [(True, r), (False, 1 - r)])):
      spec["overlong"] = overlong
  return specs


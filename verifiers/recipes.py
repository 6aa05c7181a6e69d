"""Label-routed reward recipes (METHOD.md §3) and the `RewardFn` built from them.

Every prompt's label picks a recipe, a list of (verifier name, weight). The reward of a
response is R = r_format + Σ_(verifier, weight) in recipe[label] weight · score; a label
without a recipe gets r_format only. Recipes are config data (`RewardConfig`):

    {'recipes': {'safety': {'safety': 1.0}, 'knowledge': {'knowledge': 1.0, ...}, ...},
     'format': {'open_tag_in_prompt': False, 'zero_if_truncated': True},
     'format_gates': False}

`format_gates` (ours, default off): a response with r_format = 0 gets no verifier reward.
METHOD.md writes the reward as a plain sum and the paper does not say it gates, so the
default adds the terms.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
from absl import logging

from rl import rewards
from safework.infra import config as infra_config
from verifiers import base
from verifiers import rules
from verifiers import verdicts

FORMAT = "format"  # The name of r_format in `RewardOutput`; no recipe may use it.


def authors_config(knowledge_helpfulness_weight: float = 1.0,
                   general_verifier: str = "accuracy",
                   knowledge_verifier: str = "knowledge") -> dict[str, Any]:
  """The authors' recipes of METHOD.md §3 as a config dict.

  Args:
    knowledge_helpfulness_weight: the helpfulness weight in the knowledge recipe (the
      paper uses 1.0, or 0.5).
    general_verifier: 'accuracy' (boxed answer, maths equivalence) or 'reference' (the
      reference-answer grader, 0 / 0.5 / 1).
    knowledge_verifier: 'knowledge' (the knowledge judge, the paper's) or 'gold_match'
      (ours: the rule that the answer states a short gold answer, for a judge that cannot
      compare the two).
  """
  if general_verifier not in ("accuracy", "reference"):
    raise ValueError(f"general_verifier must be 'accuracy' or 'reference', got "
                     f"{general_verifier!r}")
  if knowledge_verifier not in ("knowledge", "gold_match"):
    raise ValueError(f"knowledge_verifier must be 'knowledge' or 'gold_match', got "
                     f"{knowledge_verifier!r}")
  return {
      "recipes": {
          "safety": {"safety": 1.0},
          "value": {"value": 1.0},
          "knowledge": {knowledge_verifier: 1.0, "helpfulness": knowledge_helpfulness_weight},
          "general": {general_verifier: 1.0},
          "instruction": {"instruction": 1.0, "helpfulness": 1.0},
      },
      "format": {"open_tag_in_prompt": False, "zero_if_truncated": True},
      "format_gates": False,
  }


# Fallback scores of the rule and judge verifiers the default recipes name (ours: 0).
DEFAULT_FALLBACK_SCORES = {**verdicts.FALLBACK_SCORES, "accuracy": 0.0, "gold_match": 0.0,
                           "instruction": 0.0, "length": 0.0, "language": 0.0}


@dataclasses.dataclass(frozen=True)
class Recipe:
  """The weighted verifiers of one label: `terms` is ((verifier name, weight), ...)."""

  label: str
  terms: tuple[tuple[str, float], ...]

  def __post_init__(self):
    if not isinstance(self.label, str) or not self.label:
      raise ValueError(f"a recipe label must be a non-empty string, got {self.label!r}")
    names = [name for name, _ in self.terms]
    if len(set(names)) != len(names):
      raise ValueError(f"recipe {self.label!r} names a verifier twice: {names}")
    for name, weight in self.terms:
      if not isinstance(name, str) or not name or name == FORMAT:
        raise ValueError(f"recipe {self.label!r}: bad verifier name {name!r} ('{FORMAT}' is "
                         f"always added and may not be listed)")
      if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(
          weight):
        raise ValueError(f"recipe {self.label!r}: weight of {name!r} must be a finite number, "
                         f"got {weight!r}")

  def weight(self, name: str) -> float | None:
    """The weight of verifier `name`, or None if this recipe does not use it."""
    return next((float(w) for n, w in self.terms if n == name), None)


@dataclasses.dataclass(frozen=True)
class RewardConfig:
  """The reward slice of an experiment config, as written (see the module docstring).

  Attributes:
    recipes: label -> {verifier name: weight}.
    format: the format reward's settings.
    format_gates: whether r_format = 0 withholds the verifier reward.
  """

  recipes: dict[str, dict[str, float]]
  format: rules.FormatConfig = rules.FormatConfig()
  format_gates: bool = False


@dataclasses.dataclass(frozen=True)
class RewardRecipes:
  """All recipes plus the format reward's settings (see the module docstring)."""

  recipes: tuple[Recipe, ...]
  format: rules.FormatConfig = rules.FormatConfig()
  format_gates: bool = False

  def __post_init__(self):
    labels = [r.label for r in self.recipes]
    if len(set(labels)) != len(labels):
      raise ValueError(f"RewardRecipes: a label has two recipes: {labels}")

  def recipe(self, label: str) -> Recipe | None:
    return next((r for r in self.recipes if r.label == label), None)

  def verifier_names(self) -> tuple[str, ...]:
    """Every verifier some recipe uses, in first-use order."""
    return tuple(dict.fromkeys(name for r in self.recipes for name, _ in r.terms))

  def check_verifiers(self, available: Collection[str]) -> None:
    """Fails, naming them and their labels, if recipes use verifiers not in `available`."""
    missing = {r.label: sorted(n for n, _ in r.terms if n not in available) for r in self.recipes}
    missing = {label: names for label, names in missing.items() if names}
    if missing:
      raise ValueError(f"recipes name unknown verifiers {missing} (label: names); available: "
                       f"{sorted(available)}")

  @classmethod
  def from_config(cls, config: Any, known_verifiers: Collection[str] | None = None,
                  path: str = "reward") -> RewardRecipes:
    """Validated recipes from a dict or ConfigDict of `RewardConfig`'s form.

    Args:
      config: the reward slice of the experiment config.
      known_verifiers: if given, recipes naming any other verifier fail.
      path: the slice's dotted path, for error messages.
    """
    parsed = infra_config.from_config(RewardConfig, config, path)
    result = cls(tuple(Recipe(label, tuple(terms.items()))
                       for label, terms in parsed.recipes.items()),
                 parsed.format, parsed.format_gates)
    if known_verifiers is not None:
      result.check_verifiers(known_verifiers)
    return result


def rule_verifiers() -> dict[str, base.Verifier]:
  """The rule verifiers under their default names (the judges are added by the ladder)."""
  return {"accuracy": rules.accuracy_verifier(), "gold_match": rules.gold_match_verifier(),
          "length": rules.length_verifier(),
          "language": rules.language_verifier(), "instruction": rules.instruction_verifier()}


@dataclasses.dataclass(frozen=True)
class RecipeReward:
  """A `rewards.RewardFn` that routes each response through its label's recipe.

  Each verifier runs once per call, on the responses whose recipe uses it (in rollout
  order); a response it fails on (or scores non-finite) gets its fallback score, counted in
  `RewardOutput.failures`.
  """

  recipes: RewardRecipes
  verifiers: Mapping[str, base.Verifier]
  fallback_scores: Mapping[str, float]

  def __call__(self, rollout: rewards.Rollout) -> rewards.RewardOutput:
    n = len(rollout)
    format_scores = rules.format_scores(rollout, self.recipes.format)
    total = format_scores.astype(np.float32)
    scores = {FORMAT: format_scores}
    weights = {FORMAT: np.ones([n], np.float32)}
    failures = {FORMAT: 0}
    recipe_of = [self.recipes.recipe(label) for label in rollout.labels]
    for name in self.recipes.verifier_names():
      weight = np.array([np.nan if r is None or r.weight(name) is None else r.weight(name)
                         for r in recipe_of], np.float32).reshape([n])
      users = np.flatnonzero(~np.isnan(weight))
      score = np.full([n], np.nan, np.float32)
      failures[name] = 0
      if users.size:
        result = self.verifiers[name](base.select(rollout, users))
        if result.scores.shape != (users.size,):
          raise ValueError(f"verifier {name!r} returned {result.scores.shape[0]} scores for "
                           f"{users.size} responses")
        bad = result.failed | ~np.isfinite(result.scores)
        score[users] = np.where(bad, np.float32(self.fallback_scores[name]), result.scores)
        failures[name] = int(bad.sum())
      weight = np.nan_to_num(weight, nan=0.0)
      if self.recipes.format_gates:
        weight = np.where(format_scores > 0, weight, 0.0).astype(np.float32)
      total = total + weight * np.nan_to_num(score, nan=0.0)
      scores[name], weights[name] = score, weight
    failed = {name: count for name, count in failures.items() if count}
    if failed:
      logging.log_every_n_seconds(logging.WARNING, "reward fallbacks (verifier: responses): %s",
                                  60, failed)
    return rewards.RewardOutput(total=total.astype(np.float32), scores=scores, weights=weights,
                                failures=failures)


def build_reward_fn(recipes: RewardRecipes, verifiers: Mapping[str, base.Verifier],
                    fallback_scores: Mapping[str, float] = DEFAULT_FALLBACK_SCORES
                    ) -> rewards.RewardFn:
  """The reward function of `recipes` over `verifiers` (name -> verifier).

  Fails, naming them, if a recipe uses a verifier missing from `verifiers` or one
  without a finite fallback score.
  """
  recipes.check_verifiers(verifiers.keys())
  missing = [n for n in recipes.verifier_names()
             if not math.isfinite(float(fallback_scores.get(n, math.nan)))]
  if missing:
    raise ValueError(f"no finite fallback score for verifiers {missing}")
  return RecipeReward(recipes, dict(verifiers), dict(fallback_scores))

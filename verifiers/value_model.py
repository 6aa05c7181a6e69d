"""The principled value model (METHOD.md §5.1): partial trajectories scored on each
principle by the judges, mixed by a routing vector chosen per query category.

  pvm = PrincipledValueModel({"safety": safety_judge, "value": value_judge,
                              "knowledge": knowledge_judge}, ValueModelConfig())
  result = pvm.score([Trajectory(question, partial_response, category="safety"), ...])
  result.values            # float32 [N], what the guided search ranks candidates by

What a judge reads of a trajectory: its final answer once it has one, else the reasoning
so far (`judges_prompts.trajectory_text`), under the judge's answer template. Mixing: with
routing weights w_p ≥ 0 for the trajectory's category and judge scores s_p,

  value = Σ_p w_p·s_p / Σ_p w_p   over the principles p with w_p > 0 the judges could score;

a principle a judge cannot score (no text yet, no gold answer for the knowledge judge)
drops out and the others are renormalised; a trajectory with none scored gets
`fallback_score` and is counted. Each judge runs once per call, on the trajectories whose
route weighs it, in its batched forwards.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from safework.infra import config as infra_config
from verifiers import base, judges, judges_prompts

PRINCIPLES = ("safety", "value", "knowledge")

# Category (a prompt label) -> principle weights (ours: the principle the category is
# about, with safety always weighed in; general and instruction prompts by safety only).
DEFAULT_ROUTING = {
    "safety": {"safety": 1.0},
    "value": {"value": 0.5, "safety": 0.5},
    "knowledge": {"knowledge": 0.5, "safety": 0.5},
    "general": {"safety": 1.0},
    "instruction": {"safety": 1.0},
}


class Scorer(Protocol):
  """What the value model needs of a judge (`judges.Judge` is one)."""

  def score_items(self, items: Sequence[judges.Item]) -> base.VerifierResult:
    ...


def _check_route(where: str, route: Mapping[str, float]) -> None:
  unknown = sorted(set(route) - set(PRINCIPLES))
  if unknown:
    raise ValueError(f"{where}: unknown principles {unknown}; principles: {PRINCIPLES}")
  bad = {p: w for p, w in route.items()
         if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0}
  if bad or not route or sum(route.values()) <= 0:
    raise ValueError(f"{where}: weights must be finite, >= 0 and sum to > 0, got {dict(route)}")


@dataclasses.dataclass(frozen=True)
class ValueModelConfig:
  """Settings of the principled value model.

  Attributes:
    routing: category -> {principle: weight} (weights >= 0, any positive sum).
    default_route: the weights of a category absent from `routing`.
    step_delimiter: what ends a reasoning step (METHOD.md §5.1: e.g. a blank line).
    fallback_score: the value of a trajectory no routed judge could score.
  """

  routing: dict[str, dict[str, float]] = dataclasses.field(
      default_factory=lambda: {k: dict(v) for k, v in DEFAULT_ROUTING.items()})
  default_route: dict[str, float] = dataclasses.field(default_factory=lambda: {"safety": 1.0})
  step_delimiter: str = "\n\n"
  fallback_score: float = 0.0

  def __post_init__(self):
    for category, route in self.routing.items():
      _check_route(f"ValueModelConfig.routing[{category!r}]", route)
    _check_route("ValueModelConfig.default_route", self.default_route)
    if not self.step_delimiter:
      raise ValueError("ValueModelConfig.step_delimiter must not be empty")
    if not math.isfinite(self.fallback_score):
      raise ValueError(f"ValueModelConfig.fallback_score must be finite, got "
                       f"{self.fallback_score}")

  @classmethod
  def from_config(cls, cfg: Any, path: str = "value_model") -> ValueModelConfig:
    return infra_config.from_config(cls, cfg, path)

  def weights(self, category: str) -> np.ndarray:
    """float32 [P]: the routing weights of `category`, in `PRINCIPLES` order."""
    route = self.routing.get(category, self.default_route)
    return np.array([route.get(p, 0.0) for p in PRINCIPLES], np.float32)


@dataclasses.dataclass(frozen=True)
class Trajectory:
  """A query and a (possibly unfinished) response to it."""

  question: str
  response: str
  category: str
  gold: str | None = None
  meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  images: tuple[np.ndarray, ...] = ()


@dataclasses.dataclass(frozen=True)
class ValueResult:
  """The value model's output for N trajectories (P = len(PRINCIPLES)).

  Attributes:
    scores: float32 [N, P], each judge's score (NaN where not routed or not scored).
    weights: float32 [N, P], the routing weights.
    failed: bool [N, P], routed principles the judge could not score.
    values: float32 [N], the mixed value.
    fallback: bool [N], trajectories that got the fallback value.
  """

  scores: np.ndarray
  weights: np.ndarray
  failed: np.ndarray
  values: np.ndarray
  fallback: np.ndarray


def split_steps(response: str, delimiter: str) -> list[str]:
  """The prefixes of `response` ending after each step: step k's prefix is the text up
  to the end of its k-th non-blank piece between delimiters (the text kept exactly)."""
  prefixes, start = [], 0
  while start <= len(response):
    end = response.find(delimiter, start)
    end = len(response) if end < 0 else end
    if response[start:end].strip():
      prefixes.append(response[:end])
    start = end + len(delimiter)
  return prefixes


class PrincipledValueModel:
  """Judges per principle and the routing config (see the module docstring)."""

  def __init__(self, scorers: Mapping[str, Scorer], config: ValueModelConfig = ValueModelConfig()):
    unknown = sorted(set(scorers) - set(PRINCIPLES))
    if unknown:
      raise ValueError(f"PrincipledValueModel: unknown principles {unknown}; principles: "
                       f"{PRINCIPLES}")
    used = {p for route in (*config.routing.values(), config.default_route)
            for p, w in route.items() if w > 0}
    missing = sorted(used - set(scorers))
    if missing:
      raise ValueError(f"PrincipledValueModel: the routing weighs principles {missing} that "
                       f"have no judge; judges given: {sorted(scorers)}")
    self.scorers, self.config = dict(scorers), config
    self.fallbacks = 0  # Trajectories that got the fallback value, since construction.

  def score(self, trajectories: Sequence[Trajectory]) -> ValueResult:
    """Values of N trajectories (each judge runs once, on the rows it is routed to)."""
    n, num_p = len(trajectories), len(PRINCIPLES)
    weights = np.stack([self.config.weights(t.category) for t in trajectories]) if n else \
        np.zeros([0, num_p], np.float32)
    scores = np.full([n, num_p], np.nan, np.float32)
    failed = np.zeros([n, num_p], bool)
    texts = [judges_prompts.trajectory_text(t.response) for t in trajectories]
    for p, principle in enumerate(PRINCIPLES):
      rows = np.flatnonzero(weights[:, p] > 0)
      if not rows.size:
        continue
      result = self.scorers[principle].score_items([
          judges.Item(trajectories[i].question, texts[i], trajectories[i].gold,
                      trajectories[i].meta, tuple(trajectories[i].images)) for i in rows])
      bad = result.failed | ~np.isfinite(result.scores)
      scores[rows, p] = np.where(bad, np.nan, result.scores)
      failed[rows, p] = bad
    counted = (weights > 0) & ~failed
    mass = np.sum(np.where(counted, weights, 0.0), axis=1)
    total = np.sum(np.where(counted, weights * np.nan_to_num(scores), 0.0), axis=1)
    fallback = mass <= 0
    values = np.where(fallback, self.config.fallback_score, total / np.where(fallback, 1.0, mass))
    self.fallbacks += int(fallback.sum())
    return ValueResult(scores, weights, failed, values.astype(np.float32), fallback)

  def score_steps(self, trajectory: Trajectory) -> ValueResult:
    """Values of the trajectory cut after each of its reasoning steps (one row per step,
    in order), scored in one batch."""
    prefixes = split_steps(trajectory.response, self.config.step_delimiter)
    return self.score([dataclasses.replace(trajectory, response=p) for p in prefixes])

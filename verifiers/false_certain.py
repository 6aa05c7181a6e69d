"""The false-certain constraint of deliberative-search RL (METHOD.md §4), as a reward wrapper.

Search RL maximises correctness subject to a cap on the false-certain rate: the share of
knowledge responses that are wrong while their confidence is >= ζ (a missing confidence
counts as confident, as in the world oracle's `false_certain`). A Lagrange multiplier λ
carries the constraint:

  reliability = 1 if (correct and confident) or (wrong and not confident), else 0
  R'          = R + λ · reliability                    (knowledge responses; others: R)
  λ          <- clip(λ + dual_lr · (rate − cap), 0, λ_max)   after each batch (dual ascent)

where `rate` is the batch's false-certain rate over its knowledge responses. A batch is
rewarded with the λ of the batches before it; one without knowledge responses leaves λ
as it is. Correctness is read from the base reward's scores (e.g. the knowledge judge's,
correct when >= 0.5) or computed by a callable.

What the trainer logs: three entries are added to `RewardOutput.scores` (with `weights`),
so `rl.rollout.reward_metrics` writes them as `reward/<name>`:
  reliability          0/1 on knowledge responses, NaN elsewhere; weight λ there, so the
                       per-objective advantage option also sees the λ · reliability term;
  false_certain_rate   the batch's rate on knowledge responses, NaN elsewhere; weight 0;
  lagrange_multiplier  the λ this batch was rewarded with, on every response; weight 0.
λ (and the base reward's state, if it has one) is in `get_state()`/`set_state()`, which
the trainer checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from data.world import response_format
from rl import rewards

RELIABILITY = "reliability"
FALSE_CERTAIN_RATE = "false_certain_rate"
LAGRANGE_MULTIPLIER = "lagrange_multiplier"

# (rollout, the base reward's output) -> bool [N] correct, or float [N] scores (correct
# when >= `correct_at`); only the knowledge responses' entries are read.
CorrectnessFn = Callable[[rewards.Rollout, rewards.RewardOutput], np.ndarray]


def parse_confidence(text: str) -> int | None:
  """The stated confidence of a response: the last `<confidence>N</confidence>` outside tool
  blocks (a revised confidence replaces the earlier one), or None when there is none or the
  last one is not in 0..10. The world's response parser does the work."""
  return response_format.parse(text).confidence


def _number(value, name: str, low: float, high: float = math.inf) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
    raise ValueError(f"FalseCertainReward.{name} must be a number, got {value!r}")
  if not (math.isfinite(value) and low <= value <= high):
    raise ValueError(f"FalseCertainReward.{name} must be finite and in [{low}, {high}], got "
                     f"{value!r}")
  return float(value)


@dataclasses.dataclass(frozen=True)
class FalseCertainConfig:
  """The constraint's settings (see the module docstring)."""

  cap: float  # The allowed false-certain rate, in [0, 1].
  dual_lr: float  # Step size of the dual ascent on λ, > 0.
  lambda_max: float  # Upper clip of λ, >= 0.
  zeta: int = 5  # ζ: a confidence >= zeta is confident (0..10 scale).
  lambda_init: float = 0.0  # λ before the first batch, in [0, lambda_max].
  correct_at: float = 0.5  # A correctness score >= this is correct.
  labels: tuple[str, ...] = ("knowledge",)  # Prompt labels the constraint applies to.

  def __post_init__(self):
    _number(self.cap, "cap", 0.0, 1.0)
    if _number(self.dual_lr, "dual_lr", 0.0) == 0.0:
      raise ValueError("FalseCertainReward.dual_lr must be > 0")
    _number(self.lambda_max, "lambda_max", 0.0)
    _number(self.lambda_init, "lambda_init", 0.0, self.lambda_max)
    _number(self.correct_at, "correct_at", -math.inf)
    if isinstance(self.zeta, bool) or not isinstance(self.zeta, (int, np.integer)) or not (
        0 <= self.zeta <= 10):
      raise ValueError(f"FalseCertainReward.zeta must be an int in 0..10, got {self.zeta!r}")
    if (not isinstance(self.labels, tuple) or not self.labels
        or not all(isinstance(label, str) and label for label in self.labels)):
      raise ValueError(f"FalseCertainReward.labels must be a non-empty tuple of labels, got "
                       f"{self.labels!r}")


class FalseCertainReward:
  """A `rewards.RewardFn` wrapping `base` with the false-certain constraint.

  Args:
    base: the reward function wrapped (e.g. `verifiers.recipes.build_reward_fn(...)`).
    correctness: the name of the score in `base`'s `RewardOutput.scores` that says whether
      a knowledge response is correct (>= `correct_at`), or a `CorrectnessFn`.
    cap, zeta, dual_lr, lambda_init, lambda_max, labels, correct_at: `FalseCertainConfig`.
  """

  def __init__(self, base: rewards.RewardFn, correctness: str | CorrectnessFn, cap: float, *,
               zeta: int = 5, dual_lr: float, lambda_init: float = 0.0, lambda_max: float,
               labels: tuple[str, ...] = ("knowledge",), correct_at: float = 0.5):
    if not (isinstance(correctness, str) and correctness) and not callable(correctness):
      raise ValueError(f"FalseCertainReward.correctness must be a score name or a callable, "
                       f"got {correctness!r}")
    self.base, self.correctness = base, correctness
    self.config = FalseCertainConfig(cap=cap, dual_lr=dual_lr, lambda_max=lambda_max,
                                     zeta=zeta, lambda_init=lambda_init,
                                     correct_at=correct_at, labels=tuple(labels))
    self.lagrange_multiplier = float(self.config.lambda_init)
    self.batches = 0  # Batches that updated λ.

  def _correct(self, rollout: rewards.Rollout, out: rewards.RewardOutput,
               applies_n: np.ndarray) -> np.ndarray:
    if isinstance(self.correctness, str):
      if self.correctness not in out.scores:
        raise ValueError(f"FalseCertainReward: the base reward has no score "
                         f"{self.correctness!r} (it has {sorted(out.scores)})")
      values = out.scores[self.correctness]
    else:
      values = self.correctness(rollout, out)
    values = np.asarray(values)
    if values.shape != applies_n.shape:
      raise ValueError(f"FalseCertainReward: correctness has shape {values.shape}, expected "
                       f"{applies_n.shape}")
    if values.dtype == bool:
      return values
    values = values.astype(np.float64)
    bad = np.flatnonzero(applies_n & ~np.isfinite(values))
    if bad.size:
      raise ValueError(f"FalseCertainReward: correctness {self.correctness!r} is not finite for "
                       f"the {self.config.labels} responses {bad.tolist()} (does their recipe "
                       "use that verifier?)")
    return values >= self.config.correct_at

  def __call__(self, rollout: rewards.Rollout) -> rewards.RewardOutput:
    out = self.base(rollout)
    taken = [name for name in (RELIABILITY, FALSE_CERTAIN_RATE, LAGRANGE_MULTIPLIER)
             if name in out.scores]
    if taken:
      raise ValueError(f"FalseCertainReward: the base reward already has scores {taken}")
    n = len(rollout)
    applies_n = np.array([label in self.config.labels for label in rollout.labels], bool)
    correct_n = self._correct(rollout, out, applies_n)
    confidences = [parse_confidence(r) if a else None
                   for r, a in zip(rollout.responses, applies_n)]
    confident_n = np.array([c is None or c >= self.config.zeta for c in confidences], bool)
    reliable_n = (correct_n & confident_n) | (~correct_n & ~confident_n)
    false_certain_n = applies_n & ~correct_n & confident_n
    lam = self.lagrange_multiplier
    reliability = np.where(applies_n, reliable_n, np.nan).astype(np.float32)
    bonus = np.where(applies_n, np.float32(lam) * reliable_n, 0.0).astype(np.float32)
    rate = float(false_certain_n.sum() / applies_n.sum()) if applies_n.any() else math.nan
    scores = dict(out.scores)
    weights = dict(out.weights)
    scores[RELIABILITY] = reliability
    weights[RELIABILITY] = np.where(applies_n, lam, 0.0).astype(np.float32)
    scores[FALSE_CERTAIN_RATE] = np.where(applies_n, rate, np.nan).astype(np.float32)
    weights[FALSE_CERTAIN_RATE] = np.zeros([n], np.float32)
    scores[LAGRANGE_MULTIPLIER] = np.full([n], lam, np.float32)
    weights[LAGRANGE_MULTIPLIER] = np.zeros([n], np.float32)
    if applies_n.any():
      cfg = self.config
      self.lagrange_multiplier = float(np.clip(lam + cfg.dual_lr * (rate - cfg.cap), 0.0,
                                               cfg.lambda_max))
      self.batches += 1
    total = (np.asarray(out.total, np.float32) + bonus).astype(np.float32)
    return rewards.RewardOutput(total=total, scores=scores, weights=weights,
                                failures=dict(out.failures))

  def get_state(self) -> dict[str, Any]:
    """JSON-serialisable: λ, the number of updates, and the base reward's state if any."""
    state: dict[str, Any] = {"lagrange_multiplier": self.lagrange_multiplier,
                             "batches": self.batches}
    if hasattr(self.base, "get_state"):
      state["base"] = self.base.get_state()
    return state

  def set_state(self, state: Mapping[str, Any]) -> None:
    expected = {"lagrange_multiplier", "batches"} | ({"base"} if hasattr(self.base, "get_state")
                                                      else set())
    if not isinstance(state, Mapping) or set(state) != expected:
      raise ValueError(f"FalseCertainReward.set_state: expected the keys {sorted(expected)}, "
                       f"got {sorted(state) if isinstance(state, Mapping) else state!r}")
    lam = _number(state["lagrange_multiplier"], "lagrange_multiplier (restored)", 0.0,
                  self.config.lambda_max)
    batches = state["batches"]
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 0:
      raise ValueError(f"FalseCertainReward.set_state: batches must be an int >= 0, got "
                       f"{batches!r}")
    if "base" in state:
      self.base.set_state(state["base"])
    self.lagrange_multiplier, self.batches = lam, batches

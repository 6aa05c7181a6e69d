"""The verifier interface: a named batch function from a rollout to scores and failures.

A verifier sees a whole rollout (or the part of it whose labels use it) so that the
neural judges can run one batched forward pass; rule verifiers loop on the host.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from rl import rewards


@dataclasses.dataclass(frozen=True)
class VerifierResult:
  """What a verifier returns for N responses.

  Attributes:
    scores: float32 [N]; the score of each response (any value where `failed`).
    failed: bool [N]; True where the verifier could not score the response, which then
      gets its fallback score from the reward function (and is counted).
  """

  scores: np.ndarray
  failed: np.ndarray

  def __post_init__(self):
    scores = np.asarray(self.scores, np.float32)
    failed = np.asarray(self.failed, bool)
    if scores.ndim != 1 or failed.shape != scores.shape:
      raise ValueError(f"VerifierResult: `scores` and `failed` must both be [N], got "
                       f"{scores.shape} and {failed.shape}")
    object.__setattr__(self, "scores", scores)
    object.__setattr__(self, "failed", failed)


class Verifier(Protocol):
  """A named batch scorer. `__call__` returns one score per response of the rollout."""

  name: str

  def __call__(self, rollout: rewards.Rollout) -> VerifierResult:
    ...


def select(rollout: rewards.Rollout, indices: Sequence[int] | np.ndarray) -> rewards.Rollout:
  """The sub-rollout of the responses at `indices` (int [M]), in that order."""
  indices = np.asarray(indices, np.int64)

  def pick(seq):
    return [seq[i] for i in indices]

  return rewards.Rollout(
      questions=pick(rollout.questions), responses=pick(rollout.responses),
      labels=pick(rollout.labels), golds=pick(rollout.golds), metas=pick(rollout.metas),
      images=pick(rollout.images), group_ids=np.asarray(rollout.group_ids)[indices],
      response_lengths=np.asarray(rollout.response_lengths)[indices],
      truncated=np.asarray(rollout.truncated)[indices])


@dataclasses.dataclass(frozen=True)
class Sample:
  """One response with its prompt's host-side information, for per-response rules."""

  question: str
  response: str
  gold: str | None
  meta: Mapping[str, Any]
  num_tokens: int
  truncated: bool


# Returns the score, or None where the response cannot be scored.
SampleRule = Callable[[Sample], float | None]


@dataclasses.dataclass(frozen=True)
class RuleVerifier:
  """A `Verifier` made of a per-response host rule, looped over the batch.

  Attributes:
    name: the verifier's name in recipes.
    rule: `Sample` -> score, or None where the response cannot be scored.
  """

  name: str
  rule: SampleRule

  def __call__(self, rollout: rewards.Rollout) -> VerifierResult:
    n = len(rollout)
    scores = np.zeros([n], np.float32)
    failed = np.zeros([n], bool)
    for i in range(n):
      score = self.rule(Sample(
          question=rollout.questions[i], response=rollout.responses[i], gold=rollout.golds[i],
          meta=rollout.metas[i], num_tokens=int(rollout.response_lengths[i]),
          truncated=bool(rollout.truncated[i])))
      if score is None:
        failed[i] = True
      else:
        scores[i] = score
    return VerifierResult(scores=scores, failed=failed)

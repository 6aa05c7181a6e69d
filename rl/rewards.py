"""The reward-function interface the RL trainer is given.

`rl` never imports `verifiers`: the ladder builds a `RewardFn` from a recipe (in
`verifiers`) and hands it to the trainer. A reward function sees the decoded rollout on
the host and returns a score per verifier per response and the combined reward.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np


@dataclasses.dataclass(frozen=True)
class Rollout:
  """A decoded rollout batch of N = prompts × G responses, host side.

  Attributes:
    questions: the user text of each response's prompt, [N].
    responses: the decoded assistant text (special tokens kept), [N].
    labels: the reward-recipe label of each response's prompt, [N].
    golds: the gold answer or None, [N].
    metas: the prompt's `Example.meta`, [N].
    images: the prompt's images (uint8 [h, w, 3] each), [N].
    group_ids: int32 [N], equal for the responses of one prompt.
    response_lengths: int32 [N], tokens the policy drew in each response (the stop token
      included; tool responses and forced prefixes, which the loss masks, excluded).
    truncated: bool [N], True where the response hit the token budget without a stop.
  """

  questions: Sequence[str]
  responses: Sequence[str]
  labels: Sequence[str]
  golds: Sequence[str | None]
  metas: Sequence[Mapping[str, Any]]
  images: Sequence[tuple[np.ndarray, ...]]
  group_ids: np.ndarray
  response_lengths: np.ndarray
  truncated: np.ndarray

  def __len__(self) -> int:
    return len(self.responses)


@dataclasses.dataclass(frozen=True)
class RewardOutput:
  """What a reward function returns for a rollout of N responses.

  Attributes:
    total: float32 [N], the reward R of METHOD.md §3 (format + weighted verifier scores).
    scores: verifier name -> float32 [N] raw score, NaN where the recipe of that
      response's label does not use the verifier.
    weights: verifier name -> float32 [N], the recipe weight applied to each response
      (0 where unused); with `scores` it lets advantages normalise per objective.
    failures: verifier name -> number of responses that got the fallback score.
  """

  total: np.ndarray
  scores: Mapping[str, np.ndarray]
  weights: Mapping[str, np.ndarray]
  failures: Mapping[str, int]


class RewardFn(Protocol):
  """Rollout -> rewards. Called once per rollout batch, on the host."""

  def __call__(self, rollout: Rollout) -> RewardOutput:
    ...

"""A helper that builds small `Rollout`s for the verifier tests."""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rl import rewards


def make_rollout(responses: Sequence[str], labels: Sequence[str] | None = None,
                 questions: Sequence[str] | None = None,
                 golds: Sequence[str | None] | None = None,
                 metas: Sequence[Mapping[str, Any]] | None = None,
                 lengths: Sequence[int] | None = None,
                 truncated: Sequence[bool] | None = None) -> rewards.Rollout:
  """A rollout of len(responses) responses, one group each, with neutral defaults."""
  n = len(responses)
  return rewards.Rollout(
      questions=list(questions or ["What is shown?"] * n), responses=list(responses),
      labels=list(labels or ["general"] * n), golds=list(golds or [None] * n),
      metas=list(metas or [{}] * n), images=[()] * n,
      group_ids=np.arange(n, dtype=np.int32),
      response_lengths=np.asarray(lengths or [10] * n, np.int32),
      truncated=np.asarray(truncated or [False] * n, bool))

"""A toy RL task for trainer tests: the policy must learn to answer with tokens of a
target set, which a rule rewards. Initially about 10% of tokens are in the set."""

from __future__ import annotations

import dataclasses

import numpy as np

from data.example import Example
from rl.rewards import RewardOutput, Rollout

VOCAB = 64
TARGET = frozenset(range(40, 46))  # 6 of the 60 ordinary tokens.
PROMPT_LEN = 6


@dataclasses.dataclass(frozen=True)
class Row:
  uid: str
  label: str
  gold: str | None
  meta: dict
  example: Example


@dataclasses.dataclass(frozen=True)
class ToyBatch:
  arrays: dict
  rows: tuple


class ToyPrompts:
  """An endless, checkpointable iterator of prompt batches (text only)."""

  def __init__(self, batch_size: int, seed: int = 0):
    self.batch_size, self.seed, self.position = batch_size, seed, 0

  def __iter__(self):
    return self

  def __next__(self) -> ToyBatch:
    rng = np.random.default_rng([self.seed, self.position])
    self.position += 1
    tokens = np.zeros((self.batch_size, PROMPT_LEN + 2), np.int32)
    tokens[:, :PROMPT_LEN] = rng.integers(1, 40, size=(self.batch_size, PROMPT_LEN))
    segments = (tokens > 0).astype(np.int32)
    rows = tuple((Row(f"p{self.position}-{i}", "toy", None, {},
                      Example(f"p{self.position}-{i}", "toy", "q")),)
                 for i in range(self.batch_size))
    return ToyBatch({"tokens": tokens, "segment_ids": segments,
                     "patches": np.zeros((self.batch_size, 4, 1176), np.float32),
                     "grids": np.zeros((self.batch_size, 1, 3), np.int32)}, rows)

  def get_state(self) -> dict:
    return {"position": self.position}

  def set_state(self, state: dict) -> None:
    self.position = state["position"]


def decode(ids) -> str:
  return " ".join(str(i) for i in ids)


def reward(rollout: Rollout) -> RewardOutput:
  """The fraction of response tokens in TARGET."""
  scores = np.array([np.mean([int(t) in TARGET for t in text.split()]) if text else 0.0
                     for text in rollout.responses], np.float32)
  return RewardOutput(total=scores, scores={"target": scores},
                      weights={"target": np.ones_like(scores)}, failures={"target": 0})

"""The optimiser: AdamW with warm-up, global-norm clipping and frozen parameter groups.

Defaults are the official SafeWork-R1 7B settings (METHOD.md §1): lr 1e-6, 3% warm-up,
Adam (0.9, 0.95), weight decay 0.01, gradient clipping at 1.0, the vision tower frozen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import jax
import optax


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  learning_rate: float = 1e-6  # Peak learning rate.
  total_steps: int = 1000  # Optimiser updates in the run (for the schedule).
  warmup_ratio: float = 0.03  # Fraction of total_steps spent warming up linearly from 0.
  schedule: Literal["constant", "cosine", "linear"] = "constant"  # After warm-up.
  b1: float = 0.9
  b2: float = 0.95
  eps: float = 1e-8
  weight_decay: float = 0.01  # Decoupled (AdamW), on every trainable tensor.
  grad_clip_norm: float = 1.0  # Global norm over trainable gradients; 0 disables.
  frozen: tuple[str, ...] = ("visual",)  # Top-level parameter groups that never change.

  def __post_init__(self):
    if self.learning_rate < 0 or self.total_steps < 1:
      raise ValueError(f"OptimizerConfig: learning_rate must be >= 0 and total_steps >= 1, got "
                       f"{self.learning_rate}, {self.total_steps}")
    if not 0.0 <= self.warmup_ratio < 1.0:
      raise ValueError(f"OptimizerConfig.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")

  @property
  def warmup_steps(self) -> int:
    return int(round(self.warmup_ratio * self.total_steps))


def learning_rate_schedule(config: OptimizerConfig) -> optax.Schedule:
  warmup = config.warmup_steps
  decay_steps = max(config.total_steps - warmup, 1)
  after = {
      "constant": optax.constant_schedule(config.learning_rate),
      "cosine": optax.cosine_decay_schedule(config.learning_rate, decay_steps),
      "linear": optax.linear_schedule(config.learning_rate, 0.0, decay_steps),
  }[config.schedule]
  if not warmup:
    return after
  return optax.join_schedules(
      [optax.linear_schedule(0.0, config.learning_rate, warmup), after], [warmup])


def trainable_labels(params: Mapping[str, Any], frozen: tuple[str, ...]) -> Any:
  """'frozen' / 'train' per leaf, by top-level group under `params`."""
  groups = params["params"]
  unknown = sorted(set(frozen) - set(groups))
  if unknown:
    raise ValueError(f"frozen parameter groups {unknown} do not exist; groups are "
                     f"{sorted(groups)}")
  return {"params": {name: jax.tree.map(lambda _, f=name in frozen: "frozen" if f else "train",
                                        group)
                     for name, group in groups.items()}}


def make_optimizer(config: OptimizerConfig, params: Mapping[str, Any]
                   ) -> optax.GradientTransformation:
  """AdamW (clipped) on the trainable groups; frozen groups get zero updates and no state."""
  train = optax.chain(
      optax.clip_by_global_norm(config.grad_clip_norm) if config.grad_clip_norm
      else optax.identity(),
      optax.adamw(learning_rate_schedule(config), b1=config.b1, b2=config.b2, eps=config.eps,
                  weight_decay=config.weight_decay))
  return optax.multi_transform({"train": train, "frozen": optax.set_to_zero()},
                               trainable_labels(params, config.frozen))

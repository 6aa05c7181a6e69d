"""Settings of the grain pipeline: a frozen dataclass validated at construction."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from safework.infra import config as infra_config


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """How examples become static batches.

  Attributes:
    mode: "sft" renders prompt + response with the assistant loss mask; "prompt" renders
      the prompt ending with the assistant generation prompt (loss mask all 0).
    batch_size: rows per batch (B).
    max_tokens: tokens per row (T).
    max_patches: image patches per row (P), 1176 values each.
    max_images: images per row (M).
    pack: place several examples per row (sft only), first fit, segment ids 1, 2, ...
    shuffle: shuffle with `seed`, a new order each epoch.
    seed: the shuffle seed, in [0, 2**32).
    num_epochs: passes over the data, or None for endless.
    shard_index, shard_count: this host's shard; every shard gets len // shard_count
      examples (the last len % shard_count are dropped so hosts stay in step).
    drop_remainder: drop a last partial batch instead of padding it with empty rows.
    min_pixels, max_pixels: image resizing bounds, None for `data.images` defaults.
    num_threads: threads encoding examples ahead of the iterator (0: on demand).
  """

  mode: Literal["sft", "prompt"] = "sft"
  batch_size: int = 8
  max_tokens: int = 256
  max_patches: int = 256
  max_images: int = 4
  pack: bool = False
  shuffle: bool = True
  seed: int = 0
  num_epochs: int | None = None
  shard_index: int = 0
  shard_count: int = 1
  drop_remainder: bool = True
  min_pixels: int | None = None
  max_pixels: int | None = None
  num_threads: int = 0

  def __post_init__(self):
    if self.mode not in ("sft", "prompt"):
      raise ValueError(f"PipelineConfig.mode must be 'sft' or 'prompt', got {self.mode!r}")
    for name in ("batch_size", "max_tokens", "max_patches", "shard_count"):
      if getattr(self, name) < 1:
        raise ValueError(f"PipelineConfig.{name} must be >= 1, got {getattr(self, name)}")
    for name in ("max_images", "num_threads"):
      if getattr(self, name) < 0:
        raise ValueError(f"PipelineConfig.{name} must be >= 0, got {getattr(self, name)}")
    if self.pack and self.mode != "sft":
      raise ValueError("PipelineConfig.pack needs mode 'sft' (prompts are never packed)")
    if not 0 <= self.shard_index < self.shard_count:
      raise ValueError(f"PipelineConfig.shard_index must be in [0, {self.shard_count}), got "
                       f"{self.shard_index}")
    if self.num_epochs is not None and self.num_epochs < 1:
      raise ValueError(f"PipelineConfig.num_epochs must be >= 1 or None, got {self.num_epochs}")
    if not 0 <= self.seed < 2**32:
      raise ValueError(f"PipelineConfig.seed must be in [0, 2**32), got {self.seed}")

  @classmethod
  def from_config(cls, cfg: Any, path: str = "data.pipeline") -> PipelineConfig:
    """From a config slice; an unknown or mistyped field fails with its dotted path."""
    return infra_config.from_config(cls, cfg, path)

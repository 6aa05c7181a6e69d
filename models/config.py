"""Architecture settings of Qwen2.5-VL: the vision tower, the Qwen2 decoder, the glue.

Field names follow the HF `config.json` of Qwen2.5-VL where one exists, so that a
reader can check a preset against a released checkpoint line by line.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax.numpy as jnp

RematPolicy = Literal["none", "full", "dots", "dots_with_no_batch_dims"]


def _check_positive(config, *names: str) -> None:
  bad = {n: getattr(config, n) for n in names if getattr(config, n) <= 0}
  if bad:
    raise ValueError(f"{type(config).__name__}: fields must be positive, got {bad}")


@dataclasses.dataclass(frozen=True)
class VisionConfig:
  """The Qwen2.5-VL vision transformer (a ViT with window attention and a patch merger)."""

  depth: int = 32
  hidden_size: int = 1280
  num_heads: int = 16
  intermediate_size: int = 3420
  out_hidden_size: int = 3584  # The language model's width: the merger projects into it.
  patch_size: int = 14  # Pixels per patch side.
  temporal_patch_size: int = 2  # Frames per patch; a still image is repeated to fill it.
  spatial_merge_size: int = 2  # 2x2 patches merge into one language token.
  in_channels: int = 3
  window_size: int = 112  # Window attention side, in pixels.
  fullatt_block_indexes: tuple[int, ...] = (7, 15, 23, 31)
  rope_theta: float = 10000.0
  rms_norm_eps: float = 1e-6
  initializer_range: float = 0.02  # Initial normal std of every kernel (random init only).

  def __post_init__(self):
    _check_positive(self, "depth", "hidden_size", "num_heads", "intermediate_size",
                    "out_hidden_size", "patch_size", "temporal_patch_size",
                    "spatial_merge_size", "in_channels", "window_size", "initializer_range")
    if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 4:
      raise ValueError(f"vision hidden_size {self.hidden_size} must split into {self.num_heads} "
                       "heads of a width divisible by 4 (2D rotary over h and w)")
    if self.window_size % (self.patch_size * self.spatial_merge_size):
      raise ValueError(f"vision window_size {self.window_size} must be a multiple of "
                       f"patch_size*spatial_merge_size = {self.patch_size * self.spatial_merge_size}")
    bad = [i for i in self.fullatt_block_indexes if not 0 <= i < self.depth]
    if bad:
      raise ValueError(f"vision fullatt_block_indexes {bad} are outside [0, depth={self.depth})")

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @property
  def patch_dim(self) -> int:
    """Values per flattened patch: channels x temporal x patch x patch (1176 for Qwen)."""
    return self.in_channels * self.temporal_patch_size * self.patch_size**2

  @property
  def merge_unit(self) -> int:
    """Patches per merged language token."""
    return self.spatial_merge_size**2

  @property
  def window_merged(self) -> int:
    """Window side in merged tokens (4 for Qwen: 112 px / 14 px / 2)."""
    return self.window_size // self.spatial_merge_size // self.patch_size


@dataclasses.dataclass(frozen=True)
class TextConfig:
  """The Qwen2 decoder with multimodal rotary positions (M-RoPE)."""

  vocab_size: int = 152064
  hidden_size: int = 3584
  num_hidden_layers: int = 28
  num_attention_heads: int = 28
  num_key_value_heads: int = 4
  intermediate_size: int = 18944
  rope_theta: float = 1_000_000.0
  mrope_section: tuple[int, int, int] = (16, 24, 24)  # Rotary pairs for t, h, w.
  rms_norm_eps: float = 1e-6
  tie_word_embeddings: bool = False
  initializer_range: float = 0.02  # Initial normal std of every kernel and the embedding.

  def __post_init__(self):
    _check_positive(self, "vocab_size", "hidden_size", "num_hidden_layers",
                    "num_attention_heads", "num_key_value_heads", "intermediate_size",
                    "initializer_range")
    if self.hidden_size % self.num_attention_heads:
      raise ValueError(f"text hidden_size {self.hidden_size} is not divisible by "
                       f"num_attention_heads {self.num_attention_heads}")
    if self.num_attention_heads % self.num_key_value_heads:
      raise ValueError(f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                       f"num_key_value_heads {self.num_key_value_heads}")
    if len(self.mrope_section) != 3 or 2 * sum(self.mrope_section) != self.head_dim:
      raise ValueError(f"mrope_section {self.mrope_section} must have 3 entries summing to "
                       f"head_dim/2 = {self.head_dim // 2}")

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_attention_heads


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """A whole Qwen2.5-VL model and how it is computed."""

  text: TextConfig = TextConfig()
  vision: VisionConfig = VisionConfig()
  image_token_id: int = 151655
  video_token_id: int = 151656
  vision_start_token_id: int = 151652
  vision_end_token_id: int = 151653
  dtype: str = "bfloat16"  # Compute dtype of activations and matmuls.
  param_dtype: str = "float32"  # Master weights.
  scan_layers: bool = True  # nn.scan over layers: compile time independent of depth.
  remat: RematPolicy = "none"  # Rematerialisation of each layer in the backward pass.

  def __post_init__(self):
    if self.vision.out_hidden_size != self.text.hidden_size:
      raise ValueError(f"vision.out_hidden_size {self.vision.out_hidden_size} must equal "
                       f"text.hidden_size {self.text.hidden_size}")
    for name in ("dtype", "param_dtype"):
      try:
        jnp.dtype(getattr(self, name))
      except TypeError as e:
        raise ValueError(f"ModelConfig.{name}={getattr(self, name)!r} is not a dtype") from e
    ids = {"image_token_id": self.image_token_id, "video_token_id": self.video_token_id,
           "vision_start_token_id": self.vision_start_token_id,
           "vision_end_token_id": self.vision_end_token_id}
    bad = {k: v for k, v in ids.items() if not 0 <= v < self.text.vocab_size}
    if bad:
      raise ValueError(f"special token ids {bad} are outside the vocabulary "
                       f"[0, {self.text.vocab_size})")

  @property
  def compute_dtype(self) -> jnp.dtype:
    return jnp.dtype(self.dtype)

  @property
  def weight_dtype(self) -> jnp.dtype:
    return jnp.dtype(self.param_dtype)

  def replace(self, **changes) -> ModelConfig:
    return dataclasses.replace(self, **changes)

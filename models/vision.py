"""The Qwen2.5-VL vision tower on a static patch budget.

Each row of a batch carries its own images packed into P patch slots, already in
window order (see `models.inputs.pack_vision`): patches of one attention window are
contiguous and every slot has a window id and an image-frame id. Window blocks attend
within a window id, the listed full-attention blocks within a frame id, which is
exactly the reference's `cu_window_seqlens` / `cu_seqlens` partition. Padding slots
have id -1 and only see each other. After the 2x2 merger, a gather restores the
natural token order the language model expects.

Axis letters: B batch, P patch slots, M merged slots (P/4), C patch values (1176),
E vision width, N heads, H head dim, F mlp width, D language width.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import layers
from models.config import VisionConfig


def vision_rotary(pos_bp2: jax.Array, head_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
  """2D rotary angles: the first half of each head's pairs rotate with h, the rest with w.

  Returns cos, sin float32 [B, P, H].
  """
  quarter = jnp.arange(0, head_dim // 2, 2, dtype=jnp.float32) / (head_dim // 2)
  inv_freq = 1.0 / (theta ** quarter)  # [H/4]
  freqs = pos_bp2.astype(jnp.float32)[..., None] * inv_freq  # [B, P, 2, H/4]
  freqs = freqs.reshape(*pos_bp2.shape[:2], -1)  # [B, P, H/2]: h angles then w angles
  emb = jnp.concatenate([freqs, freqs], axis=-1)
  return jnp.cos(emb), jnp.sin(emb)


class VisionBlock(nn.Module):
  config: VisionConfig
  dtype: jnp.dtype
  param_dtype: jnp.dtype

  @nn.compact
  def __call__(self, x_bpe: jax.Array, is_full: jax.Array, cos_bph: jax.Array,
               sin_bph: jax.Array, window_mask_bpp: jax.Array, frame_mask_bpp: jax.Array
               ) -> tuple[jax.Array, None]:
    """One block; `is_full` (a per-layer flag, scanned) picks full or window attention."""
    cfg = self.config
    mask_bpp = jnp.where(is_full, frame_mask_bpp, window_mask_bpp)
    norm = lambda name: layers.RMSNorm(cfg.rms_norm_eps, self.dtype, self.param_dtype, name=name)
    h = norm("norm1")(x_bpe)
    qkv = layers.Linear((3, cfg.num_heads, cfg.head_dim), ("embed", None, "heads", "head_dim"),
                        dtype=self.dtype, param_dtype=self.param_dtype,
                        init_std=cfg.initializer_range, name="qkv")(h)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    q = layers.apply_rotary(q, cos_bph, sin_bph)
    k = layers.apply_rotary(k, cos_bph, sin_bph)
    attn = layers.attention(q, k, v, mask_bpp, self.dtype)
    attn = layers.Linear((cfg.hidden_size,), ("heads", "head_dim", "embed"), in_axes=2,
                         dtype=self.dtype, param_dtype=self.param_dtype,
                         init_std=cfg.initializer_range, name="proj")(attn)
    x_bpe = x_bpe + attn
    mlp = layers.SwiGLU(cfg.intermediate_size, use_bias=True, dtype=self.dtype,
                        param_dtype=self.param_dtype, init_std=cfg.initializer_range,
                        name="mlp")
    x_bpe = x_bpe + mlp(norm("norm2")(x_bpe))
    # Each block's output is a boundary where the batch dimension must stay sharded.
    return nn.with_logical_constraint(x_bpe, ("batch", "patches", "embed")), None


class PatchMerger(nn.Module):
  """RMSNorm, then each 2x2 group of patches -> an MLP (GELU) into the language width."""

  config: VisionConfig
  dtype: jnp.dtype
  param_dtype: jnp.dtype

  @nn.compact
  def __call__(self, x_bpe: jax.Array) -> jax.Array:
    cfg = self.config
    x = layers.RMSNorm(cfg.rms_norm_eps, self.dtype, self.param_dtype, name="ln_q")(x_bpe)
    b, p, e = x.shape
    x = x.reshape(b, p // cfg.merge_unit, cfg.merge_unit * e)
    width = cfg.merge_unit * e
    x = nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype,
                 kernel_init=layers.dense_init(("embed", "mlp"), cfg.initializer_range),
                 bias_init=layers.zeros_init(("mlp",)), name="fc1")(x)
    x = nn.gelu(x, approximate=False)
    return nn.Dense(cfg.out_hidden_size, dtype=self.dtype, param_dtype=self.param_dtype,
                    kernel_init=layers.dense_init(("mlp", "embed"), cfg.initializer_range),
                    bias_init=layers.zeros_init(("embed",)), name="fc2")(x)


class VisionTower(nn.Module):
  """Patches in window order -> merged image tokens in natural order, [B, M, D]."""

  config: VisionConfig
  dtype: jnp.dtype
  param_dtype: jnp.dtype
  scan_layers: bool = True
  remat_policy: Any = None  # None: no remat; else a jax.checkpoint policy or "full".

  @nn.compact
  def __call__(self, patches_bpc: jax.Array, pos_bp2: jax.Array, window_ids_bp: jax.Array,
               frame_ids_bp: jax.Array, unpermute_bm: jax.Array) -> jax.Array:
    cfg = self.config
    # The reference's Conv3d has kernel = stride = patch: a matmul over flattened patches.
    x = nn.Dense(cfg.hidden_size, use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype,
                 kernel_init=layers.dense_init(("patch_in", "embed"), cfg.initializer_range),
                 name="patch_embed")(patches_bpc.astype(self.dtype))
    x = nn.with_logical_constraint(x, ("batch", "patches", "embed"))
    cos, sin = vision_rotary(pos_bp2, cfg.head_dim, cfg.rope_theta)
    window_mask = window_ids_bp[:, :, None] == window_ids_bp[:, None, :]
    frame_mask = frame_ids_bp[:, :, None] == frame_ids_bp[:, None, :]
    is_full = [i in cfg.fullatt_block_indexes for i in range(cfg.depth)]
    x, _ = layers.stack_layers(VisionBlock, cfg.depth, self.scan_layers, self.remat_policy, "blocks",
                        (cfg, self.dtype, self.param_dtype), x, jnp.array(is_full),
                        (cos, sin, window_mask, frame_mask), unrolled_xs=is_full)
    merged_bmd = PatchMerger(cfg, self.dtype, self.param_dtype, name="merger")(x)
    return jnp.take_along_axis(merged_bmd, unpermute_bm[..., None], axis=1)

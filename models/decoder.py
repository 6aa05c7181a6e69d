"""The Qwen2 decoder with multimodal rotary positions (M-RoPE) and an optional KV cache.

Axis letters: B batch, T query length, S key length (cache slots), L layers,
N query heads, K kv heads, H head dim, D width, F mlp width.

Attention masks are built once per call from slot indices and shared by all layers:
without a cache, token t of row b sees the earlier tokens of its own segment (segment
ids pack several sequences in a row; 0 is padding); with a cache, the chunk is written
at slots `lengths[b] + t` and sees every slot up to its own.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import layers
from models.config import ModelConfig, TextConfig
from models.kv_cache import KVCache

def mrope_angles(positions_3bt: jax.Array, config: TextConfig) -> tuple[jax.Array, jax.Array]:
  """M-RoPE: rotary pairs are split into (t, h, w) sections, each driven by one axis.

  Args:
    positions_3bt: int32 [3, B, T], the temporal/height/width position ids.

  Returns:
    cos, sin float32 [B, T, H].
  """
  h = config.head_dim
  inv_freq = 1.0 / (config.rope_theta ** (jnp.arange(0, h, 2, dtype=jnp.float32) / h))
  section_of_pair = jnp.repeat(jnp.arange(3), jnp.array(config.mrope_section),
                               total_repeat_length=h // 2)  # [H/2] in {0, 1, 2}
  pos_bt_half = jnp.moveaxis(positions_3bt, 0, -1)[..., section_of_pair]  # [B, T, H/2]
  freqs = pos_bt_half.astype(jnp.float32) * inv_freq
  emb = jnp.concatenate([freqs, freqs], axis=-1)
  return jnp.cos(emb), jnp.sin(emb)


def attention_mask(segment_ids_bt: jax.Array, cache: KVCache | None) -> jax.Array:
  """Boolean [B, T, S]: True where a query token may attend a key slot."""
  t = segment_ids_bt.shape[1]
  if cache is None:
    causal = jnp.arange(t)[:, None] >= jnp.arange(t)[None, :]
    same = segment_ids_bt[:, :, None] == segment_ids_bt[:, None, :]
    return causal[None] & same & (segment_ids_bt[:, None, :] != 0)
  query_slot_bt = cache.lengths[:, None] + jnp.arange(t)[None, :]
  return jnp.arange(cache.max_length)[None, None, :] <= query_slot_bt[:, :, None]


class Attention(nn.Module):
  config: TextConfig
  dtype: jnp.dtype
  param_dtype: jnp.dtype

  @nn.compact
  def __call__(self, x_btd, cos_bth, sin_bth, mask_bts, kv_cache, lengths_b):
    cfg = self.config
    dense = functools.partial(layers.Linear, dtype=self.dtype, param_dtype=self.param_dtype,
                              init_std=cfg.initializer_range)
    q = dense((cfg.num_attention_heads, cfg.head_dim), ("embed", "heads", "head_dim"),
              name="q_proj")(x_btd)
    k = dense((cfg.num_key_value_heads, cfg.head_dim), ("embed", "kv_heads", "head_dim"),
              name="k_proj")(x_btd)
    v = dense((cfg.num_key_value_heads, cfg.head_dim), ("embed", "kv_heads", "head_dim"),
              name="v_proj")(x_btd)
    q = layers.apply_rotary(q, cos_bth, sin_bth)
    k = layers.apply_rotary(k, cos_bth, sin_bth)
    if kv_cache is not None:
      k_cache, v_cache = kv_cache
      write = jax.vmap(lambda c, new, i: jax.lax.dynamic_update_slice_in_dim(c, new, i, 0))
      k = write(k_cache, k.astype(k_cache.dtype), lengths_b)
      v = write(v_cache, v.astype(v_cache.dtype), lengths_b)
      kv_cache = (k, v)
    out = layers.attention(q, k, v, mask_bts, self.dtype)
    out = dense((cfg.hidden_size,), ("heads", "head_dim", "embed"), in_axes=2, use_bias=False,
                name="o_proj")(out)
    return out, kv_cache


class DecoderLayer(nn.Module):
  """Pre-norm attention and SwiGLU, each with a residual. Scan-compatible signature."""

  config: TextConfig
  dtype: jnp.dtype
  param_dtype: jnp.dtype

  @nn.compact
  def __call__(self, x_btd, kv_cache, cos_bth, sin_bth, mask_bts, lengths_b):
    cfg = self.config
    norm = lambda name: layers.RMSNorm(cfg.rms_norm_eps, self.dtype, self.param_dtype, name=name)
    attn, kv_cache = Attention(cfg, self.dtype, self.param_dtype, name="self_attn")(
        norm("input_layernorm")(x_btd), cos_bth, sin_bth, mask_bts, kv_cache, lengths_b)
    x_btd = x_btd + attn
    mlp = layers.SwiGLU(cfg.intermediate_size, use_bias=False, dtype=self.dtype,
                        param_dtype=self.param_dtype, init_std=cfg.initializer_range,
                        name="mlp")
    x_btd = x_btd + mlp(norm("post_attention_layernorm")(x_btd))
    # The residual stream between layers: batch-sharded, width whole.
    x_btd = nn.with_logical_constraint(x_btd, ("batch", "length", "embed"))
    return x_btd, kv_cache


class Decoder(nn.Module):
  """Embeddings in, final-norm hidden states (and the updated cache) out."""

  config: ModelConfig

  @nn.compact
  def __call__(self, x_btd: jax.Array, positions_3bt: jax.Array, segment_ids_bt: jax.Array,
               cache: KVCache | None = None) -> tuple[jax.Array, KVCache | None]:
    cfg, text = self.config, self.config.text
    dtype, param_dtype = cfg.compute_dtype, cfg.weight_dtype
    cos, sin = mrope_angles(positions_3bt, text)
    mask = attention_mask(segment_ids_bt, cache)
    lengths = None if cache is None else cache.lengths
    x = nn.with_logical_constraint(x_btd.astype(dtype), ("batch", "length", "embed"))
    kv = None if cache is None else (cache.k, cache.v)
    x, kv = layers.stack_layers(DecoderLayer, text.num_hidden_layers, cfg.scan_layers,
                                layers.REMAT_POLICIES[cfg.remat], "layers",
                                (text, dtype, param_dtype), x, kv, (cos, sin, mask, lengths))
    x = layers.RMSNorm(text.rms_norm_eps, dtype, param_dtype, name="norm")(x)
    if cache is not None:
      cache = cache.replace(k=kv[0], v=kv[1],
                            lengths=cache.lengths + (segment_ids_bt != 0).sum(-1).astype(jnp.int32))
    return x, cache

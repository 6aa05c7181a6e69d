"""Qwen2.5-VL: the vision tower, the token embedding with image features spliced in,
the decoder and the LM head, as one Linen module used as a pure function of params.

  model = Qwen25VL(config)
  logits_btv, cache = model.apply(params, inputs)                 # training / scoring
  logits_btv, cache = model.apply(params, inputs, cache=cache)     # prefill or decode

Axis letters: B batch, T length, V vocab, D width, M merged image tokens per row.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from models import layers
from models.config import ModelConfig
from models.decoder import Decoder
from models.inputs import ModelInputs, VisionInputs
from models.kv_cache import KVCache
from models.vision import VisionTower


def splice_image_features(embeds_btd: jax.Array, tokens_bt: jax.Array, image_token_id: int,
                          features_bmd: jax.Array) -> jax.Array:
  """Replaces row b's k-th image-pad embedding by that row's k-th merged image token.

  The host-side packing guarantees each row has exactly as many pad tokens as valid
  merged tokens (the reference's masked_scatter, per row).
  """
  is_image_bt = tokens_bt == image_token_id
  index_bt = jnp.clip(jnp.cumsum(is_image_bt, axis=1) - 1, 0, features_bmd.shape[1] - 1)
  gathered = jnp.take_along_axis(features_bmd, index_bt[..., None], axis=1)
  return jnp.where(is_image_bt[..., None], gathered.astype(embeds_btd.dtype), embeds_btd)


class Qwen25VL(nn.Module):
  config: ModelConfig

  def setup(self):
    cfg = self.config
    dtype, param_dtype = cfg.compute_dtype, cfg.weight_dtype
    self.visual = VisionTower(cfg.vision, dtype, param_dtype, cfg.scan_layers,
                               layers.REMAT_POLICIES[cfg.remat])
    self.embed_tokens = nn.Embed(
        cfg.text.vocab_size, cfg.text.hidden_size, dtype=dtype, param_dtype=param_dtype,
        embedding_init=nn.with_logical_partitioning(
            nn.initializers.normal(cfg.text.initializer_range), ("vocab", "embed")))
    self.decoder = Decoder(cfg)
    if not cfg.text.tie_word_embeddings:
      self.lm_head = nn.Dense(cfg.text.vocab_size, use_bias=False, dtype=dtype,
                              param_dtype=param_dtype,
                              kernel_init=layers.dense_init(("embed", "vocab"),
                                                            cfg.text.initializer_range))

  def encode_images(self, vision: VisionInputs) -> jax.Array:
    """Merged image tokens [B, M, D] in natural order."""
    return self.visual(vision.patches, vision.coords, vision.window_ids, vision.frame_ids,
                       vision.unpermute)

  def embed(self, tokens_bt: jax.Array, image_features_bmd: jax.Array | None = None
            ) -> jax.Array:
    x = self.embed_tokens(tokens_bt)
    if image_features_bmd is not None:
      x = splice_image_features(x, tokens_bt, self.config.image_token_id, image_features_bmd)
    return x

  def hidden_states(self, inputs: ModelInputs, cache: KVCache | None = None,
                    image_features_bmd: jax.Array | None = None
                    ) -> tuple[jax.Array, KVCache | None]:
    """Final-norm hidden states [B, T, D] and the updated cache."""
    if image_features_bmd is None and inputs.vision is not None:
      image_features_bmd = self.encode_images(inputs.vision)
    x = self.embed(inputs.tokens, image_features_bmd)
    return self.decoder(x, inputs.positions, inputs.segment_ids, cache)

  def logits(self, hidden_btd: jax.Array) -> jax.Array:
    """float32 logits [B, T, V] from hidden states (callable on a chunk of positions)."""
    if self.config.text.tie_word_embeddings:
      logits = self.embed_tokens.attend(hidden_btd)
    else:
      logits = self.lm_head(hidden_btd)
    logits = nn.with_logical_constraint(logits, ("batch", "length", "vocab"))
    return logits.astype(jnp.float32)

  def __call__(self, inputs: ModelInputs, cache: KVCache | None = None,
               image_features_bmd: jax.Array | None = None
               ) -> tuple[jax.Array, KVCache | None]:
    hidden, cache = self.hidden_states(inputs, cache, image_features_bmd)
    return self.logits(hidden), cache


def dummy_inputs(config: ModelConfig, batch: int = 1, length: int = 8) -> ModelInputs:
  """Abstract-shaped inputs with one smallest image per row: enough to create every
  parameter at init (the vision tower's included)."""
  unit = config.vision.merge_unit
  tokens = jnp.zeros((batch, length), jnp.int32).at[:, 0].set(config.image_token_id)
  vision = VisionInputs(
      patches=jnp.zeros((batch, unit, config.vision.patch_dim), jnp.float32),
      coords=jnp.zeros((batch, unit, 2), jnp.int32),
      window_ids=jnp.zeros((batch, unit), jnp.int32),
      frame_ids=jnp.zeros((batch, unit), jnp.int32),
      unpermute=jnp.zeros((batch, 1), jnp.int32))
  return ModelInputs(tokens, jnp.zeros((3, batch, length), jnp.int32),
                     jnp.ones((batch, length), jnp.int32), vision)


def init_fn(config: ModelConfig):
  """rng -> boxed params (with logical axis metadata), for `sharding.init_sharded`."""
  model = Qwen25VL(config)
  return lambda rng: model.init(rng, dummy_inputs(config))


def init_params(config: ModelConfig, rng: jax.Array):
  """Plain (unboxed) params on the default device; compiled, so fast for any size."""
  return _jitted_init(config)(rng)


@functools.lru_cache(maxsize=16)
def _jitted_init(config: ModelConfig):
  # One compiled init per config (the tiny model's takes 6 s to compile on a CPU; the
  # ladder initialises each judge group and the policy from the same config).
  return jax.jit(lambda r: nn.unbox(init_fn(config)(r)))

"""The KV cache: row operations, slot padding, its layout on the mesh, and incremental
decoding through it against the full forward."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import presets, vlm
from models.inputs import ModelInputs
from models.kv_cache import KVCache
from safework.infra import sharding


def random_cache(batch=3, slots=5, seed=0):
  rng = np.random.default_rng(seed)
  shape = (2, batch, slots, 2, 4)
  return KVCache(jnp.asarray(rng.normal(size=shape), jnp.float32),
                 jnp.asarray(rng.normal(size=shape), jnp.float32),
                 jnp.asarray(rng.integers(0, slots, size=batch), jnp.int32))


def test_take_and_repeat_rows_gather_whole_rows():
  cache = random_cache()
  rows = np.array([2, 0, 2, 1])
  taken = cache.take_rows(jnp.asarray(rows))
  np.testing.assert_array_equal(taken.k, np.asarray(cache.k)[:, rows])
  np.testing.assert_array_equal(taken.v, np.asarray(cache.v)[:, rows])
  np.testing.assert_array_equal(taken.lengths, np.asarray(cache.lengths)[rows])
  repeated = cache.repeat_rows(2)
  np.testing.assert_array_equal(repeated.k, np.asarray(cache.k)[:, [0, 0, 1, 1, 2, 2]])


def test_pad_and_trim_slots_keep_contents():
  cache = random_cache()
  padded = cache.pad_slots(3)
  assert padded.max_length == 8
  np.testing.assert_array_equal(padded.k[:, :, :5], cache.k)
  assert not np.asarray(padded.v[:, :, 5:]).any()
  np.testing.assert_array_equal(padded.trim_slots(5).v, cache.v)
  np.testing.assert_array_equal(padded.lengths, cache.lengths)


def test_for_model_and_mesh_layout():
  config = presets.get_preset("tiny")
  cache = KVCache.for_model(config, batch=8, max_length=16)
  assert cache.k.shape == (4, 8, 16, 2, 32) and cache.k.dtype == jnp.float32
  mesh = sharding.make_mesh([("data", 2), ("fsdp", 2), ("tensor", 2)])
  spec = sharding.logical_to_mesh_spec(KVCache.logical_spec().k, cache.k.shape, mesh,
                                       sharding.DEFAULT_RULES)
  # Rows over the batch axes, kv heads over tensor; slots whole.
  assert tuple(spec) + (None,) * (5 - len(spec)) == (None, ("data", "fsdp"), None, "tensor",
                                                     None)


def _text_inputs(tokens_bt, start_b):
  b, t = tokens_bt.shape
  positions = np.broadcast_to((start_b[:, None] + np.arange(t))[None], (3, b, t))
  return ModelInputs(jnp.asarray(tokens_bt), jnp.asarray(positions, jnp.int32),
                     jnp.asarray(tokens_bt > 0, jnp.int32))


@pytest.fixture(scope="module")
def tiny():
  config = presets.get_preset("tiny", vocab_size=64, image_token_id=60, video_token_id=61,
                              vision_start_token_id=62, vision_end_token_id=63)
  # Random weights from the abstract shapes: no init program to compile.
  abstract = nn.unbox(jax.eval_shape(vlm.init_fn(config), jax.random.key(0)))
  leaves, tree = jax.tree.flatten_with_path(abstract)
  rng = np.random.default_rng(0)
  params = jax.tree.unflatten(tree, [
      jnp.ones(a.shape) if "scale" in jax.tree_util.keystr(path) else
      jnp.asarray(0.1 * rng.normal(size=a.shape), jnp.float32) for path, a in leaves])
  return config, jax.jit(vlm.Qwen25VL(config).apply), params


def test_incremental_decoding_equals_the_full_forward(tiny):
  config, apply, params = tiny
  rng = np.random.default_rng(1)
  full = rng.integers(1, 60, size=(2, 9))
  prompt_len = np.array([5, 3])
  prompt = np.where(np.arange(6)[None] < prompt_len[:, None], full[:, :6], 0)
  # Row 1's continuation starts right after its shorter prompt.
  seqs = np.stack([full[0], np.concatenate([full[1, :3], full[1, 5:9], [0, 0]])])
  reference, _ = apply(params, _text_inputs(seqs, np.zeros(2, int)))
  cache = KVCache.for_model(config, 2, 12)
  _, cache = apply(params, _text_inputs(prompt, np.zeros(2, int)), cache=cache)
  np.testing.assert_array_equal(cache.lengths, prompt_len)
  for step in range(4):
    token = np.array([[seqs[0, 5 + step]], [seqs[1, 3 + step]]])
    logits, cache = apply(params, _text_inputs(token, np.asarray(cache.lengths)), cache=cache)
    np.testing.assert_allclose(logits[0, 0], reference[0, 5 + step], atol=1e-5)
    np.testing.assert_allclose(logits[1, 0], reference[1, 3 + step], atol=1e-5)


def test_padded_chunk_with_room_leaves_full_rows_intact(tiny):
  config, apply, params = tiny
  cache = KVCache.for_model(config, 2, 12).replace(lengths=jnp.array([11, 1], jnp.int32))
  cache = cache.replace(k=jax.random.normal(jax.random.key(1), cache.k.shape))
  chunk = np.array([[0], [7]])  # Only row 1 appends; row 0 is full but for the spare slot.
  chunk = np.pad(chunk, ((0, 0), (0, 5)))
  chunk[1, 1:3] = [8, 9]
  inputs = _text_inputs(chunk, np.array([11, 1]))
  _, clamped = apply(params, inputs, cache=cache)
  # Without room, row 0's padded write is clamped back onto its valid slots.
  assert not np.allclose(clamped.k[:, 0, :11], cache.k[:, 0, :11])
  _, roomy = apply(params, inputs, cache=cache.pad_slots(6))
  roomy = roomy.trim_slots(12)
  np.testing.assert_array_equal(roomy.k[:, 0, :11], cache.k[:, 0, :11])
  np.testing.assert_array_equal(roomy.lengths, [11, 4])
  np.testing.assert_array_equal(roomy.k[:, 1, :1], cache.k[:, 1, :1])
  np.testing.assert_array_equal(roomy.k[:, 1, 1:4], clamped.k[:, 1, 1:4])

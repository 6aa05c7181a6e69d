"""Sharded equals unsharded; parameters are born sharded; remat changes nothing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import inputs as model_inputs
from models import presets, vlm
from safework.infra import sharding
from tests.models import hf_tiny


@pytest.fixture(scope="module")
def setup():
  config = presets.get_preset("tiny", vocab_size=hf_tiny.VOCAB, image_token_id=hf_tiny.IMAGE,
                              video_token_id=hf_tiny.VIDEO,
                              vision_start_token_id=hf_tiny.VSTART,
                              vision_end_token_id=hf_tiny.VEND)
  batch = hf_tiny.make_batch([[3, (4, 6), 5], [12], [2, (8, 4), 1, (4, 4)], [7, (4, 4), 2]],
                             48, seed=11)
  inputs, _ = model_inputs.make_inputs(batch.tokens, batch.segment_ids, config, batch.patches,
                                       batch.grids)
  params = vlm.init_params(config, jax.random.key(3))
  return config, jax.tree.map(jnp.asarray, inputs), params, batch


def _forward(config, params, inputs):
  return jax.jit(vlm.Qwen25VL(config).apply)(params, inputs)[0]


def test_sharded_forward_equals_single_device(setup):
  config, inputs, params, batch = setup
  expected = np.asarray(_forward(config, params, inputs))
  mesh = sharding.make_mesh([("data", 2), ("fsdp", 2), ("tensor", 2)])
  rules = sharding.DEFAULT_RULES
  abstract = jax.eval_shape(vlm.init_fn(config), jax.random.key(3))
  shardings = sharding.logical_shardings(abstract, mesh, rules)
  sharded_params = jax.device_put(params, shardings)
  sharded_inputs = jax.tree.map(
      lambda x: jax.device_put(x, sharding.batch_sharding(mesh, rules, x.ndim,
                                                          batch_axis=1 if x.ndim == 3 and
                                                          x.dtype == jnp.int32 and
                                                          x.shape[0] == 3 else 0)),
      inputs)
  with sharding.activate(mesh, rules):
    logits = _forward(config, sharded_params, sharded_inputs)
  assert logits.sharding.spec[0] == ("data", "fsdp")  # Rows stayed split across devices.
  valid = batch.segment_ids > 0
  np.testing.assert_allclose(np.asarray(logits)[valid], expected[valid], atol=1e-5, rtol=0)


def test_init_sharded_gives_the_same_params_born_sharded(setup):
  config, _, params, _ = setup
  mesh = sharding.make_mesh([("data", 2), ("fsdp", 2), ("tensor", 2)])
  born, shardings = sharding.init_sharded(vlm.init_fn(config), mesh, sharding.DEFAULT_RULES,
                                          jax.random.key(3))
  kernel = born["params"]["decoder"]["layers"]["mlp"]["up"]["kernel"]  # [L, D, F]
  assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor")
  assert len(kernel.addressable_shards) == 8
  # Same random draws; the sharded compilation may round the last bit differently.
  for a, b in zip(jax.tree.leaves(born), jax.tree.leaves(params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("remat", ["full", "dots"])
def test_remat_gives_identical_outputs_and_gradients(setup, remat):
  config, inputs, params, _ = setup

  def loss(config, p):
    logits = vlm.Qwen25VL(config).apply(p, inputs)[0]
    return jnp.mean(jax.nn.logsumexp(logits, -1))

  base, grads = jax.jit(jax.value_and_grad(lambda p: loss(config, p)))(params)
  other = config.replace(remat=remat)
  value, grads_remat = jax.jit(jax.value_and_grad(lambda p: loss(other, p)))(params)
  np.testing.assert_allclose(value, base, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(grads_remat), jax.tree.leaves(grads)):
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)

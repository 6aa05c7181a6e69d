"""The sampler on the 8-device CPU mesh (data 2, fsdp 2, tensor 2) against one device:
same tokens, same log-probabilities, and the state laid out like training."""

import jax
import numpy as np
import pytest

from models import hf_checkpoint
from models import inputs as model_inputs
from rl import sampler
from rl import sampling_methods as sm
from safework.infra import sharding
from tests.models import hf_tiny

ROWS = [[3, (4, 6), 5], [7], [2, (4, 4), 3], [4, (4, 4), 1]]
G = 2
NEW = 6


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  directory = tmp_path_factory.mktemp("hf")
  hf_tiny.hf_model(seed=4).save_pretrained(directory)
  config = hf_checkpoint.load_config(directory, dtype="float32")
  batch = hf_tiny.make_batch(ROWS, 24, seed=5)
  inputs, next_position = model_inputs.make_inputs(batch.tokens, batch.segment_ids, config,
                                                   batch.patches, batch.grids)
  return directory, config, inputs, next_position


def test_sharded_sampling_equals_one_device(setup):
  directory, config, inputs, next_position = setup
  mesh = sharding.make_mesh([("data", 2), ("fsdp", 2), ("tensor", 2)])
  rules = sharding.DEFAULT_RULES
  shardings = sharding.logical_shardings(hf_checkpoint.abstract_params(config), mesh, rules)
  kwargs = dict(config=config, max_new_tokens=NEW, rng=jax.random.key(3), num_samples=G)
  method = sm.TopP(0.95, temperature=1.2)

  params = hf_checkpoint.load_params(directory, config, shardings)
  assert any(sharding.is_sharded(a.sharding) for a in jax.tree.leaves(params))
  put = lambda x, axis=0: jax.device_put(x, sharding.batch_sharding(mesh, rules, x.ndim, axis))
  placed = jax.tree.map(put, inputs.replace(positions=None)).replace(
      positions=put(inputs.positions, 1))
  with sharding.activate(mesh, rules):
    state = sampler.prefill(params, placed, next_position, **kwargs)
    # Rows over (data, fsdp), kv heads over tensor: the training layout.
    expected = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(
        None, ("data", "fsdp"), None, "tensor", None))
    assert state.cache.k.sharding.is_equivalent_to(expected, 5)
    assert state.tokens_bt.sharding.spec[0] == ("data", "fsdp")
    state = sampler.decode(params, state, method=method)
    assert state.cache.k.sharding.is_equivalent_to(expected, 5)  # Kept through the loop.
    sharded = jax.tree.map(np.asarray, sampler.outputs(state))

  single = hf_checkpoint.load_params(directory, config)
  one = jax.tree.map(np.asarray, sampler.sample(single, inputs, next_position, method=method,
                                                **kwargs))
  np.testing.assert_array_equal(sharded.tokens_bt, one.tokens_bt)
  np.testing.assert_allclose(sharded.logprobs_bt, one.logprobs_bt, atol=1e-5, rtol=0)
  assert (one.tokens_bt[0::2] != one.tokens_bt[1::2]).any()


def test_a_compacted_decode_on_the_mesh_equals_one_device_at_full_width(setup, monkeypatch):
  # 20 rows over (data, fsdp) narrow to 10, which the mesh does not divide (replicated).
  directory, config, inputs, next_position = setup
  mesh = sharding.make_mesh([("data", 2), ("fsdp", 2), ("tensor", 2)])
  rules = sharding.DEFAULT_RULES
  shardings = sharding.logical_shardings(hf_checkpoint.abstract_params(config), mesh, rules)
  samples = 5
  budgets = 1 + np.arange(len(ROWS) * samples) % NEW
  kwargs = dict(config=config, max_new_tokens=NEW, rng=jax.random.key(6), num_samples=samples,
                max_new_tokens_b=budgets)
  method = sm.Temperature(1.0)
  params = hf_checkpoint.load_params(directory, config, shardings)
  widths, decode_jit = [], sampler._decode_jit
  monkeypatch.setattr(sampler, "_decode_jit", lambda p, state, *a, **k: (
      widths.append(state.batch_size), decode_jit(p, state, *a, **k))[1])
  with sharding.activate(mesh, rules):
    state = sampler.prefill(params, inputs, next_position, **kwargs)
    state = sampler.decode(params, state, method=method, compact=True)
    assert widths == [20, 10]
    assert state.tokens_bt.sharding.spec[0] == ("data", "fsdp")  # Full width again.
    compacted = jax.tree.map(np.asarray, sampler.outputs(state))
  one = jax.tree.map(np.asarray, sampler.sample(
      hf_checkpoint.load_params(directory, config), inputs, next_position, method=method,
      **kwargs))
  np.testing.assert_array_equal(compacted.lengths_b, budgets)
  np.testing.assert_array_equal(compacted.tokens_bt, one.tokens_bt)
  np.testing.assert_allclose(compacted.logprobs_bt, one.logprobs_bt, atol=1e-5, rtol=0)

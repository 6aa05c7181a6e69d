"""Tests of safework/infra/checkpoint.py: exact round trips, sharding, and never losing a
finished checkpoint."""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P
from orbax.checkpoint._src.path import atomicity

from safework.infra.checkpoint import Checkpointer


def _bits(x) -> np.ndarray:
  """The raw bytes of an array (key data for typed keys), so NaNs and bf16 compare exactly."""
  if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  return np.asarray(x).reshape(-1).view(np.uint8)


def _assert_bitwise_equal(restored, saved):
  assert jax.tree.structure(restored) == jax.tree.structure(saved)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(restored), jax.tree.leaves(saved)):
    name = jax.tree_util.keystr(path)
    assert a.dtype == b.dtype, name
    assert a.shape == b.shape, name
    np.testing.assert_array_equal(_bits(a), _bits(b), err_msg=name)


def _abstract(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def _state(seed: int = 0):
  params = {"w": jax.random.normal(jax.random.key(seed), (4, 6), jnp.float32),
            "b": jnp.array([1.5, -0.0, jnp.nan, jnp.inf], jnp.bfloat16)}
  return {
      "params": params,
      "opt_state": optax.adamw(1e-3).init(params),  # Has empty nodes and int32 counts.
      "step": jnp.int32(seed + 7),
      "rng": jax.random.key(seed + 1),
      "rng_rbg": jax.random.split(jax.random.key(seed + 2, impl="rbg"), 3),
      "rng_data": jax.random.key_data(jax.random.key(seed + 3)),  # uint32 [2]
  }


HOST = {"loader": {"index": 12, "seed": 3, "path": "gs://bucket/x"}, "stage": "m3rl_a",
        "lagrange": [0.5, float("nan"), float("inf")], "history": [{"kl": 0.1}], "done": None}


def test_round_trip_is_bitwise_with_dtypes_and_typed_keys(tmp_path):
  state = _state()
  with Checkpointer(tmp_path, async_save=False) as ckpt:
    assert ckpt.save(3, state, HOST)
    restored, host = ckpt.restore(3, _abstract(state))
  _assert_bitwise_equal(restored, state)
  assert restored["params"]["b"].dtype == jnp.bfloat16
  assert restored["step"].dtype == jnp.int32
  assert restored["rng_data"].dtype == jnp.uint32
  assert jax.random.key_impl(restored["rng_rbg"]) == jax.random.key_impl(state["rng_rbg"])
  # A restored key draws the same numbers as the saved one.
  np.testing.assert_array_equal(jax.random.uniform(restored["rng"], (5,)),
                                jax.random.uniform(state["rng"], (5,)))
  assert host.keys() == HOST.keys()
  assert host["loader"] == HOST["loader"] and host["history"] == HOST["history"]
  assert host["lagrange"][0] == 0.5 and math.isnan(host["lagrange"][1])
  assert host["lagrange"][2] == math.inf and host["done"] is None


def test_targets_from_eval_shape_restore_typed_keys(tmp_path):
  def init():
    return {"rng": jax.random.key(11, impl="rbg"), "w": jnp.ones((3,), jnp.bfloat16)}
  state = init()
  with Checkpointer(tmp_path, async_save=False) as ckpt:
    ckpt.save(1, state, {})
    restored, _ = ckpt.restore(1, jax.eval_shape(init))
  _assert_bitwise_equal(restored, state)
  assert jax.random.key_impl(restored["rng"]) == jax.random.key_impl(state["rng"])


def test_sharded_state_restores_sharded_and_equal(tmp_path):
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  rows = NamedSharding(mesh, P("data"))
  cols = NamedSharding(mesh, P(None, "data"))
  replicated = NamedSharding(mesh, P())
  state = {
      "w": jax.device_put(jnp.arange(16 * 3, dtype=jnp.float32).reshape(16, 3), rows),
      "v": jax.device_put(jnp.arange(2 * 8, dtype=jnp.bfloat16).reshape(2, 8), cols),
      "n": jax.device_put(jnp.arange(5, dtype=jnp.int32), replicated),
      "keys": jax.device_put(jax.random.split(jax.random.key(0), 8), rows),
  }
  with Checkpointer(tmp_path, async_save=True) as ckpt:
    ckpt.save(5, state, {"stage": "sft"})
    restored, host = ckpt.restore(None, _abstract(state))
  _assert_bitwise_equal(restored, state)
  assert host == {"stage": "sft"}
  for name, array in state.items():
    assert restored[name].sharding == array.sharding, name
    for got, want in zip(restored[name].addressable_shards, array.addressable_shards):
      assert got.device == want.device and got.index == want.index, name
      np.testing.assert_array_equal(_bits(got.data), _bits(want.data), err_msg=name)


def test_restore_without_checkpoint_and_missing_step(tmp_path):
  with Checkpointer(tmp_path / "run", async_save=False) as ckpt:
    assert ckpt.latest_step() is None
    assert ckpt.restore(None, {"x": jax.ShapeDtypeStruct((2,), jnp.float32)}) is None
    ckpt.save(2, {"x": jnp.ones(2)}, {}, force=True)
    ckpt.save(4, {"x": jnp.ones(2)}, {}, force=True)
    with pytest.raises(FileNotFoundError) as error:
      ckpt.restore(3, {"x": jax.ShapeDtypeStruct((2,), jnp.float32)})
  assert str(tmp_path / "run") in str(error.value)
  assert "[2, 4]" in str(error.value)


def _fail_step_commits(monkeypatch):
  """Makes the final rename of a step directory fail: all data is written, none committed."""
  finalize = atomicity.AtomicRenameTemporaryPath.finalize

  async def fail_on_steps(self):
    if self.get().name.split(".")[0].isdigit():
      raise OSError("killed before commit (simulated)")
    await finalize(self)
  monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", fail_on_steps)


@pytest.mark.parametrize("async_save", [False, True])
def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch, async_save):
  first, second = {"x": jnp.arange(4.0)}, {"x": jnp.arange(4.0) + 10}
  ckpt = Checkpointer(tmp_path, max_to_keep=1, async_save=async_save)
  ckpt.save(1, first, {"n": 1})
  ckpt.wait()
  _fail_step_commits(monkeypatch)
  with pytest.raises((RuntimeError, OSError)):
    ckpt.save(2, second, {"n": 2})
    ckpt.wait()
  monkeypatch.undo()
  # The uncommitted step is on disk under a temporary name and is not listed.
  assert sorted(os.listdir(tmp_path))[0] == "1"
  assert sorted(os.listdir(tmp_path))[1].startswith("2.orbax-checkpoint-tmp")
  assert ckpt.latest_step() == 1
  ckpt.close()

  # A resumed run sees step 1, restores it, and can write step 2 over the leftover.
  resumed = Checkpointer(tmp_path, max_to_keep=1, async_save=async_save)
  assert resumed.all_steps() == [1]
  state, host = resumed.restore(None, _abstract(first))
  _assert_bitwise_equal(state, first)
  assert host == {"n": 1}
  assert resumed.save(2, second, {"n": 2})
  resumed.close()
  assert sorted(os.listdir(tmp_path)) == ["2"]


def test_leftover_temporary_directory_is_ignored(tmp_path):
  state = {"x": jnp.arange(3, dtype=jnp.int32)}
  with Checkpointer(tmp_path, async_save=False) as ckpt:
    ckpt.save(5, state, {"n": 5})
  partial = tmp_path / "9.orbax-checkpoint-tmp-1700000000"
  (partial / "state").mkdir(parents=True)
  (partial / "state" / "_METADATA").write_text("{")
  with Checkpointer(tmp_path, async_save=False) as ckpt:
    assert ckpt.latest_step() == 5
    restored, host = ckpt.restore(None, _abstract(state))
  _assert_bitwise_equal(restored, state)
  assert host == {"n": 5}


@pytest.mark.parametrize("async_save", [False, True])
def test_max_to_keep_keeps_the_newest(tmp_path, async_save):
  with Checkpointer(tmp_path, max_to_keep=2, async_save=async_save) as ckpt:
    for step in range(1, 6):
      assert ckpt.save(step, {"x": jnp.full(3, step, jnp.float32)}, {"step": step})
      # While this save may still be in flight, the previous one is finished and kept.
      finished = [int(n) for n in os.listdir(tmp_path) if n.isdigit()]
      assert step == 1 or step - 1 in finished
    ckpt.wait()
    assert ckpt.all_steps() == [4, 5]
    assert sorted(os.listdir(tmp_path)) == ["4", "5"]
    state, host = ckpt.restore(None, {"x": jax.ShapeDtypeStruct((3,), jnp.float32)})
  np.testing.assert_array_equal(state["x"], np.full(3, 5, np.float32))
  assert host == {"step": 5}


def test_save_interval_and_force(tmp_path):
  with Checkpointer(tmp_path, max_to_keep=None, save_interval_steps=3, async_save=False) as ckpt:
    # The first save of an empty directory always happens (orbax's initial-save rule).
    written = [ckpt.save(step, {"x": jnp.zeros(1)}, {}) for step in range(1, 8)]
    assert written == [True, False, True, False, False, True, False]
    assert ckpt.save(7, {"x": jnp.zeros(1)}, {}, force=True)
    with pytest.raises(ValueError, match="step 7 already exists"):
      ckpt.save(7, {"x": jnp.zeros(1)}, {}, force=True)
    assert ckpt.all_steps() == [1, 3, 6, 7]


def test_bad_host_state_names_the_entry(tmp_path):
  with Checkpointer(tmp_path, async_save=False) as ckpt:
    with pytest.raises(TypeError, match=r"host_state\['loader'\]\['pos'\] is a tuple"):
      ckpt.save(1, {"x": jnp.zeros(1)}, {"loader": {"pos": (1, 2)}})
    with pytest.raises(TypeError, match=r"host_state\['m'\] is a ndarray"):
      ckpt.save(1, {"x": jnp.zeros(1)}, {"m": np.zeros(2)})
    with pytest.raises(TypeError, match="key 3 of type int"):
      ckpt.save(1, {"x": jnp.zeros(1)}, {3: 1.0})
    assert ckpt.all_steps() == []


def test_bad_settings_are_named(tmp_path):
  with pytest.raises(ValueError, match="max_to_keep"):
    Checkpointer(tmp_path, max_to_keep=0)
  with pytest.raises(ValueError, match="save_interval_steps"):
    Checkpointer(tmp_path, save_interval_steps=0)


def test_relative_path_and_targets_without_sharding(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  state = {"x": jnp.arange(6, dtype=jnp.int32)}
  with Checkpointer("ckpts", async_save=False) as ckpt:
    assert str(ckpt.directory) == str(tmp_path / "ckpts")
    ckpt.save(1, state, {})
    from_live, _ = ckpt.restore(1, state)  # Arrays as targets: their shardings are used.
    bare, _ = ckpt.restore(1, {"x": jax.ShapeDtypeStruct((6,), jnp.int32)})
  assert (tmp_path / "ckpts" / "1").is_dir()
  _assert_bitwise_equal(from_live, state)
  _assert_bitwise_equal(bare, state)
  assert bare["x"].sharding == jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

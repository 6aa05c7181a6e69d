"""The shared update: accumulation, objectives, non-finite skips, frozen groups,
sharding and compile-once."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from models import inputs as model_inputs
from models import presets, vlm
from rl import losses, optim, train_step
from safework.infra import sharding
from tests.models import hf_tiny

B, T = 4, 24


@pytest.fixture(scope="module")
def world():
  config = presets.get_preset("tiny", vocab_size=hf_tiny.VOCAB, image_token_id=hf_tiny.IMAGE,
                              video_token_id=hf_tiny.VIDEO,
                              vision_start_token_id=hf_tiny.VSTART,
                              vision_end_token_id=hf_tiny.VEND)
  batch = hf_tiny.make_batch([[3, (4, 4), 14], [22], [2, (4, 8), 10], [18]], 32, seed=4)
  tokens = np.zeros((B, T), np.int32)
  segs = np.zeros((B, T), np.int32)
  tokens[:, :batch.tokens.shape[1]] = batch.tokens
  segs[:, :batch.tokens.shape[1]] = batch.segment_ids
  inputs, _ = model_inputs.make_inputs(tokens, segs, config, batch.patches, batch.grids)
  params = vlm.init_params(config, jax.random.key(0))
  rng = np.random.default_rng(0)
  mask = (segs > 0) & (np.arange(T) >= 8)
  rl_batch = train_step.RLBatch(
      inputs=jax.tree.map(jnp.asarray, inputs),
      old_logp=jnp.asarray(rng.normal(-3.0, 0.3, size=(B, T)), jnp.float32),
      advantages=jnp.asarray([1.0, -0.5, 0.25, -1.0], jnp.float32),
      loss_mask=jnp.asarray(mask, jnp.float32))
  return config, params, rl_batch


_ADAMW = optim.OptimizerConfig(learning_rate=1e-3, total_steps=10, warmup_ratio=0.0)
_SGD = "sgd"  # params - new params = the accumulated gradient, exactly.
_COMPILED = {}


def _optimizer(kind, params):
  return optax.sgd(1.0) if kind == _SGD else optim.make_optimizer(kind, params)


def _step(config, params, batch, micro=1, loss_config=None, optimizer=_ADAMW, sft=False):
  """Runs one update from a copy of `params`; steps are compiled once per setting."""
  loss_config = loss_config or losses.CPGDConfig()
  key = (micro, loss_config, optimizer, sft)
  opt = _optimizer(optimizer, params)
  if key not in _COMPILED:
    objective = (train_step.sft_objective() if sft
                 else train_step.rl_objective("cpgd", loss_config))
    _COMPILED[key] = train_step.make_step(config, train_step.StepConfig(micro_batches=micro),
                                          opt, objective)
  # The step donates its state: give it its own copy of the shared fixture params.
  state = train_step.TrainState.create(jax.tree.map(jnp.copy, params), opt)
  return _COMPILED[key](state, params, batch)


def test_micro_batches_give_the_same_gradients(world):
  config, params, batch = world
  for mode in ("token-mean", "seq-mean-token-mean"):
    loss_config = losses.CPGDConfig(aggregation=mode)
    one, m1 = _step(config, params, batch, 1, loss_config, optimizer=_SGD)
    two, m2 = _step(config, params, batch, 2, loss_config, optimizer=_SGD)
    np.testing.assert_allclose(m2["loss"], m1["loss"], rtol=1e-5)
    np.testing.assert_allclose(m2["grad_norm"], m1["grad_norm"], rtol=1e-5)
    for a, b, p in zip(jax.tree.leaves(two.params), jax.tree.leaves(one.params),
                       jax.tree.leaves(params)):
      np.testing.assert_allclose(p - a, p - b, atol=5e-7, rtol=1e-4)


def test_logprobs_match_a_numpy_log_softmax_and_chunking(world):
  config, params, batch = world
  logits, _ = vlm.Qwen25VL(config).apply(params, batch.inputs)
  logits = np.asarray(logits, np.float64)
  # The policy never writes vision placeholders: their logits are -1e9 before scaling.
  logits[..., [hf_tiny.IMAGE, hf_tiny.VIDEO, hf_tiny.VSTART, hf_tiny.VEND]] = -1e9
  logits = logits / 0.7
  logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
  tokens = np.asarray(batch.inputs.tokens)
  expected = np.zeros((B, T))
  for b in range(B):
    for t in range(1, T):
      expected[b, t] = logits[b, t - 1, tokens[b, t]] - logz[b, t - 1]
  for chunk in (0, 8):
    logp, entropy = jax.jit(lambda p: train_step.token_logprobs(config, p, batch.inputs, 0.7,
                                                                chunk))(params)
    np.testing.assert_allclose(logp, expected, atol=1e-5)
    assert np.all(np.asarray(entropy)[:, 1:] > 0)


def test_sft_objective_is_masked_token_mean_cross_entropy(world):
  config, params, batch = world
  sft = train_step.SFTBatch(inputs=batch.inputs, loss_mask=batch.loss_mask)
  logp, _ = train_step.token_logprobs(config, params, batch.inputs)
  mask = np.asarray(batch.loss_mask)
  expected = -(np.asarray(logp) * mask).sum() / mask.sum()
  _, metrics = _step(config, params, sft, micro=2, sft=True)
  np.testing.assert_allclose(metrics["loss"], expected, rtol=1e-5)
  assert metrics["tokens"] == mask.sum()


def test_nonfinite_update_is_skipped_and_counted(world):
  config, params, batch = world
  bad = batch.replace(advantages=batch.advantages.at[1].set(jnp.nan))
  state, metrics = _step(config, params, bad)
  assert metrics["update_skipped"] == 1 and int(state.skipped) == 1 and int(state.step) == 1
  for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)


def test_frozen_groups_do_not_move_and_the_rest_does(world):
  config, params, batch = world
  state, _ = _step(config, params, batch)
  for a, b in zip(jax.tree.leaves(state.params["params"]["visual"]),
                  jax.tree.leaves(params["params"]["visual"])):
    np.testing.assert_array_equal(a, b)
  moved = [not np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(state.params["params"]["decoder"]),
      jax.tree.leaves(params["params"]["decoder"]))]
  assert all(moved)
  with pytest.raises(ValueError, match=r"frozen parameter groups \['vision'\] do not exist"):
    optim.make_optimizer(optim.OptimizerConfig(frozen=("vision",)), params)


def _sharded_step(config, params, batch, optimizer):
  mesh = sharding.make_mesh([("data", 2), ("fsdp", 2), ("tensor", 2)])
  rules = sharding.DEFAULT_RULES
  abstract = jax.eval_shape(vlm.init_fn(config), jax.random.key(0))
  param_sh = sharding.logical_shardings(abstract, mesh, rules)
  opt = _optimizer(optimizer, params)
  sharded_params = jax.device_put(params, param_sh)
  with sharding.activate(mesh, rules):
    state_sh = train_step.state_shardings(opt, sharding.strip_metadata(abstract), param_sh,
                                          mesh)
    state = jax.jit(lambda p: train_step.TrainState.create(jax.tree.map(jnp.copy, p), opt),
                    out_shardings=state_sh)(sharded_params)
    batch_sh = train_step.batch_shardings(batch, mesh, rules)
    step = train_step.make_step(config, train_step.StepConfig(micro_batches=2), opt,
                                train_step.rl_objective("cpgd", losses.CPGDConfig()),
                                state_sh, batch_sh, param_sh)
    return step(state, sharded_params, jax.device_put(batch, batch_sh))


def test_sharded_step_equals_single_device(world):
  config, params, batch = world
  # Gradients (through SGD) to 1e-5. Adam's first update is ~lr*sign(g), which turns
  # last-bit differences of near-zero gradients into lr-sized ones, so with AdamW the
  # comparison is of the loss, the gradient norm and the shardings.
  expected_state, expected = _step(config, params, batch, 2, optimizer=_SGD)
  state, metrics = _sharded_step(config, params, batch, _SGD)
  np.testing.assert_allclose(metrics["loss"], expected["loss"], rtol=1e-5, atol=1e-7)
  for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(expected_state.params)):
    np.testing.assert_allclose(a, b, atol=1e-5)
  _, adam_expected = _step(config, params, batch, 2)
  adam_state, adam_metrics = _sharded_step(config, params, batch, _ADAMW)
  for name in ("loss", "grad_norm"):
    np.testing.assert_allclose(adam_metrics[name], adam_expected[name], rtol=1e-5)
  kernel = adam_state.params["params"]["decoder"]["layers"]["mlp"]["up"]["kernel"]
  assert sharding.is_sharded(kernel.sharding)
  mu = [x for x in jax.tree.leaves(adam_state.opt_state) if x.shape == kernel.shape]
  assert mu and all(x.sharding.is_equivalent_to(kernel.sharding, x.ndim) for x in mu)


def test_step_compiles_once_for_new_params_and_batches(world):
  config, params, batch = world
  optimizer = optim.make_optimizer(optim.OptimizerConfig(total_steps=5), params)
  objective, normaliser = train_step.rl_objective("ppo", losses.PPOConfig())

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(state, ref, b):
    return train_step.train_step(state, ref, b, model_config=config,
                                 step_config=train_step.StepConfig(), optimizer=optimizer,
                                 objective=objective, normaliser=normaliser)

  state = train_step.TrainState.create(jax.tree.map(jnp.copy, params), optimizer)
  for i in range(3):
    state, _ = step(state, params, batch.replace(advantages=batch.advantages * (i + 1)))
  assert int(state.step) == 3


def test_a_state_of_committed_params_compiles_the_step_once(world):
  """Parameters committed to a device (as a checkpoint restores them) beside an optimiser
  state born uncommitted: `TrainState.create` commits the whole state, so every update
  runs the first one's executable (a mixed first state compiled the step twice)."""
  config, params, batch = world
  committed = jax.device_put(params, jax.devices()[0])
  assert all(x.committed for x in jax.tree.leaves(committed))
  optimizer = optim.make_optimizer(optim.OptimizerConfig(total_steps=5), committed)
  state = train_step.TrainState.create(jax.tree.map(jnp.copy, committed), optimizer)
  assert all(x.committed for x in jax.tree.leaves(state))
  step = train_step.make_step(config, train_step.StepConfig(), optimizer,
                              train_step.rl_objective("ppo", losses.PPOConfig()))
  for _ in range(3):
    state, _ = step(state, None, batch)
  assert int(state.step) == 3 and step._cache_size() == 1  # pylint: disable=protected-access


def test_a_state_on_a_mesh_traces_the_step_once(world, monkeypatch):
  """Parameters on a mesh, a step without declared shardings (the SFT trainer's): the state
  `TrainState.create` returns has the types of the state an update returns, so the second
  and third updates reuse the first one's trace (its counters used to be unplaced, and the
  second update traced and compiled the step again)."""
  config, params, batch = world
  mesh = sharding.make_mesh([("data", 2), ("fsdp", 2), ("tensor", 2)])
  abstract = jax.eval_shape(vlm.init_fn(config), jax.random.key(0))
  sharded = jax.device_put(params, sharding.logical_shardings(abstract, mesh,
                                                              sharding.DEFAULT_RULES))
  traces = []
  original = train_step.train_step
  monkeypatch.setattr(train_step, "train_step",
                      lambda *a, **k: traces.append(1) or original(*a, **k))
  optimizer = optim.make_optimizer(optim.OptimizerConfig(total_steps=5), sharded)
  # Created outside the mesh context, then updated inside it, as stages.run_sft does.
  state = train_step.TrainState.create(jax.tree.map(jnp.copy, sharded), optimizer)
  counters = [state.step, state.skipped] + [
      x for x in jax.tree.leaves(state.opt_state) if x.ndim == 0]
  assert counters and all(x.sharding.is_equivalent_to(sharding.replicated(mesh), 0)
                          for x in counters)
  with sharding.activate(mesh, sharding.DEFAULT_RULES):
    step = train_step.make_step(config, train_step.StepConfig(), optimizer,
                                train_step.rl_objective("ppo", losses.PPOConfig()))
    for _ in range(3):
      state, _ = step(state, sharded, batch)
  assert int(state.step) == 3 and len(traces) == 1

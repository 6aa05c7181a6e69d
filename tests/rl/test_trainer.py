"""The RL loop end to end on a toy task: it learns, it resumes exactly, it survives a
non-finite update."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import presets, vlm
from models.inputs import make_inputs
from rl import advantages, losses, optim, rollout, train_step, trainer
from rl.sampling_methods import Temperature
from tests.rl import toy

CONFIG = presets.get_preset("tiny", vocab_size=toy.VOCAB, image_token_id=60, video_token_id=61,
                            vision_start_token_id=62, vision_end_token_id=63)
SAMPLING = rollout.SamplingConfig(num_samples=8, max_new_tokens=4, method=Temperature(1.0))


def _trainer(workdir, iterations, loss="cpgd", loss_config=None, estimator="grpo",
             reward=toy.reward, lr=3e-3, model_config=CONFIG, **config_kw):
  params = vlm.init_params(model_config, jax.random.key(0))
  optimizer = optim.make_optimizer(optim.OptimizerConfig(
      learning_rate=lr, total_steps=100, warmup_ratio=0.0, weight_decay=0.0), params)
  config = trainer.TrainerConfig(
      iterations=iterations, seed=1, loss=loss,
      loss_config=loss_config or losses.LOSSES[loss].config_cls(),
      advantage=advantages.AdvantageConfig(estimator=estimator), checkpoint_every=2,
      **config_kw)
  return trainer.RLTrainer(config, model_config, params, optimizer, toy.ToyPrompts(4), reward,
                           toy.decode, rollout.sampler_rollout(model_config, SAMPLING), workdir)


def _rewards(workdir):
  lines = (workdir / "metrics" / "metrics.jsonl").read_text().splitlines()
  return [json.loads(line) for line in lines]


@pytest.mark.parametrize("loss, estimator", [("ppo", "grpo"), ("cpgd", "grpo")])
def test_policy_learns_the_rewarded_pattern(tmp_path, loss, estimator):
  run = _trainer(tmp_path, iterations=40, loss=loss, estimator=estimator)
  run.run()
  history = [m["reward/total"] for m in _rewards(tmp_path)]
  assert np.mean(history[:2]) <= 0.2
  assert np.mean(history[-3:]) >= 0.8, history


def test_killed_run_resumes_exactly(tmp_path):
  whole = _trainer(tmp_path / "whole", iterations=4)
  whole.run()
  first = _trainer(tmp_path / "split", iterations=2)
  first.run()
  first.close()
  resumed = _trainer(tmp_path / "split", iterations=4)
  assert resumed.iteration == 2
  resumed.run()
  for a, b in zip(jax.tree.leaves(resumed.state.params), jax.tree.leaves(whole.state.params)):
    np.testing.assert_array_equal(a, b)
  split_last, whole_last = _rewards(tmp_path / "split")[-1], _rewards(tmp_path / "whole")[-1]
  for key, value in whole_last.items():
    if not key.startswith(("time/", "throughput/")):
      assert split_last[key] == value, key


def test_updates_cut_to_a_length_multiple_give_the_whole_budgets_result(tmp_path):
  whole = _trainer(tmp_path / "whole", iterations=2)
  whole.run()
  cut = _trainer(tmp_path / "cut", iterations=2, length_multiple=5)
  cut.run()
  # Prompts of 6 tokens padded to 8, then 4 sampled tokens (no stop token): 12 columns,
  # of which 10 are used.
  assert [m["update_length"] for m in _rewards(tmp_path / "whole")] == [12.0, 12.0]
  assert [m["update_length"] for m in _rewards(tmp_path / "cut")] == [10.0, 10.0]
  for key in ("loss", "grad_norm", "entropy", "reward/total"):  # The loss is ~0 on policy.
    np.testing.assert_allclose([m[key] for m in _rewards(tmp_path / "cut")],
                               [m[key] for m in _rewards(tmp_path / "whole")], rtol=1e-4, atol=1e-6)
  # Adam's steps are lr-sized (3e-3); reduction order moves a few near-zero moments.
  for a, b in zip(jax.tree.leaves(cut.state.params), jax.tree.leaves(whole.state.params)):
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_nonfinite_rewards_skip_the_update_and_the_run_goes_on(tmp_path):
  calls = []

  def flaky(rollout_batch):
    out = toy.reward(rollout_batch)
    calls.append(1)
    if len(calls) == 2:
      out = dataclasses.replace(out, total=np.full_like(out.total, np.nan))
    return out

  run = _trainer(tmp_path, iterations=3, reward=flaky, estimator="equal_weight")
  state = run.run()
  assert int(state.skipped) == 1 and int(state.step) == 3
  assert [m["skipped_total"] for m in _rewards(tmp_path)] == [0.0, 1.0, 1.0]


@pytest.mark.parametrize("compute, exact", [("bfloat16", True), ("float32", False)])
def test_a_bf16_reference_is_exact_under_bf16_compute(compute, exact):
  config = dataclasses.replace(CONFIG, dtype=compute)
  params = vlm.init_params(config, jax.random.key(3))
  tokens = np.random.default_rng(0).integers(0, 60, (2, 16))
  inputs, _ = make_inputs(tokens, np.ones_like(tokens), config)
  logprobs = jax.jit(lambda p: train_step.token_logprobs(config, p, inputs)[0])
  reference = trainer.reference_copy(params, "bfloat16")
  assert {x.dtype for x in jax.tree.leaves(reference)} == {jnp.dtype("bfloat16")}
  assert (sum(x.nbytes for x in jax.tree.leaves(reference))
          == sum(x.nbytes for x in jax.tree.leaves(params)) // 2)
  full, half = np.asarray(logprobs(params)), np.asarray(logprobs(reference))
  if exact:  # Every weight is cast to bf16 where it is used.
    np.testing.assert_array_equal(half, full)
  else:  # Under fp32 compute the stored rounding shows.
    assert not np.array_equal(half, full)
    np.testing.assert_allclose(half, full, atol=0.05)


def test_the_trainer_keeps_its_reference_in_the_configured_dtype(tmp_path):
  bf16 = dataclasses.replace(CONFIG, dtype="bfloat16")
  kl = losses.CPGDConfig(kl_coef=0.1)
  runs = {dtype: _trainer(tmp_path / str(dtype), iterations=2, loss_config=kl,
                          model_config=bf16, reference_dtype=dtype)
          for dtype in (None, "bfloat16")}
  assert {x.dtype for x in jax.tree.leaves(runs[None].ref_params)} == {jnp.dtype("float32")}
  assert {x.dtype for x in jax.tree.leaves(runs["bfloat16"].ref_params)} == {
      jnp.dtype("bfloat16")}
  states = {dtype: run.run() for dtype, run in runs.items()}
  kls = [[m["kl_ref"] for m in _rewards(tmp_path / str(dtype))] for dtype in runs]
  assert kls[0] == kls[1] and kls[0][-1] > 0  # The same KL to the same reference, exactly.
  for a, b in zip(jax.tree.leaves(states[None].params), jax.tree.leaves(states["bfloat16"].params)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", ["int8", "float31"])
def test_a_reference_dtype_that_is_not_a_float_fails_by_name(dtype):
  with pytest.raises(ValueError, match="reference_dtype must be a floating dtype"):
    trainer.TrainerConfig(reference_dtype=dtype)


def test_parameters_not_placed_on_the_given_mesh_fail_by_name(tmp_path):
  from safework.infra import sharding
  mesh = sharding.make_mesh([("data", -1)])
  params = vlm.init_params(CONFIG, jax.random.key(0))  # On one device, not on the mesh.
  optimizer = optim.make_optimizer(optim.OptimizerConfig(total_steps=2), params)
  config = trainer.TrainerConfig(iterations=1)
  make = lambda p: trainer.RLTrainer(
      config, CONFIG, p, optimizer, toy.ToyPrompts(4), toy.reward, toy.decode,
      rollout.sampler_rollout(CONFIG, SAMPLING), tmp_path,
      mesh=mesh, rules=sharding.DEFAULT_RULES)
  with pytest.raises(ValueError, match=r"parameter \['.*'\].* not with a NamedSharding"):
    make(params)
  placed = jax.device_put(params, sharding.replicated(mesh))
  run = make(placed)  # Placed on the mesh: accepted, and the state stays there.
  assert {x.sharding.mesh for x in jax.tree.leaves(run.state.params)} == {mesh}

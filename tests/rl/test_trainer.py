"""The RL loop end to end on a toy task: it learns, it resumes exactly, it survives a
non-finite update."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from models import presets, vlm
from rl import advantages, losses, optim, rollout, trainer
from rl.sampling_methods import Temperature
from tests.rl import toy

CONFIG = presets.get_preset("tiny", vocab_size=toy.VOCAB, image_token_id=60, video_token_id=61,
                            vision_start_token_id=62, vision_end_token_id=63)
SAMPLING = rollout.SamplingConfig(num_samples=8, max_new_tokens=4, method=Temperature(1.0))


def _trainer(workdir, iterations, loss="cpgd", loss_config=None, estimator="grpo",
             reward=toy.reward, lr=3e-3):
  params = vlm.init_params(CONFIG, jax.random.key(0))
  optimizer = optim.make_optimizer(optim.OptimizerConfig(
      learning_rate=lr, total_steps=100, warmup_ratio=0.0, weight_decay=0.0), params)
  config = trainer.TrainerConfig(
      iterations=iterations, seed=1, loss=loss,
      loss_config=loss_config or losses.LOSSES[loss].config_cls(),
      advantage=advantages.AdvantageConfig(estimator=estimator), checkpoint_every=2)
  return trainer.RLTrainer(config, CONFIG, params, optimizer, toy.ToyPrompts(4), reward,
                           toy.decode, rollout.sampler_rollout(CONFIG, SAMPLING), workdir)


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

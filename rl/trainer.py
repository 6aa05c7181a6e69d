"""The RL loop: prompts -> G samples each -> rewards -> advantages -> updates -> metrics
-> checkpoints. It reads top to bottom in `RLTrainer.run`.

  trainer = RLTrainer(config, model_config, params, optimizer, data, reward_fn, decode,
                      rollout_fn, workdir)
  state = trainer.run()

`data` is an iterator of prompt batches with `get_state`/`set_state` (the grain
iterator of `data.pipeline`); `reward_fn` is a `RewardFn` (built by `verifiers`); a
reward function that carries state between batches (a Lagrange multiplier, say) may
expose `get_state()`/`set_state(dict)` and it is checkpointed with the rest.

Determinism: the key of iteration i is fold_in(seed, i), split by consumer name, so a
run killed after iteration k and started again continues exactly (bitwise on CPU): the
checkpoint holds the train state, the data iterator's position and the reward state.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from models.config import ModelConfig
from rl import advantages as advantages_lib
from rl import losses, rollout as rollout_lib, train_step
from rl.rewards import RewardFn
from safework.infra import checkpoint, metrics as metrics_lib, rng as rng_lib, sharding


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
  iterations: int = 100  # Rollout batches; each gives `updates_per_rollout` updates.
  updates_per_rollout: int = 1  # Optimiser updates per rollout batch (mini-batches of it).
  seed: int = 0  # Root of every random stream of the run.
  loss: str = "cpgd"  # A name in rl.losses.LOSSES.
  loss_config: Any = losses.CPGDConfig()  # That loss's settings.
  advantage: advantages_lib.AdvantageConfig = advantages_lib.AdvantageConfig(estimator="grpo")
  normalise_per_objective: bool = False  # Normalise each verifier in its group first (ours).
  step: train_step.StepConfig = train_step.StepConfig()
  checkpoint_every: int = 10  # Iterations between checkpoints (and always at the end).
  keep_checkpoints: int = 2  # Finished checkpoints kept on disk.
  console_keys: tuple[str, ...] = ("reward/total", "response_length", "loss")
  # Storage dtype of the frozen reference's floating parameters (None: the policy's own);
  # see `reference_copy`.
  reference_dtype: str | None = None
  # Each update's sequences are cut to the rollout's longest prompt + response, rounded up
  # to this many tokens (0: the whole prompt + response budget); see rollout.assemble.
  # Where the mesh shards the length axis, make it a multiple of that axis's size.
  length_multiple: int = 0

  def __post_init__(self):
    if (self.iterations < 0 or self.updates_per_rollout < 1 or self.checkpoint_every < 1
        or self.length_multiple < 0):
      raise ValueError(f"TrainerConfig: iterations >= 0, updates_per_rollout >= 1, "
                       f"checkpoint_every >= 1, length_multiple >= 0; got {self}")
    if self.loss not in losses.LOSSES:
      raise ValueError(f"TrainerConfig.loss {self.loss!r} is not one of {sorted(losses.LOSSES)}")
    if not isinstance(self.loss_config, losses.LOSSES[self.loss].config_cls):
      raise ValueError(f"TrainerConfig.loss_config must be a "
                       f"{losses.LOSSES[self.loss].config_cls.__name__} for loss {self.loss!r}")
    if self.reference_dtype is not None and not _is_float_dtype(self.reference_dtype):
      raise ValueError(f"TrainerConfig.reference_dtype must be a floating dtype name such as "
                       f"'bfloat16' or 'float32', got {self.reference_dtype!r}")


def _is_float_dtype(name: str) -> bool:
  try:
    return jnp.issubdtype(jnp.dtype(name), jnp.floating)
  except TypeError:
    return False


def reference_copy(params, dtype: str | None = None):
  """The frozen reference: a copy of `params`, its floating leaves stored as `dtype` (None:
  as they are).

  The reference only runs forward, and the model casts every weight to its compute dtype
  where it uses it (matmul kernels, embeddings, norm scales, biases). Under bfloat16
  compute a bfloat16 reference therefore gives the fp32 reference's log-probs bit for bit,
  in half the memory (what lets the 72B train step fit a v5p-64, docs/scale_plan.md).
  Under float32 compute it rounds the reference's weights.
  """
  if dtype is None:
    return jax.tree.map(jnp.copy, params)
  target = jnp.dtype(dtype)
  return jax.tree.map(
      lambda x: (x.astype(target) if jnp.issubdtype(x.dtype, jnp.floating) and x.dtype != target
                 else jnp.copy(x)), params)


def _split_rows(batch: train_step.RLBatch, parts: int) -> list[train_step.RLBatch]:
  """Consecutive row blocks of the batch, one per optimiser update."""
  if parts == 1:
    return [batch]
  micro = train_step.split_micro(batch, parts)
  return [jax.tree.map(lambda x, i=i: x[i], micro) for i in range(parts)]


def _mesh_shardings(params, mesh):
  """Each parameter's NamedSharding on `mesh`; a clear error for one placed otherwise."""
  def one(path, x):
    s = getattr(x, "sharding", None)
    if not isinstance(s, jax.sharding.NamedSharding) or s.mesh != mesh:
      raise ValueError(
          f"RLTrainer was given a mesh, but parameter {jax.tree_util.keystr(path)} is "
          f"placed as {type(s).__name__ if s is not None else type(x).__name__}, not with a "
          "NamedSharding on that mesh: place the parameters first (sharding.init_sharded, or "
          "jax.device_put(params, shardings) with sharding.logical_shardings)")
    return s
  return jax.tree_util.tree_map_with_path(one, params)


class RLTrainer:
  """One RL stage. Construct, then `run()`; see the module docstring."""

  def __init__(self, config: TrainerConfig, model_config: ModelConfig, params,
               optimizer: optax.GradientTransformation, data, reward_fn: RewardFn,
               decode: Callable[[Sequence[int]], str], rollout_fn: rollout_lib.RolloutFn,
               workdir: str | pathlib.Path, ref_params=None, mesh=None,
               rules: sharding.Rules = sharding.DEFAULT_RULES,
               host_hooks: Sequence[Callable[[int, Mapping[str, float]], None]] = ()):
    self.config, self.model_config = config, model_config
    self.data, self.reward_fn, self.decode, self.rollout_fn = data, reward_fn, decode, rollout_fn
    self.mesh, self.rules, self.host_hooks = mesh, rules, tuple(host_hooks)
    self.workdir = pathlib.Path(workdir)
    self.root_key = rng_lib.root_key(config.seed)
    self.uses_reference = getattr(config.loss_config, "kl_coef", 0.0) > 0
    if self.uses_reference and ref_params is None:  # The frozen reference: the start point.
      ref_params = reference_copy(params, config.reference_dtype)
    self.ref_params = ref_params if self.uses_reference else None
    self.state = train_step.TrainState.create(jax.tree.map(jnp.copy, params), optimizer)
    self.step_fn = self._make_step(optimizer, params)
    self.checkpointer = checkpoint.Checkpointer(self.workdir / "checkpoints",
                                                max_to_keep=config.keep_checkpoints)
    self.writer = metrics_lib.MetricWriter(self.workdir / "metrics",
                                           total_steps=config.iterations,
                                           console_keys=config.console_keys)
    self.iteration = 0
    self._restore()

  def _make_step(self, optimizer, params):
    objective = train_step.rl_objective(self.config.loss, self.config.loss_config)
    if self.mesh is None:
      return train_step.make_step(self.model_config, self.config.step, optimizer, objective)
    param_sh = _mesh_shardings(params, self.mesh)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    state_sh = train_step.state_shardings(optimizer, abstract, param_sh, self.mesh)
    return train_step.make_step(self.model_config, self.config.step, optimizer, objective,
                                state_sh, None, param_sh if self.uses_reference else None)

  # -------------------------------------------------------------------- checkpoints

  def _host_state(self) -> dict[str, Any]:
    host = {"iteration": self.iteration, "data": self.data.get_state()}
    if hasattr(self.reward_fn, "get_state"):
      host["reward"] = self.reward_fn.get_state()
    return host

  def _restore(self) -> None:
    restored = self.checkpointer.restore(None, self.state)
    if restored is None:
      return
    self.state, host = restored
    self.iteration = host["iteration"]
    self.data.set_state(host["data"])
    if "reward" in host and hasattr(self.reward_fn, "set_state"):
      self.reward_fn.set_state(host["reward"])
    logging.info("resumed from %s at iteration %d", self.checkpointer.directory, self.iteration)

  def save(self, force: bool = False) -> None:
    self.checkpointer.save(self.iteration, self.state, self._host_state(), force=force)

  # ------------------------------------------------------------------------- loop

  def run(self) -> train_step.TrainState:
    late = metrics_lib.LateMetrics(self.writer)
    timer = metrics_lib.Timer()
    cfg = self.config
    while self.iteration < cfg.iterations:
      keys = rng_lib.split_named(rng_lib.step_key(self.root_key, self.iteration), ["rollout"])
      with timer.phase("data"):
        prompts = rollout_lib.PromptBatch.from_data(next(self.data), self.model_config)
      with timer.phase("sampling"):
        generation = self.rollout_fn(self.state.params, prompts, keys["rollout"])
        jax.block_until_ready(generation.samples)
      with timer.phase("rewards"):
        rollout = rollout_lib.host_rollout(generation, self.decode)
        rewards = self.reward_fn(rollout)
      with timer.phase("update"):
        adv_n, keep_n, adv_stats = self._advantages(rollout, rewards, len(prompts.rows))
        batch = rollout_lib.assemble(generation, adv_n, cfg.length_multiple)
        batch = batch.replace(loss_mask=batch.loss_mask * keep_n[:, None])
        for part in _split_rows(batch, cfg.updates_per_rollout):
          self.state, step_metrics = self.step_fn(self.state, self.ref_params, part)
        jax.block_until_ready(self.state.step)
      timer.add_tokens(int(rollout.response_lengths.sum()))
      self.iteration += 1
      host = dict(rollout_lib.reward_metrics(rollout, rewards), **adv_stats)
      host.update({"response_length": float(np.mean(rollout.response_lengths)),
                   "response_length_max": float(np.max(rollout.response_lengths)),
                   "truncated_fraction": float(np.mean(rollout.truncated)),
                   "update_length": float(batch.loss_mask.shape[1]),
                   **timer.summary()})
      stats = getattr(self.rollout_fn, "last_stats", None)  # E.g. the search agent's tool use.
      if stats is not None:
        host.update(stats.as_metrics())
      # E.g. an audit of the rewards (safework.audit): metrics only, the reward is unchanged.
      host.update(getattr(self.reward_fn, "last_metrics", None) or {})
      for hook in self.host_hooks:
        hook(self.iteration, host)
      late.push(self.iteration, step_metrics, host)
      if self.iteration % cfg.checkpoint_every == 0 or self.iteration == cfg.iterations:
        late.flush()  # A checkpoint's metrics are on disk before it (one sync per save).
        self.save()
    late.flush()
    self.checkpointer.wait()
    self.writer.flush()
    return self.state

  def _advantages(self, rollout, rewards, num_groups: int):
    cfg = self.config
    group_ids = jnp.asarray(rollout.group_ids)
    if cfg.normalise_per_objective:
      names = sorted(rewards.scores)
      scores = jnp.asarray(np.stack([np.nan_to_num(rewards.scores[n]) for n in names], -1))
      weights = jnp.asarray(np.stack([rewards.weights[n] for n in names], -1))
      reward_n = advantages_lib.combine_objectives(scores, weights, group_ids, num_groups, True)
    else:
      reward_n = jnp.asarray(rewards.total)
    adv_n, stats = advantages_lib.compute_advantages(
        reward_n, group_ids, jnp.asarray(rollout.response_lengths), num_groups=num_groups,
        config=cfg.advantage)
    keep_n = jnp.ones_like(adv_n)
    if cfg.advantage.dynamic_sampling:
      keep, _ = advantages_lib.dynamic_sampling_mask(reward_n, group_ids, num_groups)
      keep_n = keep.astype(jnp.float32)
    stats = {f"advantage/{k}": float(v) for k, v in jax.device_get(stats).items()}
    return adv_n, keep_n, stats

  def close(self) -> None:
    self.checkpointer.close()
    self.writer.close()

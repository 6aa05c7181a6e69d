"""Supervised fine-tuning: cross-entropy on assistant tokens over packed batches, with
the shared update of rl/train_step.py, checkpoints and metrics. Used for CoT-SFT (the
first rung of the ladder) and for training the judges.

  state = SFTTrainer(config, model_config, params, optimizer, data, workdir).run()

`data` yields `data` pipeline batches in SFT mode (tokens, segment_ids, loss_mask,
patches, grids) and has `get_state`/`set_state`; a killed run continues from its last
checkpoint with the same next batch.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from models.config import ModelConfig
from models.inputs import make_inputs
from rl import train_step
from safework.infra import checkpoint, metrics as metrics_lib


@dataclasses.dataclass(frozen=True)
class SFTConfig:
  steps: int = 100  # Optimiser updates.
  step: train_step.StepConfig = train_step.StepConfig()
  checkpoint_every: int = 50  # Updates between checkpoints (and always at the end).
  keep_checkpoints: int = 2

  def __post_init__(self):
    if self.steps < 0 or self.checkpoint_every < 1:
      raise ValueError(f"SFTConfig: steps >= 0 and checkpoint_every >= 1; got {self}")


def sft_batch(batch, config: ModelConfig) -> train_step.SFTBatch:
  """A data pipeline batch (SFT mode) as the update's input, on the host."""
  arrays = batch.arrays if hasattr(batch, "arrays") else batch
  has_images = bool(np.any(arrays["grids"][..., 0] > 0))
  inputs, _ = make_inputs(arrays["tokens"], arrays["segment_ids"], config,
                          arrays["patches"] if has_images else None,
                          arrays["grids"] if has_images else None)
  return train_step.SFTBatch(inputs=inputs, loss_mask=np.asarray(arrays["loss_mask"], np.float32))


class SFTTrainer:
  """Construct, then `run()`."""

  def __init__(self, config: SFTConfig, model_config: ModelConfig, params,
               optimizer: optax.GradientTransformation, data, workdir: str | pathlib.Path,
               console_keys: tuple[str, ...] = ("loss",)):
    self.config, self.model_config, self.data = config, model_config, data
    self.workdir = pathlib.Path(workdir)
    self.state = train_step.TrainState.create(jax.tree.map(jnp.copy, params), optimizer)
    self.step_fn = train_step.make_step(model_config, config.step, optimizer,
                                        train_step.sft_objective())
    self.checkpointer = checkpoint.Checkpointer(self.workdir / "checkpoints",
                                                max_to_keep=config.keep_checkpoints)
    self.writer = metrics_lib.MetricWriter(self.workdir / "metrics", total_steps=config.steps,
                                           console_keys=console_keys)
    restored = self.checkpointer.restore(None, self.state)
    if restored is not None:
      self.state, host = restored
      self.data.set_state(host["data"])
      logging.info("resumed SFT from %s at step %d", self.checkpointer.directory,
                   int(self.state.step))

  def run(self) -> train_step.TrainState:
    late = metrics_lib.LateMetrics(self.writer)
    timer = metrics_lib.Timer()
    step = int(self.state.step)
    while step < self.config.steps:
      with timer.phase("data"):
        batch = sft_batch(next(self.data), self.model_config)
      with timer.phase("update"):
        self.state, metrics = self.step_fn(self.state, None, batch)
      timer.add_tokens(int(np.sum(batch.inputs.segment_ids > 0)))
      step += 1
      late.push(step, metrics, timer.summary())
      if step % self.config.checkpoint_every == 0 or step == self.config.steps:
        late.flush()  # A checkpoint's metrics are on disk before it (one sync per save).
        self.checkpointer.save(step, self.state, {"data": self.data.get_state()})
    late.flush()
    self.checkpointer.wait()
    self.writer.flush()
    return self.state

  def close(self) -> None:
    self.checkpointer.close()
    self.writer.close()

"""The jitted, sharded, donated update shared by RL and SFT.

  step = make_step(StepConfig(...), model_config, optimizer, objective=rl_objective(...))
  state, metrics = step(state, ref_params, batch)

One update: the batch is split into micro-batches scanned with `lax.scan`; each
recomputes token log-probabilities under the current parameters (and, when the KL
coefficient is non-zero, the frozen reference), evaluates the objective weighted so the
micro-batch losses sum to the whole batch's loss, and accumulates gradients. Then a
non-finite loss or gradient skips the update (counted in the state), otherwise optax
applies clipping and AdamW to the trainable groups.

Axis letters: B batch, A micro-batches, T tokens, V vocab, C tokens per logits chunk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from models import vlm
from models.config import ModelConfig
from models.inputs import ModelInputs
from rl import aggregation, losses, sampling_methods
from safework.infra import sharding


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 [], updates applied or skipped.
  params: Any
  opt_state: Any
  skipped: jax.Array  # int32 [], updates skipped for a non-finite loss or gradient.

  @classmethod
  def create(cls, params, optimizer: optax.GradientTransformation) -> TrainState:
    """The state before the first update, placed as the state an update returns, so the
    second update reuses the first one's program. With parameters on a mesh, the leaves
    born unplaced (the counters, the optimiser's step counts) are put on it replicated
    (otherwise the second update traced and compiled the step again). With parameters
    committed to one device (restored from a checkpoint), the optimiser state born
    uncommitted is committed there too (otherwise the second update compiled the step
    again: a restored judge's refresh compiled its update twice, 6.5 s)."""
    state = cls(jnp.zeros((), jnp.int32), params, optimizer.init(params),
                jnp.zeros((), jnp.int32))
    leaves = jax.tree.leaves(state)
    if any(isinstance(x, jax.core.Tracer) for x in leaves):
      return state  # Created inside a jitted function: its out_shardings place it.
    mesh = next((x.sharding.mesh for x in jax.tree.leaves(params)
                 if isinstance(getattr(x, "sharding", None), jax.sharding.NamedSharding)), None)
    if mesh is None:
      device = next((x.sharding for x in leaves if getattr(x, "committed", False)), None)
      if device is None:
        return state
      return jax.tree.map(
          lambda x: x if getattr(x, "committed", True) else jax.device_put(x, device), state)
    return jax.tree.map(
        lambda x: x if isinstance(getattr(x, "sharding", None), jax.sharding.NamedSharding)
        else jax.device_put(x, sharding.replicated(mesh)), state)


@flax.struct.dataclass
class RLBatch:
  """Prompt + response sequences of a rollout, aligned on the token axis.

  `old_logp` and `loss_mask` are indexed by the token they score: entry t concerns
  tokens[t] given tokens[:t] (entry 0 is unused).
  """

  inputs: ModelInputs
  old_logp: jax.Array  # float32 [B, T], rollout policy log-probs of the sampled tokens.
  advantages: jax.Array  # float32 [B], one per response.
  loss_mask: jax.Array  # float32 [B, T], 1 on generated tokens that count (not tool output).


@flax.struct.dataclass
class SFTBatch:
  inputs: ModelInputs
  loss_mask: jax.Array  # float32 [B, T], 1 on assistant tokens to learn.


@dataclasses.dataclass(frozen=True)
class StepConfig:
  micro_batches: int = 1  # Gradient accumulation: the batch splits into this many.
  temperature: float = 1.0  # Log-probs of logits / temperature, as the sampler's.
  logits_chunk: int = 0  # Tokens per logits chunk (0: all at once); bounds [B, C, V] memory.

  def __post_init__(self):
    if self.micro_batches < 1 or self.temperature <= 0 or self.logits_chunk < 0:
      raise ValueError(f"StepConfig: micro_batches >= 1, temperature > 0, logits_chunk >= 0; "
                       f"got {self}")


def token_logprobs(model_config: ModelConfig, params, inputs: ModelInputs,
                   temperature: float = 1.0, chunk: int = 0
                   ) -> tuple[jax.Array, jax.Array]:
  """log p(tokens[t] | tokens[:t]) under the policy (`sampling_methods.policy_logits`) at
  temperature, and the entropy of that distribution.

  Returns:
    logp_bt, entropy_bt: float32 [B, T]; entry 0 (no context) is 0.
  """
  model = vlm.Qwen25VL(model_config)
  hidden_btd, _ = model.apply(params, inputs, method=vlm.Qwen25VL.hidden_states)
  targets_bt = jnp.roll(inputs.tokens, -1, axis=1)  # Position t predicts token t + 1.

  def score(hidden_bcd, targets_bc):
    logits = model.apply(params, hidden_bcd, method=vlm.Qwen25VL.logits)
    logits = sampling_methods.policy_logits(logits, model_config) / temperature
    logz = jax.nn.logsumexp(logits, axis=-1)
    logp = jnp.take_along_axis(logits, targets_bc[..., None], axis=-1)[..., 0] - logz
    probs = jax.nn.softmax(logits, axis=-1)
    entropy = logz - jnp.sum(probs * logits, axis=-1)
    return logp, entropy

  b, t, d = hidden_btd.shape
  if chunk and t > chunk:
    if t % chunk:
      raise ValueError(f"sequence length {t} must be a multiple of logits_chunk {chunk}")
    # Recompute each chunk's logits in the backward pass instead of storing [B, T, V].
    chunks = jax.lax.map(
        lambda xs: jax.checkpoint(score)(*xs),
        (hidden_btd.reshape(b, t // chunk, chunk, d).swapaxes(0, 1),
         targets_bt.reshape(b, t // chunk, chunk).swapaxes(0, 1)))
    logp, entropy = (x.swapaxes(0, 1).reshape(b, t) for x in chunks)
  else:
    logp, entropy = score(hidden_btd, targets_bt)
  # Shift so entry t scores token t; the last prediction has no target.
  pad = lambda x: jnp.pad(x[:, :-1], ((0, 0), (1, 0)))
  return pad(logp), pad(entropy)


def _is_max(metric: str) -> bool:
  """Metrics combined over micro-batches by max; the rest are shares that add up."""
  return metric.endswith("max")


# An objective maps (params, ref_params, micro-batch, whole-batch normaliser) to a loss
# already divided by that normaliser's share, and its metrics.
Objective = Callable[..., tuple[jax.Array, Mapping[str, jax.Array]]]


def rl_objective(loss_name: str, loss_config) -> tuple[Objective, Callable]:
  """A registered policy loss (rl/losses.py) as an objective, and its normaliser."""
  loss_fn = losses.get_loss(loss_name).fn
  mode = loss_config.aggregation

  def objective(model_config, step_config, params, ref_params, batch: RLBatch, total):
    logp, entropy = token_logprobs(model_config, params, batch.inputs, step_config.temperature,
                                   step_config.logits_chunk)
    ref_logp = None
    if loss_config.kl_coef > 0:
      ref_logp, _ = token_logprobs(model_config, ref_params, batch.inputs,
                                   step_config.temperature, step_config.logits_chunk)
      ref_logp = jax.lax.stop_gradient(ref_logp)
    loss, metrics = loss_fn(logp, batch.old_logp, batch.advantages, batch.loss_mask, loss_config,
                            ref_logp_bt=ref_logp)
    share = aggregation.normaliser(batch.loss_mask, mode) / total
    metrics = dict(metrics, entropy=aggregation.masked_mean(entropy, batch.loss_mask))
    return loss * share, {k: v if _is_max(k) else v * share for k, v in metrics.items()}

  return objective, lambda batch: aggregation.normaliser(batch.loss_mask, mode)


def sft_objective() -> tuple[Objective, Callable]:
  """Cross-entropy on the masked (assistant) tokens, a token mean over the batch."""

  def objective(model_config, step_config, params, ref_params, batch: SFTBatch, total):
    del ref_params
    logp, _ = token_logprobs(model_config, params, batch.inputs, 1.0, step_config.logits_chunk)
    mask = batch.loss_mask.astype(jnp.float32)
    nll = -jnp.sum(jnp.where(mask > 0, logp * mask, 0.0))
    correct = jnp.sum(mask)
    return nll / total, {"loss/total": nll / total, "tokens": correct}

  return objective, lambda batch: jnp.maximum(jnp.sum(batch.loss_mask), 1.0)


def _batch_axis(path) -> int:
  """M-RoPE positions are [3, B, T]; every other batch leaf has the batch first."""
  return 1 if any(getattr(k, "name", None) == "positions" for k in path) else 0


def batch_shardings(batch, mesh, rules):
  """Each batch leaf split over the mesh's batch axes on its batch dimension."""
  return jax.tree_util.tree_map_with_path(
      lambda path, x: sharding.batch_sharding(mesh, rules, x.ndim, _batch_axis(path)), batch)


def split_micro(batch, num: int):
  """[B, ...] -> [A, B/A, ...] on every leaf (positions [3, B, T] on its axis 1)."""

  def split(path, x):
    axis = _batch_axis(path)
    if x.shape[axis] % num:
      raise ValueError(f"batch of {x.shape[axis]} does not split into {num} micro-batches")
    x = jnp.moveaxis(x, axis, 0)
    x = x.reshape((num, x.shape[0] // num) + x.shape[1:])
    return jnp.moveaxis(x, 1, axis + 1)

  return jax.tree_util.tree_map_with_path(split, batch)


def train_step(state: TrainState, ref_params, batch, *, model_config: ModelConfig,
               step_config: StepConfig, optimizer: optax.GradientTransformation,
               objective: Objective, normaliser: Callable
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimiser update over `batch` (see the module docstring). Pure; jit it."""
  total = normaliser(batch)
  micro = split_micro(batch, step_config.micro_batches)

  def accumulate(grads, micro_batch):
    (loss, metrics), g = jax.value_and_grad(
        lambda p: objective(model_config, step_config, p, ref_params, micro_batch, total),
        has_aux=True)(state.params)
    return jax.tree.map(jnp.add, grads, g), (loss, metrics)

  zeros = jax.tree.map(jnp.zeros_like, state.params)
  grads, (loss_a, metrics_a) = jax.lax.scan(accumulate, zeros, micro)
  loss = jnp.sum(loss_a)
  metrics = {k: jnp.max(v) if _is_max(k) else jnp.sum(v) for k, v in metrics_a.items()}
  finite = jnp.isfinite(loss) & jnp.all(jnp.array(
      [jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))

  def apply(_):
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    return optax.apply_updates(state.params, updates), opt_state

  params, opt_state = jax.lax.cond(finite, apply, lambda _: (state.params, state.opt_state),
                                   None)
  new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state,
                         skipped=state.skipped + (~finite).astype(jnp.int32))
  metrics.update({"loss": loss, "grad_norm": optax.global_norm(grads),
                  "update_skipped": (~finite).astype(jnp.float32),
                  "skipped_total": new_state.skipped.astype(jnp.float32)})
  return new_state, metrics


def state_shardings(optimizer: optax.GradientTransformation, abstract_params, param_shardings,
                    mesh) -> TrainState:
  """Shardings of a TrainState: optimiser moments like the parameter they track.

  An optimiser-state leaf takes the sharding of the parameter whose tree path it ends
  with (optax keeps `mu`, `nu`, ... as trees shaped like the params); counters and
  anything else are replicated.
  """
  by_path = {}
  for path, s in jax.tree_util.tree_flatten_with_path(param_shardings)[0]:
    by_path[tuple(str(k) for k in path)] = s
  abstract_params = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract_params,
      param_shardings)
  abstract_state = jax.eval_shape(lambda p: TrainState.create(p, optimizer), abstract_params)
  replicated = sharding.replicated(mesh)

  def one(path, leaf):
    keys = tuple(str(k) for k in path)
    for start in range(len(keys)):
      s = by_path.get(keys[start:])
      if s is not None and len(s.spec) <= leaf.ndim:
        return s
    return replicated

  opt_sh = jax.tree_util.tree_map_with_path(one, abstract_state.opt_state)
  return TrainState(step=replicated, params=param_shardings, opt_state=opt_sh,
                    skipped=replicated)


def make_step(model_config: ModelConfig, step_config: StepConfig,
              optimizer: optax.GradientTransformation, objective_and_normaliser,
              state_shardings=None, batch_shardings=None, param_shardings=None):
  """The jitted step with declared shardings; the train state is donated."""
  objective, normaliser = objective_and_normaliser
  fn = lambda state, ref_params, batch: train_step(
      state, ref_params, batch, model_config=model_config, step_config=step_config,
      optimizer=optimizer, objective=objective, normaliser=normaliser)
  if state_shardings is None:
    return jax.jit(fn, donate_argnums=0)
  return jax.jit(fn, in_shardings=(state_shardings, param_shardings, batch_shardings),
                 out_shardings=(state_shardings, None), donate_argnums=0)

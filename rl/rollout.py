"""Rollouts: prompts in, G sampled responses per prompt out, assembled for the update.

A rollout function maps a prompt batch to a `Generation` (the sampler's output plus the
prompts it continued). The default one calls `sampler.sample` once; the deliberative-
search rollout runs the sampler in segments with tool calls but returns the same type.
`assemble` then lays each response right after its prompt's last token, with the
continuing M-RoPE positions, the sampler's log-probabilities and the loss mask (tool
output and forced prefixes are not the policy's and are masked out). With a
`length_multiple` it keeps only as many token columns as the rollout's longest prompt +
response needs, rounded up to that multiple: the columns it drops hold only padding.

Axis letters: B prompts, G samples per prompt, N = B*G rows, P prompt length,
R response length, L = P + R.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from models.config import ModelConfig
from models.inputs import ModelInputs, make_inputs
from rl import sampler
from rl.rewards import Rollout
from rl.sampling_methods import Method, Temperature
from rl.train_step import RLBatch


@dataclasses.dataclass(frozen=True)
class PromptBatch:
  """Prompts on the host: model inputs, the next decode position, per-prompt metadata."""

  inputs: ModelInputs  # numpy arrays, B rows.
  next_position: np.ndarray  # int32 [B].
  rows: Sequence[Any]  # per prompt: an object with uid, label, gold, meta, example.
  # bool [B]: rows that only pad a partial batch (nothing is generated for them).
  padding: np.ndarray | None = None

  @classmethod
  def from_data(cls, batch, config: ModelConfig) -> PromptBatch:
    """From a `data` pipeline batch in prompt mode (one example per row)."""
    arrays = batch.arrays
    has_images = bool(np.any(arrays["grids"][..., 0] > 0))
    # A partial last batch (drop_remainder=False) pads with empty rows. The sampler needs
    # a token in every row, so each padding row gets a one-token dummy prompt; its row
    # info stays None and its samples are ignored.
    segment_ids = np.array(arrays["segment_ids"], copy=True)
    padding = ~segment_ids.any(axis=1)
    segment_ids[padding, 0] = 1
    inputs, next_position = make_inputs(
        arrays["tokens"], segment_ids, config,
        arrays["patches"] if has_images else None, arrays["grids"] if has_images else None)
    rows = [row[0] if row else None for row in batch.rows]
    return cls(inputs, next_position, rows, padding)

  def budgets(self, max_new_tokens: int) -> np.ndarray:
    """int32 [B] response budgets: `max_new_tokens`, 0 for a padding row (done at once,
    so a partial batch decodes no longer than its real rows need)."""
    budgets = np.full((len(self.rows),), max_new_tokens, np.int32)
    if self.padding is not None:
      budgets[self.padding] = 0
    return budgets


@dataclasses.dataclass(frozen=True)
class Generation:
  prompts: PromptBatch
  samples: sampler.SampleOutput  # N = B*G rows; row b*G + g is sample g of prompt b.
  num_samples: int


RolloutFn = Callable[[Any, PromptBatch, jax.Array], Generation]


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  num_samples: int = 8  # G responses per prompt.
  max_new_tokens: int = 64  # Response budget, tokens.
  method: Method = Temperature(1.0)  # The training policy samples at temperature 1.
  stop_tokens: tuple[int, ...] = ()  # Token ids that end a response (the turn end).
  # Decode the running rows in narrower states as the others finish (`sampler.decode`'s
  # `compact`): faster, but not bit-identical to the full width, so off for training.
  compact: bool = False


def sampler_rollout(model_config: ModelConfig, config: SamplingConfig) -> RolloutFn:
  """The plain rollout: prefill each prompt once, fork G ways, decode to the end."""

  def rollout(params, prompts: PromptBatch, rng: jax.Array) -> Generation:
    samples = sampler.sample(params, prompts.inputs, prompts.next_position, config=model_config,
                             num_samples=config.num_samples, method=config.method,
                             max_new_tokens=config.max_new_tokens,
                             stop_tokens=config.stop_tokens, rng=rng,
                             max_new_tokens_b=prompts.budgets(config.max_new_tokens),
                             compact=config.compact)
    return Generation(prompts, samples, config.num_samples)

  return rollout


def host_rollout(generation: Generation, decode: Callable[[Sequence[int]], str]) -> Rollout:
  """The decoded rollout a reward function sees."""
  g = generation.num_samples
  samples = jax.device_get(generation.samples)
  rows = [row for row in generation.prompts.rows for _ in range(g)]
  lengths = np.asarray(samples.lengths_b, np.int32)
  responses = [decode(samples.tokens_bt[n, :lengths[n]].tolist()) for n in range(len(rows))]
  # The policy's own tokens: CALE prefers shorter reasoning, not fewer search results read.
  drawn = np.asarray(samples.mask_bt).sum(-1).astype(np.int32)
  return Rollout(
      questions=[row.example.question for row in rows], responses=responses,
      labels=[row.label for row in rows], golds=[row.gold for row in rows],
      metas=[row.meta for row in rows], images=[row.example.images for row in rows],
      group_ids=np.repeat(np.arange(len(generation.prompts.rows), dtype=np.int32), g),
      response_lengths=drawn, truncated=~np.asarray(samples.finished_b))


@functools.partial(jax.jit, static_argnames="length")
def _assemble(prompt: ModelInputs, next_position_b, samples: sampler.SampleOutput,
              advantages_n, length: int) -> RLBatch:
  n, r = samples.tokens_bt.shape
  g = n // prompt.tokens.shape[0]
  rep = lambda x, axis=0: jnp.repeat(x, g, axis=axis)
  tokens_np, segs_np = rep(prompt.tokens), rep(prompt.segment_ids)
  p = tokens_np.shape[1]
  prompt_len_n = jnp.sum(segs_np != 0, axis=1)
  j = jnp.arange(length)[None, :]
  from_prompt = j < prompt_len_n[:, None]
  k = j - prompt_len_n[:, None]  # Index into the response.
  from_response = (k >= 0) & (k < samples.lengths_b[:, None])
  take_p = lambda x: jnp.take_along_axis(x, jnp.clip(j, 0, p - 1), axis=-1)
  take_r = lambda x: jnp.take_along_axis(x, jnp.clip(k, 0, r - 1), axis=-1)
  tokens = jnp.where(from_prompt, take_p(tokens_np),
                     jnp.where(from_response, take_r(samples.tokens_bt), 0))
  prompt_pos = jax.vmap(take_p)(rep(prompt.positions, axis=1))
  response_pos = rep(next_position_b)[:, None] + k
  positions = jnp.where(from_prompt[None], prompt_pos, response_pos[None])
  positions = jnp.where((from_prompt | from_response)[None], positions, 0)
  segment_ids = (from_prompt | from_response).astype(jnp.int32)
  vision = None if prompt.vision is None else jax.tree.map(rep, prompt.vision)
  inputs = ModelInputs(tokens.astype(jnp.int32), positions.astype(jnp.int32), segment_ids,
                       vision)
  old_logp = jnp.where(from_response, take_r(samples.logprobs_bt), 0.0)
  loss_mask = jnp.where(from_response, take_r(samples.mask_bt.astype(jnp.float32)), 0.0)
  return RLBatch(inputs, old_logp, advantages_n.astype(jnp.float32), loss_mask)


def assemble(generation: Generation, advantages_n: jax.Array, length_multiple: int = 0
             ) -> RLBatch:
  """Prompt + response sequences [N, L] with aligned log-probs and loss mask.

  L is P + R, or with `length_multiple` > 0 the longest prompt + response of the rollout
  rounded up to a multiple of it (at most P + R). The update's result is the same (the
  dropped columns are padding, masked everywhere); its cost falls with L. Each distinct L
  compiles the update once, so the multiple trades padding against compilations.
  """
  prompts = generation.prompts
  return _assemble(jax.tree.map(jnp.asarray, prompts.inputs),
                   jnp.asarray(prompts.next_position), generation.samples, advantages_n,
                   length=update_length(generation, length_multiple))


def update_length(generation: Generation, length_multiple: int = 0) -> int:
  """The token columns `assemble` keeps (see there)."""
  if length_multiple < 0:
    raise ValueError(f"length_multiple must be >= 0, got {length_multiple}")
  full = generation.prompts.inputs.tokens.shape[1] + generation.samples.tokens_bt.shape[1]
  if not length_multiple:
    return full
  prompt_len_b = np.sum(np.asarray(generation.prompts.inputs.segment_ids) != 0, axis=1)
  used = np.repeat(prompt_len_b, generation.num_samples) + np.asarray(
      generation.samples.lengths_b)
  return min(full, -(-int(used.max()) // length_multiple) * length_multiple)


def reward_metrics(rollout: Rollout, rewards) -> Mapping[str, float]:
  """Mean reward overall, per verifier (where applied) and per label; failures."""
  out = {"reward/total": float(np.mean(rewards.total))}
  for name, scores in rewards.scores.items():
    applied = ~np.isnan(scores)
    if applied.any():
      out[f"reward/{name}"] = float(np.mean(scores[applied]))
  labels = np.asarray(rollout.labels)
  for label in sorted(set(rollout.labels)):
    out[f"reward_by_label/{label}"] = float(np.mean(rewards.total[labels == label]))
  for name, count in rewards.failures.items():
    out[f"verifier_failures/{name}"] = float(count)
  return out

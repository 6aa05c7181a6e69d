"""Value-guided step-level search at inference (METHOD.md §5.1), as a rollout function.

  value_model = PrincipledValueModel(judges, ValueModelConfig(step_delimiter="."))
  rollout_fn = step_search_rollout(model_config, tokenizer, value_model,
                                   StepSearchConfig(candidates=4, beams=1))
  generate = generation.Generator(model_config, tokenizer, pipeline_config, rollout_fn)
  texts, lengths = generate(params, examples, rng)       # one searched response each

One call, B prompts (K = candidates, W = beams):
  1. prefill each prompt once and fork it K ways;
  2. `sampler.decode` until every row is done or has just ended a reasoning step: a row
     pauses after a token whose text holds `value_model.config.step_delimiter`, or after
     `</think>`;
  3. score every row's response so far with the principled value model (the prompt's
     label is the routing category), keep each prompt's W best distinct rows (ties: the
     earlier row), and fork each kept row K ways;
  repeat 2-3 up to `max_steps` times or until every kept row is done; then finish the
  unfinished rows in one decode (no pauses), score the finished responses the same way and
  return each prompt's best. With K = W = 1 nothing is ever dropped, and the response is
  the plain sampler's, token for token (a row's draws depend on its index and the decode
  step, not on how decoding is split).

The per-step values are in `StepSearchRollout.last_trace` for inspection.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

from data.tokenizer import Tokenizer
from models.config import ModelConfig
from rl import sampler
from rl.rollout import Generation, PromptBatch
from rl.sampling_methods import Method, Temperature
from verifiers import value_model as value_model_lib


@dataclasses.dataclass(frozen=True)
class StepSearchConfig:
  """Settings of the search (METHOD.md §5.1; the numbers are ours)."""

  candidates: int = 4  # K continuations sampled from each kept trajectory at each step.
  beams: int = 1  # W trajectories kept per prompt after each step.
  max_steps: int = 16  # Steps searched; the rest of a response is decoded without pauses.
  max_new_tokens: int = 512  # Response budget, tokens.
  method: Method = Temperature(1.0)  # How candidates are drawn.
  stop_tokens: tuple[int, ...] = ()  # Token ids that end a response (the turn end).

  def __post_init__(self):
    for name in ("candidates", "beams", "max_steps", "max_new_tokens"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"StepSearchConfig.{name} must be an int >= 1, got {value!r}")


def step_end_tokens(tokenizer: Tokenizer, delimiter: str) -> tuple[int, ...]:
  """The ids after which a step ends: every non-special token whose text holds
  `delimiter`, and `</think>`. Fails when no token holds the delimiter (a delimiter the
  tokenizer always splits, say a blank line in a tokenizer without one)."""
  special = set(dataclasses.asdict(tokenizer.special).values())
  ids = [i for i in range(tokenizer.vocab_size)
         if i not in special and delimiter in tokenizer.decode([i])]
  if not ids:
    raise ValueError(f"no token of the tokenizer holds the step delimiter {delimiter!r}; "
                     "choose one that is (part of) a token, e.g. '.' or '\\n\\n' for Qwen's")
  return tuple(sorted(ids + [tokenizer.special.think_close]))


@dataclasses.dataclass(frozen=True)
class StepRecord:
  """One scoring round: for each row its prompt, response so far and value, and the rows
  kept (indices into this round's rows)."""

  owners: np.ndarray  # int [N]
  responses: tuple[str, ...]
  values: np.ndarray  # float32 [N]
  kept: np.ndarray  # int [B * W], or [B] in the final round


class StepSearchRollout:
  """The `RolloutFn` of the module docstring (one response per prompt)."""

  def __init__(self, model_config: ModelConfig, tokenizer: Tokenizer,
               value_model: value_model_lib.PrincipledValueModel,
               config: StepSearchConfig = StepSearchConfig()):
    self.model_config, self.tokenizer = model_config, tokenizer
    self.value_model, self.config = value_model, config
    self.step_ends = step_end_tokens(tokenizer, value_model.config.step_delimiter)
    self.last_trace: list[StepRecord] = []

  def __call__(self, params, prompts: PromptBatch, rng: jax.Array) -> Generation:
    cfg = self.config
    b = len(prompts.rows)
    state = sampler.prefill(params, prompts.inputs, prompts.next_position,
                            config=self.model_config, max_new_tokens=cfg.max_new_tokens,
                            rng=rng, num_samples=cfg.candidates)
    owners = np.repeat(np.arange(b), cfg.candidates)
    self.last_trace = []
    for _ in range(cfg.max_steps):
      state = sampler.decode(params, state, method=cfg.method, stop_tokens=cfg.stop_tokens,
                             segment_end_tokens=self.step_ends)
      kept = self._keep(state, prompts, owners, cfg.beams)
      owners = owners[kept]
      if bool(np.all(jax.device_get(state.done_b)[kept])):
        state = sampler.select(state, kept)
        break
      kept = np.repeat(kept, cfg.candidates)
      state = sampler.select(state, kept)
      owners = np.repeat(owners, cfg.candidates)
    else:
      state = sampler.decode(params, state, method=cfg.method, stop_tokens=cfg.stop_tokens)
    best = self._keep(state, prompts, owners, 1)
    state = sampler.select(state, best)
    return Generation(prompts, sampler.outputs(state, cfg.stop_tokens), 1)

  def _keep(self, state, prompts: PromptBatch, owners: np.ndarray, width: int) -> np.ndarray:
    """Row indices: each prompt's `width` best distinct responses, prompts in order (a
    prompt with fewer distinct responses repeats its best)."""
    tokens, lengths = jax.device_get((state.tokens_bt, state.length_b))
    texts = [self.tokenizer.decode(tokens[n, :lengths[n]].tolist()) for n in range(len(owners))]
    rows = [prompts.rows[o] for o in owners]
    trajectories = [
        value_model_lib.Trajectory(row.example.question, text, row.label, row.gold, row.meta,
                                   tuple(row.example.images)) if row is not None else
        value_model_lib.Trajectory("", text, "")
        for row, text in zip(rows, texts)]
    values = self.value_model.score(trajectories).values
    kept = []
    for prompt in range(len(prompts.rows)):
      mine = np.flatnonzero(owners == prompt)
      order = mine[np.argsort(-values[mine], kind="stable")]
      distinct, seen = [], set()
      for n in order:
        if texts[n] not in seen:
          seen.add(texts[n])
          distinct.append(n)
      kept += (distinct + [distinct[0]] * width)[:width]
    kept = np.asarray(kept, np.int64)
    self.last_trace.append(StepRecord(owners.copy(), tuple(texts), values, kept))
    return kept


def step_search_rollout(model_config: ModelConfig, tokenizer: Tokenizer,
                        value_model: value_model_lib.PrincipledValueModel,
                        config: StepSearchConfig = StepSearchConfig()) -> StepSearchRollout:
  """The step-search `RolloutFn` (see `StepSearchRollout` and the module docstring)."""
  return StepSearchRollout(model_config, tokenizer, value_model, config)

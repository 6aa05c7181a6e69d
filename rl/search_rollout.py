"""The deliberative-search rollout (METHOD.md §4): the sampler in segments, with tool calls
answered on the host in between.

  rollout_fn = search_rollout(model_config, sampling_config, tokenizer, engine,
                              SearchConfig(max_tool_calls=3, top_k=2, max_tool_tokens=96))
  generation = rollout_fn(params, prompts, rng)   # a `rollout.Generation`, like any rollout

One call: prefill each prompt once and fork it G ways; then repeat
  1. `sampler.decode` until every row is done (the turn end, its budget) or paused at
     `</tool_call>` (a segment end);
  2. for each paused row, decode the text of its current segment (everything since its
     last tool response), parse the pending call (`data.search.pending_call`) and run it on
     the engine; a malformed call (no `<tool_call>` in the segment, bad syntax) gets the
     `error:` response of `data.search.execute`;
  3. tokenize `<tool_response>…</tool_response>`; a response longer than
     `max_tool_tokens` keeps its first tokens and its closing tag (counted);
  4. `sampler.append` the responses to their rows, all rows in one call: the tokens enter
     the response and the cache with mask False, so `rollout.assemble` leaves them out of
     the loss; the rows re-open and the next `decode` continues them.
Confidence exploration (ours, not the paper's; training rollouts only): with
`confidence_temperature` set, rows also pause at `<confidence>`, and for the rows of
closed-book prompts (`confidence_exploration`) the next token is drawn among the first
tokens of the values 0..10 at that temperature, all such rows in one single-step `decode`
while the other paused rows are held (`sampler.finish`, then `append` or
`sampler.resume`). The draw enters the loss with the policy's own log-probability
(`sampling_methods.Exploring`). A policy that states one confidence whatever it answers
gives every sample of a group the same reliability term, so the false-certain constraint
has nothing to reinforce; the explored samples give it unconfident answers to reward
(measured in docs/runlocal_search_gap.md).

A row that calls a tool after `max_tool_calls` answered calls, or whose remaining token
budget cannot take the tool response and at least one more token, is finished where it
stands (counted): its response ends with `</tool_call>`, so `finished_b` is False and the
reward function sees it as truncated. Rows that never call a tool decode exactly as in
`rollout.sampler_rollout`.

Counts of the last call are in `SearchRollout.last_stats` (and summed in `.total_stats`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import numpy as np
from absl import logging

from data import special_tokens
from data.search import ToolCall, execute, pending_call
from data.tokenizer import Tokenizer
from models.config import ModelConfig
from rl import sampler
from rl.rollout import Generation, PromptBatch, SamplingConfig
from rl.sampling_methods import Exploring, Greedy


def _check_int(owner: str, name: str, value, low: int) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
    raise ValueError(f"{owner}.{name} must be an int >= {low}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
  """Settings of the search agent's turns."""

  max_tool_calls: int = 3  # Tool calls answered per response; a further call ends it.
  top_k: int = 2  # Hits per `search` call.
  max_tool_tokens: int = 128  # Tokens of one tool response, its two tags included.
  # (ours) Temperature of the token after `<confidence>` (module docstring); None: drawn
  # like every other token. For training rollouts, not evaluation.
  confidence_temperature: float | None = None
  # (ours) Whose confidences are explored: "closed_book", the prompts whose system prompt
  # does not show the tool-call syntax (prompts that offer the tool should search when
  # unsure, not learn to hedge a guess), or "all".
  confidence_exploration: str = "closed_book"

  def __post_init__(self):
    _check_int("SearchConfig", "max_tool_calls", self.max_tool_calls, 0)
    _check_int("SearchConfig", "top_k", self.top_k, 1)
    _check_int("SearchConfig", "max_tool_tokens", self.max_tool_tokens, 2)
    t = self.confidence_temperature
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float))
                          or not math.isfinite(t) or t <= 0):
      raise ValueError(f"SearchConfig.confidence_temperature must be None or a finite number "
                       f"> 0, got {t!r}")
    if self.confidence_exploration not in ("closed_book", "all"):
      raise ValueError(f"SearchConfig.confidence_exploration must be 'closed_book' or 'all', "
                       f"got {self.confidence_exploration!r}")


@dataclasses.dataclass
class SearchStats:
  """Counts over the rows of one or more rollout calls."""

  tool_calls: int = 0  # Tool responses appended (valid or error).
  invalid_calls: int = 0  # Of those, answers to malformed calls.
  truncated_responses: int = 0  # Tool responses cut to `max_tool_tokens`.
  over_call_limit: int = 0  # Rows finished at a call past `max_tool_calls`.
  out_of_budget: int = 0  # Rows finished because the tool response did not fit.
  segments: int = 0  # `sampler.decode` calls (the single confidence draws not counted).
  confidence_draws: int = 0  # Tokens drawn at `confidence_temperature`.

  def add(self, other: SearchStats) -> None:
    for field in dataclasses.fields(self):
      setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

  def as_metrics(self) -> dict[str, float]:
    return {f"search/{f.name}": float(getattr(self, f.name)) for f in dataclasses.fields(self)}


def confidence_value_tokens(tokenizer: Tokenizer) -> tuple[int, ...]:
  """The ids that can follow `<confidence>` in a well-formed confidence: the first token of
  each value 0..10 as the tokenizer writes it there."""
  open_id, ids = tokenizer.special.confidence_open, set()
  for value in range(11):
    encoded = list(tokenizer.encode(
        f"{special_tokens.CONFIDENCE_OPEN}{value}{special_tokens.CONFIDENCE_CLOSE}"))
    at = encoded.index(open_id) if open_id in encoded else -1
    if at < 0 or at + 1 >= len(encoded):
      raise ValueError(f"the tokenizer does not write the confidence {value} as <confidence> "
                       f"and a value: {encoded}")
    ids.add(int(encoded[at + 1]))
  return tuple(sorted(ids))


class SearchRollout:
  """A `rollout.RolloutFn` whose responses may call the search tool (module docstring)."""

  def __init__(self, model_config: ModelConfig, sampling: SamplingConfig, tokenizer: Tokenizer,
               engine, config: SearchConfig = SearchConfig()):
    """
    Args:
      model_config: the policy.
      sampling: G, the response budget, the method; `stop_tokens` end a turn (default:
        the tokenizer's `<|im_end|>`).
      tokenizer: text <-> ids; its special ids name the tool-call tokens.
      engine: has `search(query, k)` and `read(doc_id)` (a `data.search.SearchEngine`).
      config: the agent's settings.
    """
    if not isinstance(config, SearchConfig):
      raise ValueError(f"config must be a SearchConfig, got {config!r}")
    self.model_config, self.sampling, self.config = model_config, sampling, config
    self.tokenizer, self.engine = tokenizer, engine
    special = tokenizer.special
    self.call_close = special.tool_call_close
    self.response_close = special.tool_response_close
    self.stop_tokens = tuple(sampling.stop_tokens) or (special.im_end,)
    self.segment_ends = (self.call_close,)
    if config.confidence_temperature is not None:
      self.confidence_open = special.confidence_open
      self.segment_ends += (self.confidence_open,)
      self.confidence_method = Exploring(float(config.confidence_temperature),
                                         sampling.method.temperature,
                                         confidence_value_tokens(tokenizer))
    for token, name in zip(self.segment_ends, ("</tool_call>", "<confidence>")):
      if token in self.stop_tokens:
        raise ValueError(f"SamplingConfig.stop_tokens {self.stop_tokens} include {name} "
                         f"(id {token}), which must pause a row, not end it")
    self.last_stats, self.total_stats = SearchStats(), SearchStats()

  def explorable(self, rows: Sequence) -> np.ndarray:
    """bool [B]: the prompts whose confidences are explored (`confidence_exploration`)."""
    if self.config.confidence_temperature is None:
      return np.zeros([len(rows)], bool)
    if self.config.confidence_exploration == "all":
      return np.ones([len(rows)], bool)
    systems = [getattr(getattr(row, "example", None), "system", None) or "" for row in rows]
    return np.array([row is not None and special_tokens.TOOL_CALL_OPEN not in system
                     for row, system in zip(rows, systems)], bool)

  def tool_response_ids(self, segment_ids: Sequence[int], stats: SearchStats) -> list[int]:
    """The ids of the tool response to the call that ends `segment_ids` (a row's tokens
    since its last tool response)."""
    call = pending_call(self.tokenizer.decode(list(segment_ids)))
    if call is None:  # `</tool_call>` without an opening tag in this segment.
      call = ToolCall("invalid", "")
    stats.invalid_calls += not call.valid
    ids = list(self.tokenizer.encode(execute(call, self.engine, k=self.config.top_k)))
    if len(ids) > self.config.max_tool_tokens:
      stats.truncated_responses += 1
      ids = ids[:self.config.max_tool_tokens - 1] + [self.response_close]
    return ids

  def __call__(self, params, prompts: PromptBatch, rng: jax.Array) -> Generation:
    g = self.sampling.num_samples
    state = sampler.prefill(params, prompts.inputs, prompts.next_position,
                            config=self.model_config,
                            max_new_tokens=self.sampling.max_new_tokens, rng=rng, num_samples=g,
                            max_new_tokens_b=prompts.budgets(self.sampling.max_new_tokens))
    calls_n = np.zeros([state.batch_size], np.int64)
    segment_start_n = np.zeros([state.batch_size], np.int64)
    stats = SearchStats()
    explorable_n = np.repeat(self.explorable(prompts.rows), g)
    while True:
      state = sampler.decode(params, state, method=self.sampling.method,
                             stop_tokens=self.stop_tokens, segment_end_tokens=self.segment_ends,
                             compact=self.sampling.compact)
      stats.segments += 1
      tokens_nt, length_n, budget_n, done_n = jax.device_get(
          (state.tokens_bt, state.length_b, state.max_length_b, state.done_b))
      # A row that is not done stopped at a segment end: decode runs every other row out.
      paused = np.flatnonzero(~done_n)
      if not paused.size:
        break
      at_call_n = tokens_nt[paused, length_n[paused] - 1] == self.call_close
      calls = paused[at_call_n]
      at_confidence = paused[~at_call_n]
      explored = at_confidence[explorable_n[at_confidence]]
      if explored.size:  # Their next token at `confidence_temperature`, all in one step.
        # Rows at a tool call wait until their `append`, the others until the next decode.
        waiting = np.concatenate([calls, at_confidence[~explorable_n[at_confidence]]])
        if waiting.size:
          state = sampler.finish(state, waiting)
        state = sampler.decode(params, state, method=self.confidence_method,
                               stop_tokens=self.stop_tokens,
                               segment_end_tokens=self.segment_ends, max_steps=1)
        if waiting.size > calls.size:
          state = sampler.resume(state, waiting[calls.size:])
        stats.confidence_draws += explored.size
        # A value token is no segment end: the explored rows continue at the next decode,
        # and the held rows' tokens (read above) are unchanged.
      rows, chunks, finished = [], [], []
      for n in calls.tolist():
        if calls_n[n] >= self.config.max_tool_calls:
          stats.over_call_limit += 1
          finished.append(n)
          continue
        ids = self.tool_response_ids(tokens_nt[n, segment_start_n[n]:length_n[n]], stats)
        if len(ids) >= budget_n[n] - length_n[n]:
          stats.out_of_budget += 1
          finished.append(n)
          continue
        rows.append(n)
        chunks.append(ids)
        calls_n[n] += 1
        segment_start_n[n] = length_n[n] + len(ids)
      stats.tool_calls += len(rows)
      if finished:
        state = sampler.finish(state, finished)
      if rows:
        state = sampler.append(params, state, chunks, rows)
    self.last_stats = stats
    self.total_stats.add(stats)
    logging.log_every_n_seconds(logging.INFO, "search rollout: %s", 60, stats)
    return Generation(prompts, sampler.outputs(state, self.stop_tokens), g)


def search_rollout(model_config: ModelConfig, sampling: SamplingConfig, tokenizer: Tokenizer,
                   engine, config: SearchConfig = SearchConfig()) -> SearchRollout:
  """The search-agent `RolloutFn` (see `SearchRollout` and the module docstring)."""
  return SearchRollout(model_config, sampling, tokenizer, engine, config)


def greedy_search(params, prompts: PromptBatch, *, model_config: ModelConfig,
                  tokenizer: Tokenizer, engine, config: SearchConfig = SearchConfig(),
                  max_new_tokens: int, stop_tokens: tuple[int, ...] = ()
                  ) -> tuple[list[str], np.ndarray]:
  """One greedy search-agent response per prompt, for evaluation (`config`'s
  `confidence_temperature` is not applied).

  Returns:
    The decoded responses (special tokens kept, tool responses included), one per prompt,
    and their lengths in tokens (int32 [B]).
  """
  rollout_fn = SearchRollout(
      model_config, SamplingConfig(num_samples=1, max_new_tokens=max_new_tokens,
                                   method=Greedy(), stop_tokens=tuple(stop_tokens)),
      tokenizer, engine, dataclasses.replace(config, confidence_temperature=None))
  samples = jax.device_get(rollout_fn(params, prompts, jax.random.key(0)).samples)
  lengths = np.asarray(samples.lengths_b, np.int32)
  texts = [tokenizer.decode(samples.tokens_bt[n, :lengths[n]].tolist())
           for n in range(lengths.size)]
  return texts, lengths

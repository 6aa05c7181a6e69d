"""The on-device sampler: prefill each prompt once, fork it G ways, decode in one
`jax.lax.while_loop` over a KV cache, and resume in segments.

One state, a handful of operations:

  state = prefill(params, inputs, next_position, config=cfg, max_new_tokens=256,
                  num_samples=G, rng=key)                  # B prompts -> B*G rows
  state = decode(params, state, method=TopP(0.95), stop_tokens=(eos,))
  out = outputs(state, stop_tokens=(eos,))               # tokens, log-probs, mask, lengths
  out = sample(params, inputs, next_position, config=cfg, num_samples=G, ...)  # all of it

What each caller does with them:
  * RL rollouts: `sample` (B prompts x G samples, row b*G + g is sample g of prompt b).
  * Deliberative search: `decode(..., stop_tokens=(eos,), segment_end_tokens=(tool_close,))`
    returns to the host when every row has finished or reached a tool-call close;
    `append(params, state, tool_output_ids, rows)` writes the tool output into those rows'
    responses and caches (masked out of the loss) and re-opens them; `decode` again.
  * Value-guided step search: `segment_end_tokens=(step_delimiter,)`, then
    `fork(state, k)`, score on the host, `select(state, best_rows)`, `decode` again.
  * Holding rows out of a `decode`: `finish(state, rows)`, then `resume(state, rows)`.
  * Evaluation: `decode(..., compact=True)` narrows the state as rows finish.
  * Human CoT editing / forced prefixes: `sample(..., forced_prefix=ids)` or `append` after
    `prefill`: the prefix is part of the response (mask 0) and decoding continues from it.

State invariants (row b):
  * the cache holds the row's prompt and all `length_b[b]` response tokens, and
    `logits_bv[b]` are the next-token logits after them; `cache.lengths[b]` is the prompt
    length plus `length_b[b]`, and the cache has one more slot than the longest possible
    row (prompt width + response width), so a step of a row that is done writes its
    ignored padding into free slots;
  * response token i sits at `tokens_bt[b, i]` for i < `length_b[b]`, everything after is
    0 (log-probability 0, mask False); `sampled_bt` is True exactly at the tokens the
    policy drew, the loss mask (appended tool outputs and forced prefixes are False);
  * `done_b[b]`: finished for good (a stop token, its token budget `max_length_b[b]`
    reached); `decode` skips it, `append` re-opens it.
Log-probabilities are those of `rl.sampling_methods.token_logprobs`: log_softmax(logits /
temperature) of the drawn token, untruncated, temperature 1 for greedy: the train step's
quantity at the same temperature.

Randomness: the draw of row b at decode step n (counted over the state's lifetime) uses
`fold_in(fold_in(rng, n), b)`, so it depends on neither the device layout nor on how
decoding is split into calls.

Compilation: settings that change the program (the model config, the method, stop and
segment-end tokens, widths, `num_samples`, `max_steps`) are static and hashable;
parameters, inputs and keys are traced, so new parameters reuse the compiled program.
`decode` and `append` donate the state they replace. Under `sharding.activate(mesh,
rules)` the state is constrained to the training layout (rows over the batch axes, vocab
and kv heads over `tensor`).

Axis letters: B rows, T response slots, V vocab, D width.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from models.config import ModelConfig
from models.inputs import ModelInputs
from models.kv_cache import KVCache
from models.vlm import Qwen25VL
from rl import sampling_methods
from rl.sampling_methods import Greedy, Method
from safework.infra import sharding


@flax.struct.dataclass
class SamplingState:
  """Everything decoding needs between calls (see the module docstring's invariants)."""

  cache: KVCache  # [L, B, S, K, H], per-row lengths.
  logits_bv: jax.Array  # float32 [B, V]: next-token logits after each row's sequence.
  next_position_b: jax.Array  # int32 [B]: M-RoPE position (all 3 axes) of the next token.
  tokens_bt: jax.Array  # int32 [B, T]: the response so far, 0 after it.
  logprobs_bt: jax.Array  # float32 [B, T]: log-probabilities of drawn tokens, else 0.
  sampled_bt: jax.Array  # bool [B, T]: True where the policy drew the token.
  length_b: jax.Array  # int32 [B]: response tokens so far.
  max_length_b: jax.Array  # int32 [B]: each row's response budget, <= T.
  done_b: jax.Array  # bool [B]: finished (stop token or budget).
  rng: jax.Array  # typed key []: the sampling stream.
  draws: jax.Array  # int32 []: decode steps taken so far (folded into rng).
  config: ModelConfig = flax.struct.field(pytree_node=False)

  @property
  def batch_size(self) -> int:
    return self.tokens_bt.shape[0]

  @property
  def max_new_tokens(self) -> int:
    return self.tokens_bt.shape[1]


@flax.struct.dataclass
class SampleOutput:
  """Responses as the RL step consumes them; row b*G + g is sample g of prompt b."""

  tokens_bt: jax.Array  # int32 [B, T]: response tokens, 0 after each row's length.
  logprobs_bt: jax.Array  # float32 [B, T]: sampler log-probabilities, 0 off the mask.
  mask_bt: jax.Array  # bool [B, T]: the tokens that count in the loss (drawn by the policy).
  lengths_b: jax.Array  # int32 [B]: response lengths, stop token included.
  finished_b: jax.Array  # bool [B]: the response ends with a stop token (else: budget).


# ----------------------------------------------------------------------------- sharding


def _constrain(x: jax.Array, logical: tuple[str | None, ...]) -> jax.Array:
  """Pins `x` to the training layout of its logical axes when a mesh is active."""
  mesh = jax.sharding.get_abstract_mesh()
  rules = nn.get_logical_axis_rules()
  if mesh.empty or not rules:
    return x
  spec = sharding.logical_to_mesh_spec(logical, x.shape, mesh, rules)
  return jax.lax.with_sharding_constraint(x, spec)


def _constrain_state(state: SamplingState) -> SamplingState:
  # The state crosses jit and while-loop boundaries: keep it where training keeps rows,
  # so no step reshards the cache.
  cache_axes = KVCache.logical_spec().k
  cache = KVCache(_constrain(state.cache.k, tuple(cache_axes)),
                  _constrain(state.cache.v, tuple(cache_axes)),
                  _constrain(state.cache.lengths, ("batch",)))
  rows = lambda x: _constrain(x, ("batch",) + (None,) * (x.ndim - 1))
  return state.replace(
      cache=cache, logits_bv=_constrain(state.logits_bv, ("batch", "vocab")),
      next_position_b=rows(state.next_position_b), tokens_bt=rows(state.tokens_bt),
      logprobs_bt=rows(state.logprobs_bt), sampled_bt=rows(state.sampled_bt),
      length_b=rows(state.length_b), max_length_b=rows(state.max_length_b),
      done_b=rows(state.done_b))


# ------------------------------------------------------------------------- device code


def _last_logits(model: Qwen25VL, params, hidden_btd: jax.Array, last_b: jax.Array
                 ) -> jax.Array:
  """float32 [B, V] logits at position `last_b[b]` of each row (LM head on B tokens only)."""
  h_b1d = jnp.take_along_axis(hidden_btd, last_b[:, None, None], axis=1)
  return model.apply(params, h_b1d, method=Qwen25VL.logits)[:, 0]


def _take_rows(state: SamplingState, rows_r: jax.Array) -> SamplingState:
  take = lambda x: jnp.take(x, rows_r, axis=0)
  return _constrain_state(state.replace(
      cache=state.cache.take_rows(rows_r), logits_bv=take(state.logits_bv),
      next_position_b=take(state.next_position_b), tokens_bt=take(state.tokens_bt),
      logprobs_bt=take(state.logprobs_bt), sampled_bt=take(state.sampled_bt),
      length_b=take(state.length_b), max_length_b=take(state.max_length_b),
      done_b=take(state.done_b)))


def _prefill_state(params, inputs: ModelInputs, next_position_b: jax.Array,
                   max_length_r: jax.Array, rng: jax.Array, config: ModelConfig,
                   num_samples: int, max_new_tokens: int) -> SamplingState:
  """B prompts in, B * num_samples rows out (`max_length_r` is per output row)."""
  model = Qwen25VL(config)
  b, t = inputs.tokens.shape
  # The prompt chunk only attends its own T slots; room for the response comes after.
  cache = KVCache.for_model(config, b, t)
  hidden_btd, cache = model.apply(params, inputs, cache=cache, method=Qwen25VL.hidden_states)
  logits_bv = _last_logits(model, params, hidden_btd, cache.lengths - 1)
  state = SamplingState(
      cache=cache.pad_slots(max_new_tokens + 1), logits_bv=logits_bv,
      next_position_b=next_position_b.astype(jnp.int32),
      tokens_bt=jnp.zeros((b, max_new_tokens), jnp.int32),
      logprobs_bt=jnp.zeros((b, max_new_tokens), jnp.float32),
      sampled_bt=jnp.zeros((b, max_new_tokens), bool), length_b=jnp.zeros((b,), jnp.int32),
      max_length_b=jnp.zeros((b,), jnp.int32), done_b=jnp.zeros((b,), bool), rng=rng,
      draws=jnp.zeros((), jnp.int32), config=config)
  if num_samples > 1:
    # The fork: prompt compute (images included) is done once, then rows are copied.
    state = _take_rows(state, jnp.repeat(jnp.arange(b), num_samples))
  max_length_r = jnp.minimum(max_length_r, max_new_tokens).astype(jnp.int32)
  return _constrain_state(state.replace(max_length_b=max_length_r, done_b=max_length_r <= 0))


def _decode_loop(params, state: SamplingState, method: Method, stop_tokens: tuple[int, ...],
                 segment_end_tokens: tuple[int, ...], max_steps: int, min_running: int = 0,
                 ids_b: jax.Array | None = None) -> tuple[SamplingState, jax.Array]:
  """Draws until every row is done or paused at a segment end, `max_steps` draws, or (with
  `min_running` > 0) at most `min_running` rows running. Row b draws with `ids_b[b]` (its
  row in the state a compacted decode came from; default b). Returns the state and which
  rows are still running (neither done nor paused)."""
  model = Qwen25VL(state.config)
  b, t = state.tokens_bt.shape
  rows_b = jnp.arange(b)
  ids_b = rows_b if ids_b is None else ids_b
  stop_s = jnp.asarray(stop_tokens, jnp.int32)
  segment_end_s = jnp.asarray(segment_end_tokens, jnp.int32)

  def cond(carry):
    state, paused_b, step = carry
    running_b = ~state.done_b & ~paused_b
    go = (step < max_steps) & jnp.any(running_b)
    return go & (jnp.sum(running_b) > min_running) if min_running else go

  def body(carry):
    state, paused_b, step = carry
    active_b = ~state.done_b & ~paused_b
    key = jax.random.fold_in(state.rng, state.draws)
    keys_b = jax.vmap(jax.random.fold_in, (None, 0))(key, ids_b)
    logits_bv = sampling_methods.policy_logits(state.logits_bv, state.config)
    token_b = method.draw(logits_bv, keys_b)
    logp_b = sampling_methods.token_logprobs(logits_bv, token_b, method.temperature)
    slot_b = jnp.where(active_b, state.length_b, t)  # Slot t is out of range: dropped.
    length_b = state.length_b + active_b
    ended_b = jnp.isin(token_b, stop_s) | (length_b >= state.max_length_b)
    # The drawn token enters the cache even when it ends the row: the cache always holds
    # the whole response, so an append after it (a tool output, an edit) is consistent.
    inputs = ModelInputs(token_b[:, None],
                         jnp.broadcast_to(state.next_position_b[None, :, None], (3, b, 1)),
                         active_b[:, None].astype(jnp.int32))
    logits_b1v, cache = model.apply(params, inputs, cache=state.cache)
    state = state.replace(
        cache=cache,
        logits_bv=jnp.where(active_b[:, None], logits_b1v[:, 0], state.logits_bv),
        next_position_b=state.next_position_b + active_b,
        tokens_bt=state.tokens_bt.at[rows_b, slot_b].set(token_b, mode="drop"),
        logprobs_bt=state.logprobs_bt.at[rows_b, slot_b].set(logp_b, mode="drop"),
        sampled_bt=state.sampled_bt.at[rows_b, slot_b].set(True, mode="drop"),
        length_b=length_b, done_b=state.done_b | (active_b & ended_b),
        draws=state.draws + 1)
    paused_b = paused_b | (active_b & jnp.isin(token_b, segment_end_s))
    return _constrain_state(state), paused_b, step + 1

  carry = (state, jnp.zeros((b,), bool), jnp.zeros((), jnp.int32))
  state, paused_b, _ = jax.lax.while_loop(cond, body, carry)
  return state, ~state.done_b & ~paused_b


def _prefill_impl(params, inputs: ModelInputs, next_position_b: jax.Array,
                  max_length_r: jax.Array, rng: jax.Array, *, config: ModelConfig,
                  num_samples: int, max_new_tokens: int) -> SamplingState:
  return _prefill_state(params, inputs, next_position_b, max_length_r, rng, config,
                        num_samples, max_new_tokens)


def _decode_impl(params, state: SamplingState, ids_b: jax.Array | None = None, *,
                 method: Method, stop_tokens: tuple[int, ...],
                 segment_end_tokens: tuple[int, ...], max_steps: int, min_running: int = 0
                 ) -> tuple[SamplingState, jax.Array]:
  return _decode_loop(params, state, method, stop_tokens, segment_end_tokens, max_steps,
                      min_running, ids_b)


def _append_impl(params, state: SamplingState, chunk_bt: jax.Array, count_b: jax.Array
                 ) -> SamplingState:
  model = Qwen25VL(state.config)
  b, t = chunk_bt.shape
  width = state.max_new_tokens
  steps_t = jnp.arange(t, dtype=jnp.int32)
  valid_bt = steps_t[None, :] < count_b[:, None]
  positions_bt = state.next_position_b[:, None] + steps_t[None, :]
  inputs = ModelInputs(chunk_bt, jnp.broadcast_to(positions_bt[None], (3, b, t)),
                       valid_bt.astype(jnp.int32))
  # Every row writes a padded chunk of t slots: give them room so none is clamped back
  # onto valid slots, then drop it (valid tokens never reach it, by the budget).
  slots = state.cache.max_length
  hidden_btd, cache = model.apply(params, inputs, cache=state.cache.pad_slots(t),
                                  method=Qwen25VL.hidden_states)
  new_logits_bv = _last_logits(model, params, hidden_btd, jnp.maximum(count_b - 1, 0))
  chosen_b = count_b > 0
  cols_bt = jnp.where(valid_bt, state.length_b[:, None] + steps_t[None, :], width)
  rows_b1 = jnp.arange(b)[:, None]
  length_b = state.length_b + count_b
  return _constrain_state(state.replace(
      cache=cache.trim_slots(slots),
      logits_bv=jnp.where(chosen_b[:, None], new_logits_bv, state.logits_bv),
      next_position_b=state.next_position_b + count_b,
      tokens_bt=state.tokens_bt.at[rows_b1, cols_bt].set(chunk_bt, mode="drop"),
      logprobs_bt=state.logprobs_bt.at[rows_b1, cols_bt].set(0.0, mode="drop"),
      sampled_bt=state.sampled_bt.at[rows_b1, cols_bt].set(False, mode="drop"),
      length_b=length_b,
      done_b=jnp.where(chosen_b, length_b >= state.max_length_b, state.done_b)))


def _outputs_impl(state: SamplingState, *, stop_tokens: tuple[int, ...]) -> SampleOutput:
  last_b = jnp.take_along_axis(state.tokens_bt, jnp.maximum(state.length_b - 1, 0)[:, None],
                               axis=1)[:, 0]
  finished_b = (state.length_b > 0) & jnp.isin(last_b, jnp.asarray(stop_tokens, jnp.int32))
  return SampleOutput(state.tokens_bt, state.logprobs_bt, state.sampled_bt, state.length_b,
                      finished_b)


def _put_rows(state: SamplingState, part: SamplingState, rows_r: jax.Array) -> SamplingState:
  """`state` with row `rows_r[r]` replaced by row r of `part` (an index past the last row
  drops that row of `part`); the rest of `state` is unchanged."""
  put = lambda name: getattr(state, name).at[rows_r].set(getattr(part, name), mode="drop")
  rows = {name: put(name) for name in ("logits_bv", "next_position_b", "tokens_bt",
                                       "logprobs_bt", "sampled_bt", "length_b",
                                       "max_length_b", "done_b")}
  return _constrain_state(state.replace(cache=state.cache.put_rows(rows_r, part.cache),
                                        draws=part.draws, **rows))


def _compacted(state: SamplingState, rows_r: jax.Array, running: jax.Array) -> SamplingState:
  """Rows `rows_r` of `state`, those past the first `running` marked done (fillers)."""
  part = _take_rows(state, rows_r)
  return part.replace(done_b=part.done_b | (jnp.arange(rows_r.shape[0]) >= running))


_prefill_jit = jax.jit(_prefill_impl, static_argnames=("config", "num_samples", "max_new_tokens"))
_decode_jit = jax.jit(_decode_impl, donate_argnames=("state",),
                      static_argnames=("method", "stop_tokens", "segment_end_tokens",
                                       "max_steps", "min_running"))
_append_jit = jax.jit(_append_impl, donate_argnames=("state",))
_take_rows_jit = jax.jit(_take_rows)
_compacted_jit = jax.jit(_compacted)
_put_rows_jit = jax.jit(_put_rows, donate_argnames=("state",))
_outputs_jit = jax.jit(_outputs_impl, static_argnames=("stop_tokens",))


def _finish_impl(state: SamplingState, rows_r: jax.Array) -> SamplingState:
  return state.replace(done_b=state.done_b.at[rows_r].set(True))


def _resume_impl(state: SamplingState, rows_r: jax.Array) -> SamplingState:
  open_r = state.length_b[rows_r] < state.max_length_b[rows_r]
  return state.replace(done_b=state.done_b.at[rows_r].set(~open_r))


_finish_jit = jax.jit(_finish_impl, donate_argnames=("state",))
_resume_jit = jax.jit(_resume_impl, donate_argnames=("state",))


# ----------------------------------------------------------------------------- host API


def _as_key(rng: jax.Array) -> jax.Array:
  rng = jnp.asarray(rng) if not isinstance(rng, jax.Array) else rng
  if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
    return rng
  return jax.random.wrap_key_data(rng)


def _token_set(tokens: int | Sequence[int], name: str, vocab: int) -> tuple[int, ...]:
  """A canonical (sorted, unique) tuple of token ids, so equal sets share a compilation."""
  ids = (tokens,) if isinstance(tokens, (int, np.integer)) else tuple(tokens)
  if any(isinstance(t, bool) or not isinstance(t, (int, np.integer)) for t in ids):
    raise ValueError(f"{name} must be token ids (ints), got {tokens!r}")
  bad = [int(t) for t in ids if not 0 <= t < vocab]
  if bad:
    raise ValueError(f"{name} {bad} are outside the vocabulary [0, {vocab})")
  return tuple(sorted({int(t) for t in ids}))


def _positive_int(value, name: str) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{name} must be an int >= 1, got {value!r}")
  return int(value)


def _check_prompts(inputs: ModelInputs, next_position, config: ModelConfig) -> None:
  """Prompts are one right-padded segment per row, at least one token long."""
  tokens = np.asarray(jax.device_get(inputs.tokens))
  segments = np.asarray(jax.device_get(inputs.segment_ids))
  if tokens.ndim != 2 or segments.shape != tokens.shape:
    raise ValueError(f"inputs.tokens {tokens.shape} and inputs.segment_ids {segments.shape} "
                     "must both be [B, T]")
  if tuple(inputs.positions.shape) != (3,) + tokens.shape:
    raise ValueError(f"inputs.positions has shape {tuple(inputs.positions.shape)}, expected "
                     f"{(3,) + tokens.shape}")
  if np.shape(next_position) != tokens.shape[:1]:
    raise ValueError(f"next_position has shape {np.shape(next_position)}, expected "
                     f"{tokens.shape[:1]} (one per prompt, from models.inputs.make_inputs)")
  valid = segments != 0
  lengths = valid.sum(1)
  bad_rows = np.nonzero((lengths == 0) | np.any(valid[:, 1:] & ~valid[:, :-1], axis=1)
                        | np.any(segments > 1, axis=1))[0]
  if bad_rows.size:
    raise ValueError(f"inputs.segment_ids: prompt rows {bad_rows.tolist()} are not one "
                     "right-padded segment (ids 1 then 0) of at least one token")
  vocab = config.text.vocab_size
  if np.any((tokens < 0) | (tokens >= vocab)):
    raise ValueError(f"inputs.tokens has ids outside the vocabulary [0, {vocab})")


def _row_budgets(max_new_tokens_b, max_new_tokens: int, prompts: int, rows: int) -> jax.Array:
  if max_new_tokens_b is None:
    return jnp.full((rows,), max_new_tokens, jnp.int32)
  budgets = jnp.asarray(max_new_tokens_b, jnp.int32)
  if budgets.shape == (prompts,):
    return jnp.repeat(budgets, rows // prompts)
  if budgets.shape != (rows,):
    raise ValueError(f"max_new_tokens_b has shape {budgets.shape}; expected ({prompts},) per "
                     f"prompt or ({rows},) per sample")
  return budgets


def prefill(params, inputs: ModelInputs, next_position, *, config: ModelConfig,
            max_new_tokens: int, rng: jax.Array, num_samples: int = 1,
            max_new_tokens_b=None) -> SamplingState:
  """Runs B prompts (images included) once and returns B * num_samples decodable rows.

  Args:
    params: the model's `{'params': ...}`.
    inputs: ModelInputs [B, T] from `models.inputs.make_inputs`: one right-padded prompt
      per row (segment ids 1 then 0), with its images.
    next_position: int [B], the M-RoPE position of the first response token (the second
      output of `make_inputs`).
    config: the model.
    max_new_tokens: the response width T of the state (static): no row grows past it.
    rng: a PRNG key (typed or raw) for every draw of this state's lifetime.
    num_samples: G; row b*G + g is copy g of prompt b (the cache is forked, not refilled).
    max_new_tokens_b: optional int per-row budgets (<= max_new_tokens), of shape [B] or
      [B*G]; a row stops once its response has that many tokens.
  """
  _check_prompts(inputs, next_position, config)
  num_samples = _positive_int(num_samples, "num_samples")
  max_new_tokens = _positive_int(max_new_tokens, "max_new_tokens")
  b = inputs.tokens.shape[0]
  budgets = _row_budgets(max_new_tokens_b, max_new_tokens, b, b * num_samples)
  inputs = jax.tree.map(jnp.asarray, inputs)
  return _prefill_jit(params, inputs, jnp.asarray(next_position, jnp.int32), budgets,
                      _as_key(rng), config=config, num_samples=num_samples,
                      max_new_tokens=max_new_tokens)


def decode(params, state: SamplingState, *, method: Method = Greedy(),
           stop_tokens: int | Sequence[int] = (), segment_end_tokens: int | Sequence[int] = (),
           max_steps: int | None = None, compact: bool = False) -> SamplingState:
  """Decodes every row that is not done, on device, and returns the new state.

  A row stops for good at one of `stop_tokens` or at its budget (it becomes done); it
  pauses at one of `segment_end_tokens` (it resumes at the next `decode`). The loop ends
  when no row is running or after `max_steps` draws (default: the response width), so
  the host can stream or intervene. The stop or segment-end token is kept in the
  response and the cache. `state` is donated: use the returned one.

  With `compact` (and no `max_steps`), once at most half of the rows are running (and the
  state has at least `2 * COMPACT_MIN_ROWS`), they continue in a state half as wide,
  recursively, and are written back at the end: a decode costs per row, so a batch no
  longer runs at full width for its longest row. Each row draws with the same keys as
  without it, but its logits can differ in the last bit (XLA's CPU kernels round
  differently at another width), which can change a sampled token, so the RL rollouts
  leave it off (reproducible runs); evaluation, whose greedy answers a last bit rarely
  changes, turns it on.
  """
  if not isinstance(method, (sampling_methods.Greedy, sampling_methods.Temperature,
                             sampling_methods.TopK, sampling_methods.TopP,
                             sampling_methods.MinP, sampling_methods.Exploring)):
    raise ValueError(f"method must be one of rl.sampling_methods' methods, got {method!r}")
  vocab = state.config.text.vocab_size
  steps = state.max_new_tokens if max_steps is None else _positive_int(max_steps, "max_steps")
  static = dict(method=method, stop_tokens=_token_set(stop_tokens, "stop_tokens", vocab),
                segment_end_tokens=_token_set(segment_end_tokens, "segment_end_tokens", vocab))
  if not compact or max_steps is not None:
    return _decode_jit(params, state, max_steps=steps, **static)[0]
  return _decode_compacted(params, state, None, static)


COMPACT_MIN_ROWS = 8  # `decode(compact=True)` narrows a state down to this many rows.


def _decode_compacted(params, state: SamplingState, ids_b, static: dict) -> SamplingState:
  # No step limit but the rows' budgets (<= the response width, the static `max_steps`).
  b, steps = state.batch_size, state.max_new_tokens
  half = b // 2
  if half < COMPACT_MIN_ROWS:
    return _decode_jit(params, state, ids_b, max_steps=steps, **static)[0]
  state, running_b = _decode_jit(params, state, ids_b, max_steps=steps, min_running=half,
                                 **static)
  running_b = np.asarray(jax.device_get(running_b))
  running = np.flatnonzero(running_b)
  if not running.size:
    return state
  # The running rows first, then rows that are not running as fillers (done in the part).
  rows = np.concatenate([running, np.flatnonzero(~running_b)[:half - running.size]])
  rows_r = jnp.asarray(rows, jnp.int32)
  part = _compacted_jit(state, rows_r, jnp.asarray(running.size, jnp.int32))
  part_ids = rows_r if ids_b is None else jnp.take(ids_b, rows_r)
  part = _decode_compacted(params, part, part_ids, static)
  # Only the running rows go back: a filler's index is past the last row (dropped).
  back = jnp.asarray(np.where(np.arange(half) < running.size, rows, b), jnp.int32)
  return _put_rows_jit(state, part, back)


def append(params, state: SamplingState, tokens_per_row: Sequence[Sequence[int]],
           rows: Sequence[int]) -> SamplingState:
  """Appends host-given tokens (a tool output, an edit, a forced prefix) to chosen rows.

  `tokens_per_row[i]` is written after row `rows[i]`'s response, into its cache (one
  prefill of the chunk, all rows in one call) and its response with mask False (they do
  not count in the loss); the row is re-opened (not done) unless its budget is used.
  Rows not named are unchanged. Tokens are text: positions continue by one per token.
  The chunk is padded to a power of two (>= 8) so few lengths compile. `state` is donated.

  Raises:
    ValueError: a row out of range or named twice, a token outside the vocabulary, or a
      row whose budget cannot take its tokens (the message names the row).
  """
  rows = [int(r) for r in rows]
  if len(rows) != len(tokens_per_row):
    raise ValueError(f"append: {len(rows)} rows but {len(tokens_per_row)} token lists")
  b, vocab = state.batch_size, state.config.text.vocab_size
  if len(set(rows)) != len(rows) or any(not 0 <= r < b for r in rows):
    raise ValueError(f"append: rows {rows} must be distinct and in [0, {b})")
  counts = np.zeros((b,), np.int32)
  for r, ids in zip(rows, tokens_per_row):
    counts[r] = len(ids)
  if not counts.any():
    return state
  width = max(8, 1 << int(counts.max() - 1).bit_length())
  chunk = np.zeros((b, width), np.int32)
  for r, ids in zip(rows, tokens_per_row):
    ids = np.asarray(ids, np.int64)
    if np.any((ids < 0) | (ids >= vocab)):
      raise ValueError(f"append: row {r} has token ids outside the vocabulary [0, {vocab})")
    chunk[r, :len(ids)] = ids
  length_b, max_length_b = jax.device_get((state.length_b, state.max_length_b))
  over = np.nonzero(length_b + counts > np.where(counts > 0, max_length_b, np.inf))[0]
  if over.size:
    r = int(over[0])
    raise ValueError(f"append: row {r} has {int(length_b[r])} response tokens and a budget of "
                     f"{int(max_length_b[r])}; {int(counts[r])} more do not fit")
  return _append_jit(params, state, jnp.asarray(chunk), jnp.asarray(counts))


def _rows_array(rows, b: int, name: str) -> jax.Array:
  rows_r = np.asarray(jax.device_get(rows), np.int64).reshape(-1)
  if rows_r.size == 0 or np.any((rows_r < 0) | (rows_r >= b)):
    raise ValueError(f"{name}: rows {rows_r.tolist()} must be non-empty and in [0, {b})")
  return jnp.asarray(rows_r, jnp.int32)


def select(state: SamplingState, rows) -> SamplingState:
  """The state of rows `rows` (any number, repeats allowed), in that order: keep beams."""
  return _take_rows_jit(state, _rows_array(rows, state.batch_size, "select"))


def fork(state: SamplingState, times: int) -> SamplingState:
  """Every row copied `times` times, consecutively: row b becomes rows b*times + k."""
  times = _positive_int(times, "times")
  return select(state, np.repeat(np.arange(state.batch_size), times))


def finish(state: SamplingState, rows) -> SamplingState:
  """Marks rows done (e.g. out of tool turns); `state` is donated."""
  return _finish_jit(state, _rows_array(rows, state.batch_size, "finish"))


def resume(state: SamplingState, rows) -> SamplingState:
  """Re-opens rows that `finish` held (done again only where the budget is used), so the
  next `decode` continues them; `state` is donated."""
  return _resume_jit(state, _rows_array(rows, state.batch_size, "resume"))


def outputs(state: SamplingState, stop_tokens: int | Sequence[int] = ()) -> SampleOutput:
  """The responses so far; `finished_b` tells rows that ended with one of `stop_tokens`."""
  return _outputs_jit(state, stop_tokens=_token_set(stop_tokens, "stop_tokens",
                                                    state.config.text.vocab_size))


def sample(params, inputs: ModelInputs, next_position, *, config: ModelConfig,
           num_samples: int = 1, method: Method = Greedy(), max_new_tokens: int,
           stop_tokens: int | Sequence[int] = (), rng: jax.Array, max_new_tokens_b=None,
           forced_prefix: Sequence[Sequence[int]] | None = None, compact: bool = False
           ) -> SampleOutput:
  """G responses for each of B prompts: prefill once, fork, decode to the end.

  Args:
    forced_prefix: optional per-prompt token lists that every response of that prompt
      starts with (a partial assistant turn, e.g. an edited chain of thought); they are
      part of the response with mask False and count in the budget.
    (the others as in `prefill` and `decode`.)

  Returns:
    SampleOutput with B * G rows; row b*G + g is sample g of prompt b.
  """
  state = prefill(params, inputs, next_position, config=config, max_new_tokens=max_new_tokens,
                  rng=rng, num_samples=num_samples, max_new_tokens_b=max_new_tokens_b)
  if forced_prefix is not None:
    b = inputs.tokens.shape[0]
    if len(forced_prefix) != b:
      raise ValueError(f"forced_prefix has {len(forced_prefix)} entries for {b} prompts")
    # Appended to every sample: a prefix is short text, the forked prompt is the cost.
    state = append(params, state, [p for p in forced_prefix for _ in range(num_samples)],
                   range(b * num_samples))
  state = decode(params, state, method=method, stop_tokens=stop_tokens, compact=compact)
  return outputs(state, stop_tokens)

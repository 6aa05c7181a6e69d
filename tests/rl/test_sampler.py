"""The sampler against full recomputation (no cache), transformers' generate, and its own
invariants: stop tokens, budgets, segments, forks, determinism, compile-once."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from models import hf_checkpoint, vlm
from models import inputs as model_inputs
from rl import sampler
from rl import sampling_methods as sm
from tests.models import hf_tiny

# Three prompts: two with images of different sizes, one text-only; different lengths, so
# rows are right-padded.
ROWS = [[3, (4, 6), 5], [7], [2, (4, 4), 3]]
PATCH_BUDGET = 24
G = 2
NEW = 8
WIDTH = 24  # Prompt width, with room so prompts extended by a response keep the shapes.
TOP_K = sm.TopK(20, temperature=1.5)  # One method for the random tests: fewer compilations.
SPECIAL = (hf_tiny.IMAGE, hf_tiny.VIDEO, hf_tiny.VSTART, hf_tiny.VEND)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  directory = tmp_path_factory.mktemp("hf")
  hf = hf_tiny.hf_model(seed=1)
  hf.save_pretrained(directory)
  config = hf_checkpoint.load_config(directory, dtype="float32")
  params = hf_checkpoint.load_params(directory, config)
  batch = hf_tiny.make_batch(ROWS, PATCH_BUDGET, seed=3)
  pad = ((0, 0), (0, WIDTH - batch.tokens.shape[1]))
  batch.tokens, batch.segment_ids = np.pad(batch.tokens, pad), np.pad(batch.segment_ids, pad)
  inputs, next_position = model_inputs.make_inputs(batch.tokens, batch.segment_ids, config,
                                                   batch.patches, batch.grids)
  return hf, config, params, batch, inputs, next_position


def prompts(batch, times=1):
  return [list(batch.tokens[r, :n]) for r, n in enumerate((batch.segment_ids > 0).sum(1))
          for _ in range(times)]


def right_padded(seqs, width=None):
  """tokens and segment ids [len(seqs), width] of right-padded sequences."""
  width = width or max(map(len, seqs))
  tokens, segment_ids = np.zeros((2, len(seqs), width), np.int32)
  for i, s in enumerate(seqs):
    tokens[i, :len(s)], segment_ids[i, :len(s)] = s, 1
  return tokens, segment_ids


def full_forward(config, params, batch, responses, times, width):
  """Training-style logits [B*times, width, V] of prompt + response, no cache."""
  seqs = [p + list(r) for p, r in zip(prompts(batch, times), responses)]
  inputs, _ = model_inputs.make_inputs(*right_padded(seqs, width), config,
                                       np.repeat(batch.patches, times, 0),
                                       np.repeat(batch.grids, times, 0))
  logits, _ = _apply(config)(params, jax.tree.map(jnp.asarray, inputs))
  return np.asarray(logits)


_APPLY = {}


def _apply(config):
  if config not in _APPLY:
    _APPLY[config] = jax.jit(vlm.Qwen25VL(config).apply)
  return _APPLY[config]


def greedy_reference(config, params, batch, times, steps):
  """Step-by-step argmax, recomputing the whole sequence at every step."""
  lengths = [len(p) for p in prompts(batch, times)]
  width = max(lengths) + steps
  responses = [[] for _ in lengths]
  for _ in range(steps):
    logits = full_forward(config, params, batch, responses, times, width)
    for i, r in enumerate(responses):
      r.append(int(np.argmax(logits[i, lengths[i] + len(r) - 1])))
  return np.array(responses)


def run(setup, method, new=NEW, times=G, seed=0, **kwargs):
  _, config, params, _, inputs, next_position = setup
  out = sampler.sample(params, inputs, next_position, config=config, num_samples=times,
                       method=method, max_new_tokens=new, rng=jax.random.key(seed), **kwargs)
  return jax.tree.map(np.asarray, out)


def test_seeded_sampling_is_deterministic_and_compiles_once(setup, monkeypatch):
  _, config, params, _, inputs, next_position = setup
  # A new trace of either function would fail: new parameters and keys reuse the program.
  monkeypatch.setattr(sampler, "_decode_loop", chex.assert_max_traces(sampler._decode_loop, n=1))
  monkeypatch.setattr(sampler, "_prefill_state",
                      chex.assert_max_traces(sampler._prefill_state, n=1))
  sampler._decode_jit.clear_cache()
  sampler._prefill_jit.clear_cache()
  scaled = jax.jit(lambda p: jax.tree.map(lambda x: x * 1.1, p))(params)
  a, b, c = (run(setup, TOP_K, seed=seed) for seed in (7, 7, 8))
  d = jax.tree.map(np.asarray, sampler.sample(
      scaled, inputs, next_position, config=config, num_samples=G, method=TOP_K,
      max_new_tokens=NEW, rng=jax.random.key(7)))
  np.testing.assert_array_equal(a.tokens_bt, b.tokens_bt)
  assert (a.tokens_bt != c.tokens_bt).any() and (a.tokens_bt != d.tokens_bt).any()
  assert (a.tokens_bt[0::2] != a.tokens_bt[1::2]).any(axis=1).all()  # Samples of a group differ.


def test_decoding_in_chunks_draws_what_one_call_draws(setup):
  _, config, params, _, inputs, next_position = setup
  whole = run(setup, TOP_K, seed=2)
  state = sampler.prefill(params, inputs, next_position, config=config, max_new_tokens=NEW,
                          rng=jax.random.key(2), num_samples=G)
  for _ in range(3):  # A streaming host: 3 + 3 + 2 draws.
    state = sampler.decode(params, state, method=TOP_K, max_steps=3)
  np.testing.assert_array_equal(sampler.outputs(state).tokens_bt, whole.tokens_bt)


def test_rows_held_out_of_a_decode_resume_where_they_stopped(setup, greedy):
  _, config, params, _, inputs, next_position = setup
  state = sampler.prefill(params, inputs, next_position, config=config, max_new_tokens=NEW,
                          rng=jax.random.key(0), num_samples=G)
  state = sampler.decode(params, state, max_steps=2)
  held = [0, 3]
  state = sampler.decode(params, sampler.finish(state, held), max_steps=3)
  lengths = np.asarray(state.length_b)
  assert lengths[held].tolist() == [2, 2] and np.all(np.delete(lengths, held) == 5)
  state = sampler.decode(params, sampler.resume(state, held))
  out = jax.tree.map(np.asarray, sampler.outputs(state))
  np.testing.assert_array_equal(out.tokens_bt, greedy.tokens_bt)  # As if never held.
  np.testing.assert_allclose(out.logprobs_bt, greedy.logprobs_bt, atol=1e-5, rtol=0)
  # A row whose budget is used stays done.
  assert np.all(out.lengths_b == NEW)
  assert np.asarray(sampler.resume(state, [0, 1]).done_b).all()


@pytest.fixture(scope="module")
def greedy(setup):
  return run(setup, sm.Greedy())


def test_greedy_equals_stepwise_argmax_with_full_recomputation(setup, greedy):
  _, config, params, batch, _, _ = setup
  expected = greedy_reference(config, params, batch, G, NEW)
  assert not np.isin(expected, SPECIAL).any()  # The reference re-reads them as text.
  np.testing.assert_array_equal(greedy.tokens_bt, expected)
  np.testing.assert_array_equal(greedy.lengths_b, NEW)
  assert greedy.mask_bt.all()


def test_greedy_equals_transformers_generate(setup, greedy):
  hf, _, _, batch, _, _ = setup
  lengths = (batch.segment_ids > 0).sum(1)
  width = batch.tokens.shape[1]
  ids, attention = np.zeros_like(batch.tokens), np.zeros_like(batch.tokens)
  for r, n in enumerate(lengths):  # transformers decodes batches left-padded.
    ids[r, width - n:], attention[r, width - n:] = batch.tokens[r, :n], 1
  ids = torch.tensor(ids, dtype=torch.long)
  with torch.no_grad():
    out = hf.generate(input_ids=ids, attention_mask=torch.tensor(attention, dtype=torch.long),
                      pixel_values=torch.tensor(batch.hf_patches),
                      image_grid_thw=torch.tensor(batch.hf_grids),
                      mm_token_type_ids=(ids == hf_tiny.IMAGE).int(), do_sample=False,
                      max_new_tokens=NEW, pad_token_id=0, eos_token_id=None)
  np.testing.assert_array_equal(greedy.tokens_bt, np.repeat(out[:, width:].numpy(), G, 0))


def test_logprobs_equal_the_train_step_forward(setup):
  _, config, params, batch, _, _ = setup
  temperature = 0.7
  out = run(setup, sm.TopP(0.9, temperature=temperature), seed=4)
  lengths = [len(p) for p in prompts(batch, G)]
  logits = np.array(full_forward(config, params, batch, out.tokens_bt, G, max(lengths) + NEW))
  # The policy never writes vision placeholders: their logits are -1e9.
  logits[..., [hf_tiny.IMAGE, hf_tiny.VIDEO, hf_tiny.VSTART, hf_tiny.VEND]] = -1e9
  expected = np.zeros_like(out.logprobs_bt)
  for i, n in enumerate(lengths):
    step_logits = logits[i, n - 1:n - 1 + NEW] / temperature
    logz = jax.nn.logsumexp(step_logits, axis=-1)
    expected[i] = np.take_along_axis(step_logits, out.tokens_bt[i][:, None], 1)[:, 0] - logz
  np.testing.assert_allclose(out.logprobs_bt, expected, atol=1e-5, rtol=0)
  assert (out.logprobs_bt < 0).all()


def test_nothing_after_a_stop_token_counts(setup, greedy):
  stop = int(greedy.tokens_bt[0, 2])
  out = run(setup, sm.Greedy(), stop_tokens=(stop, hf_tiny.VEND))
  for i, tokens in enumerate(greedy.tokens_bt):
    hits = np.nonzero(tokens == stop)[0]
    n = hits[0] + 1 if hits.size else NEW
    assert out.lengths_b[i] == n
    assert out.finished_b[i] == bool(hits.size)
    np.testing.assert_array_equal(out.tokens_bt[i, :n], tokens[:n])
    assert not out.tokens_bt[i, n:].any() and not out.logprobs_bt[i, n:].any()
    np.testing.assert_array_equal(out.mask_bt[i], np.arange(NEW) < n)
  assert out.lengths_b.min() < NEW  # The stop token cut at least one row.


def test_per_row_budgets(setup, greedy):
  budgets = np.array([2, 5, 8])
  out = run(setup, sm.Greedy(), max_new_tokens_b=budgets)
  expected = np.repeat(budgets, G)
  np.testing.assert_array_equal(out.lengths_b, expected)
  np.testing.assert_array_equal(out.mask_bt, np.arange(NEW)[None] < expected[:, None])
  np.testing.assert_array_equal(out.tokens_bt, np.where(out.mask_bt, greedy.tokens_bt, 0))
  assert not out.finished_b.any()


def test_append_and_resume_equals_decoding_the_concatenated_prompt(setup, greedy):
  _, config, params, batch, inputs, next_position = setup
  pause = (int(greedy.tokens_bt[0, 1]), int(greedy.tokens_bt[2 * G, 1]))
  state = sampler.prefill(params, inputs, next_position, config=config, max_new_tokens=NEW,
                          rng=jax.random.key(0), num_samples=G)
  state = sampler.decode(params, state, segment_end_tokens=pause)
  first = jax.tree.map(np.asarray, sampler.outputs(state))
  paused = [0, 1, 4, 5]  # Prompts 0 and 2 paused early at a segment end.
  assert (first.lengths_b[paused] <= 2).all()
  assert np.isin(first.tokens_bt[paused, first.lengths_b[paused] - 1], pause).all()
  tool = {0: [20, 21, 22], 1: [20, 21, 22], 4: [30], 5: [30]}  # Prompt 1's rows: nothing.
  state = sampler.append(params, state, list(tool.values()), list(tool))
  state = sampler.decode(params, state)
  out = jax.tree.map(np.asarray, sampler.outputs(state))
  # From scratch: the prompt followed by the response so far and the appended tokens.
  prefixes = [list(first.tokens_bt[r, :first.lengths_b[r]]) + tool.get(r, [])
              for r in range(0, len(ROWS) * G, G)]
  seqs = [p + q for p, q in zip(prompts(batch), prefixes)]
  fresh_inputs, fresh_next = model_inputs.make_inputs(*right_padded(seqs, WIDTH), config,
                                                      batch.patches, batch.grids)
  fresh = run(setup[:4] + (fresh_inputs, fresh_next), sm.Greedy(),
              max_new_tokens_b=[NEW - len(p) for p in prefixes])
  for r in range(len(ROWS) * G):
    prefix = prefixes[r // G]
    n = len(prefix)
    np.testing.assert_array_equal(out.tokens_bt[r, :n], prefix)
    np.testing.assert_array_equal(out.tokens_bt[r, n:], fresh.tokens_bt[r, :NEW - n])
    appended = np.zeros(NEW, bool)
    appended[first.lengths_b[r]:n] = True
    np.testing.assert_array_equal(out.mask_bt[r], ~appended)  # Tool tokens are masked out.
  np.testing.assert_array_equal(out.lengths_b, NEW)


def test_forced_prefix_continues_from_the_given_text(setup, greedy):
  prefix = [list(greedy.tokens_bt[G * r, :3]) for r in range(len(ROWS))]
  out = run(setup, sm.Greedy(), forced_prefix=prefix)
  np.testing.assert_array_equal(out.tokens_bt, greedy.tokens_bt)
  np.testing.assert_array_equal(out.mask_bt, np.broadcast_to(np.arange(NEW) >= 3, (6, NEW)))


def test_fork_and_select_keep_rows_consistent(setup):
  _, config, params, _, inputs, next_position = setup
  state = sampler.prefill(params, inputs, next_position, config=config, max_new_tokens=NEW,
                          rng=jax.random.key(2), num_samples=G)
  state = sampler.decode(params, state, method=TOP_K, max_steps=3)
  sources = np.array([5, 0, 2, 3, 3, 1])
  picked = sampler.select(sampler.fork(state, 2), 2 * sources + np.array([1, 0, 1, 0, 1, 0]))
  for name in ("logits_bv", "next_position_b", "tokens_bt", "logprobs_bt", "sampled_bt",
               "length_b", "max_length_b", "done_b"):
    np.testing.assert_array_equal(getattr(picked, name), np.asarray(getattr(state, name))[sources])
  for name in ("k", "v"):
    np.testing.assert_array_equal(getattr(picked.cache, name),
                                  np.asarray(getattr(state.cache, name))[:, sources])
  np.testing.assert_array_equal(picked.cache.lengths, np.asarray(state.cache.lengths)[sources])
  # Greedy continuation of a selected row equals that of its source.
  ends = lambda s: np.asarray(sampler.outputs(sampler.decode(params, s)).tokens_bt)
  np.testing.assert_array_equal(ends(picked), ends(state)[sources])


# Compaction: 3 prompts x 11 samples = 33 rows narrow to 16, then to 8
# (sampler.COMPACT_MIN_ROWS), as rows reach their staggered budgets.
WIDE = 11


def compacting(setup, monkeypatch, method, **decode_kwargs):
  """(full-width outputs, compacted outputs, the widths the compacted decode ran at)."""
  _, config, params, _, inputs, next_position = setup
  budgets = 1 + (np.arange(len(ROWS) * WIDE) * 5) % NEW
  widths = []
  decode_jit = sampler._decode_jit

  def spy(params, state, *args, **kwargs):
    widths.append(state.batch_size)
    return decode_jit(params, state, *args, **kwargs)

  def decoded(compact):
    state = sampler.prefill(params, inputs, next_position, config=config, max_new_tokens=NEW,
                            rng=jax.random.key(5), num_samples=WIDE, max_new_tokens_b=budgets)
    state = sampler.decode(params, state, method=method, compact=compact, **decode_kwargs)
    return jax.tree.map(np.asarray, (sampler.outputs(state), state.done_b, state.draws))

  full = decoded(False)
  monkeypatch.setattr(sampler, "_decode_jit", spy)
  return full, decoded(True), widths


@pytest.mark.parametrize("method", [sm.Greedy(), TOP_K], ids=["greedy", "top_k"])
def test_a_compacted_decode_draws_what_the_full_width_draws(setup, monkeypatch, method):
  (full, full_done, full_draws), (out, done, draws), widths = compacting(setup, monkeypatch,
                                                                         method)
  assert widths == [33, 16, 8]  # It did narrow: at most half running each time.
  np.testing.assert_array_equal(out.tokens_bt, full.tokens_bt)  # Same keys per row.
  np.testing.assert_array_equal(out.lengths_b, 1 + (np.arange(33) * 5) % NEW)
  np.testing.assert_array_equal(out.lengths_b, full.lengths_b)
  np.testing.assert_array_equal(out.mask_bt, full.mask_bt)
  np.testing.assert_allclose(out.logprobs_bt, full.logprobs_bt, atol=1e-5, rtol=0)
  assert done.all() and full_done.all() and draws == full_draws == NEW


def test_a_compacted_decode_pauses_rows_at_segment_ends_as_the_full_width(setup, greedy,
                                                                          monkeypatch):
  pause = (int(greedy.tokens_bt[0, 3]), int(greedy.tokens_bt[2 * G, 4]))
  (full, full_done, _), (out, done, _), widths = compacting(
      setup, monkeypatch, sm.Greedy(), segment_end_tokens=pause)
  assert widths[0] == 33 and len(widths) > 1
  paused = ~full_done
  assert paused.any() and np.isin(
      full.tokens_bt[paused, full.lengths_b[paused] - 1], pause).all()
  np.testing.assert_array_equal(done, full_done)
  np.testing.assert_array_equal(out.tokens_bt, full.tokens_bt)
  np.testing.assert_array_equal(out.lengths_b, full.lengths_b)


def test_a_decode_with_a_step_limit_is_not_compacted(setup, monkeypatch):
  (full, _, _), (out, _, draws), widths = compacting(setup, monkeypatch, sm.Greedy(),
                                                     max_steps=3)
  assert widths == [33] and draws == 3
  np.testing.assert_array_equal(out.tokens_bt, full.tokens_bt)


def test_bad_inputs_fail_with_a_named_field(setup):
  _, config, params, batch, inputs, next_position = setup
  packed = inputs.replace(segment_ids=np.where(inputs.segment_ids > 0, 1 + (
      np.arange(inputs.segment_ids.shape[1]) % 2), 0).astype(np.int32))
  with pytest.raises(ValueError, match="segment_ids"):
    sampler.prefill(params, packed, next_position, config=config, max_new_tokens=NEW,
                    rng=jax.random.key(0))
  with pytest.raises(ValueError, match="next_position"):
    sampler.prefill(params, inputs, next_position[:1], config=config, max_new_tokens=NEW,
                    rng=jax.random.key(0))
  with pytest.raises(ValueError, match="max_new_tokens_b"):
    sampler.prefill(params, inputs, next_position, config=config, max_new_tokens=NEW,
                    rng=jax.random.key(0), max_new_tokens_b=[1, 2])
  state = sampler.prefill(params, inputs, next_position, config=config, max_new_tokens=NEW,
                          rng=jax.random.key(0), num_samples=G, max_new_tokens_b=[4, 4, 4])
  with pytest.raises(ValueError, match="stop_tokens"):
    sampler.decode(params, state, stop_tokens=(config.text.vocab_size,))
  with pytest.raises(ValueError, match="row 1 .* budget of 4"):
    sampler.append(params, state, [[1, 2], [1, 2, 3, 4, 5]], [0, 1])
  with pytest.raises(ValueError, match="distinct"):
    sampler.append(params, state, [[1], [2]], [3, 3])


def test_prompt_compute_does_not_grow_with_the_group_size(setup):
  _, config, params, _, inputs, next_position = setup
  inputs = jax.tree.map(jnp.asarray, inputs)

  def flops(g):
    lowered = sampler._prefill_jit.lower(
        params, inputs, jnp.asarray(next_position), jnp.full((3 * g,), NEW), jax.random.key(0),
        config=config, num_samples=g, max_new_tokens=NEW)
    return lowered.cost_analysis()["flops"]

  one, eight = flops(1), flops(8)
  assert one > 1e6 and eight < 1.05 * one  # Eight samples cost one prefill (the fork is a copy).

"""The search-agent rollout on the real sampler with a tiny model and a fake search tool.

The model is the tiny preset with random transformer layers and a planted bigram: token
v's embedding has a large component on axis v and the LM head maps that axis to the
logits of a chosen table (next-token preferences), so greedy decoding follows scripted
paths (calling the tool or not) while the random layers still make every log-probability
depend on the whole context (position, cache contents). Each test picks its table; the
table lives in the parameters, so every test reuses the same compiled programs.
"""

import dataclasses
import functools
import re
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data import special_tokens as st
from data.search import SearchResult, ToolCall, execute
from data.tokenizer import SpecialIds
from models import inputs as model_inputs
from models import presets, vlm
from rl import rollout
from rl import search_rollout as sr
from rl.sampling_methods import Greedy, Temperature

VOCAB = 64
WIDTH = 8  # Prompt width.
NEW = 24  # Response budget.
WORDS = ("<unk>", "please", "q_call", "q_plain", "search:", "read:", "alpha", "beta", "[d1]",
         "alpha:", "d1", "banana", "the", "answer", "gamma",
         "q_step", "good", "bad", "step.",  # These four: tests/safework/test_step_search.py.
         *map(str, range(11)))  # Confidence values.


class WordTokenizer:
  """Whitespace words plus the special tokens, each one id (the `Tokenizer` protocol)."""

  def __init__(self):
    self.pieces = list(st.ALL) + list(WORDS)
    self.ids = {p: i for i, p in enumerate(self.pieces)}
    self.special = SpecialIds.lookup(self.ids.get, "words")
    self._split = re.compile("(" + "|".join(re.escape(t) for t in st.ALL) + ")")

  @property
  def vocab_size(self) -> int:
    return VOCAB

  def encode(self, text):
    ids = []
    for part in self._split.split(text):
      if part in st.ALL:
        ids.append(self.ids[part])
      else:
        ids += [self.ids.get(w, self.ids["<unk>"]) for w in part.split()]
    return ids

  def decode(self, ids, skip_special=False):
    text, after_special = "", True
    for i in ids:
      piece = self.pieces[i] if i < len(self.pieces) else "<unk>"
      if piece in st.ALL:
        text, after_special = text + piece, True
      else:
        text, after_special = text + ("" if after_special else " ") + piece, False
    return text


TOK = WordTokenizer()
S = TOK.special
W = TOK.ids
CONFIG = presets.get_preset("tiny", vocab_size=VOCAB, image_token_id=S.image_pad,
                            video_token_id=S.video_pad, vision_start_token_id=S.vision_start,
                            vision_end_token_id=S.vision_end, tie_word_embeddings=False)

# Scripted paths. The call: <tool_call>search: alpha</tool_call>; after a tool response, and
# for the prompt that does not call: "the answer<|im_end|>".
SEARCH = {W["q_call"]: {S.tool_call_open: 1.0}, S.tool_call_open: {W["search:"]: 1.0},
          W["search:"]: {W["alpha"]: 1.0}, W["alpha"]: {S.tool_call_close: 1.0},
          S.tool_response_close: {W["the"]: 1.0}, W["q_plain"]: {W["the"]: 1.0},
          W["the"]: {W["answer"]: 1.0}, W["answer"]: {S.im_end: 1.0}}
CALL = TOK.encode("<tool_call>search: alpha</tool_call>")
ANSWER = TOK.encode("the answer<|im_end|>")


@functools.cache
def _random_params():
  """Random parameters of the model's shapes (drawn in numpy: nothing to compile)."""
  abstract = jax.eval_shape(lambda key: vlm.init_params(CONFIG, key), jax.random.key(0))
  rng = np.random.default_rng(0)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if name.endswith("['scale']"):
      return np.ones(leaf.shape, np.float32)
    if name.endswith("['bias']"):
      return np.zeros(leaf.shape, np.float32)
    return rng.normal(0.0, 0.02, leaf.shape).astype(np.float32)

  return jax.tree_util.tree_map_with_path(draw, abstract)


def planted_params(table, margin=8.0):
  """Tiny-model parameters whose greedy next token after v is the argmax of table[v] (a
  token without an entry has no preference: its successor is up to the random layers)."""
  params = jax.tree.map(np.array, _random_params())  # A copy, edited below.
  p = params["params"]
  v, d = p["embed_tokens"]["embedding"].shape
  p["embed_tokens"]["embedding"][np.arange(v), np.arange(v)] += 3.0
  logits_dv = np.zeros((d, v), np.float32)
  for a, successors in table.items():
    for b, weight in successors.items():
      logits_dv[a, b] = margin * weight
  # After the final RMSNorm, axis v of token v's hidden state is about sqrt(d).
  p["lm_head"]["kernel"] += logits_dv / np.sqrt(d)
  # Stronger random layers: log-probabilities visibly depend on the context.
  p["decoder"]["layers"]["self_attn"]["o_proj"]["kernel"] *= 3.0
  p["decoder"]["layers"]["mlp"]["down"]["kernel"] *= 3.0
  return jax.tree.map(jnp.asarray, params)


class FakeEngine:
  """One document, d1; records every call."""

  def __init__(self):
    self.calls = []

  def search(self, query, k):
    self.calls.append(("search", query, k))
    return [SearchResult("d1", "alpha", "beta")]

  def read(self, doc_id):
    self.calls.append(("read", doc_id))
    if doc_id != "d1":
      raise KeyError(doc_id)
    return "alpha: beta gamma"


def prompt_batch(texts):
  seqs = [TOK.encode(t) for t in texts]
  tokens = np.zeros((len(seqs), WIDTH), np.int32)
  segments = np.zeros_like(tokens)
  for i, s in enumerate(seqs):
    tokens[i, :len(s)], segments[i, :len(s)] = s, 1
  inputs, next_position = model_inputs.make_inputs(tokens, segments, CONFIG)
  return rollout.PromptBatch(inputs, next_position, [None] * len(seqs)), seqs


PROMPTS = ["please q_call", "q_plain", "please please q_call", "q_call"]


def run(params, config, texts=PROMPTS, method=Greedy(), num_samples=1, seed=0):
  engine = FakeEngine()
  fn = sr.search_rollout(CONFIG, rollout.SamplingConfig(num_samples=num_samples,
                                                        max_new_tokens=NEW, method=method),
                         TOK, engine, config)
  prompts, seqs = prompt_batch(texts)
  generation = fn(params, prompts, jax.random.key(seed))
  return generation, jax.tree.map(np.asarray, generation.samples), engine, fn.last_stats, seqs


def row(samples, n):
  length = samples.lengths_b[n]
  return (samples.tokens_bt[n, :length].tolist(), samples.mask_bt[n, :length].tolist(),
          samples.logprobs_bt[n, :length])


@pytest.fixture(scope="module")
def search_run():
  params = planted_params(SEARCH)
  return (params,) + run(params, sr.SearchConfig(max_tool_calls=2, top_k=2, max_tool_tokens=8))


def test_tool_output_is_appended_and_masked_out_of_the_loss(search_run):
  _, generation, samples, engine, stats, _ = search_run
  response = TOK.encode(execute(ToolCall("search", "alpha"), FakeEngine(), k=2))
  assert response == TOK.encode("<tool_response>[d1] alpha: beta</tool_response>")
  for n in (0, 2, 3):
    tokens, mask, logprobs = row(samples, n)
    assert tokens == CALL + response + ANSWER
    expected_mask = [True] * len(CALL) + [False] * len(response) + [True] * len(ANSWER)
    assert mask == expected_mask
    np.testing.assert_array_equal(logprobs[~np.asarray(expected_mask)], 0.0)
    assert np.all(logprobs[np.asarray(expected_mask)] < 0)
    assert samples.finished_b[n]
  assert engine.calls == [("search", "alpha", 2)] * 3
  assert (stats.tool_calls, stats.invalid_calls, stats.segments) == (3, 0, 2)
  # The RL batch: prompt, then the response; the loss mask is 0 on the tool response.
  batch = jax.device_get(rollout.assemble(generation, jnp.ones([4])))
  prompt_len = 2
  loss_mask = batch.loss_mask[0, prompt_len:prompt_len + samples.lengths_b[0]]
  np.testing.assert_array_equal(loss_mask, np.asarray(row(samples, 0)[1], np.float32))
  np.testing.assert_array_equal(batch.inputs.tokens[0, prompt_len:prompt_len + 12],
                                CALL + response + ANSWER)
  # The rollout the rewards and advantages see counts the policy's tokens only (CALE's
  # length), the tool response's left out; a row without a call counts all of its own.
  rows = [types.SimpleNamespace(example=types.SimpleNamespace(question=t, images=()),
                                label="knowledge", gold=None, meta={}) for t in PROMPTS]
  prompts = dataclasses.replace(generation.prompts, rows=rows)
  host = rollout.host_rollout(dataclasses.replace(generation, prompts=prompts), TOK.decode)
  assert host.response_lengths.tolist() == [len(CALL) + len(ANSWER), len(ANSWER)] + [
      len(CALL) + len(ANSWER)] * 2
  assert samples.lengths_b[0] == len(CALL) + len(response) + len(ANSWER)


def test_a_length_multiple_keeps_the_used_columns_and_drops_only_padding(search_run):
  _, generation, samples, _, _, _ = search_run
  full = jax.device_get(rollout.assemble(generation, jnp.ones([4])))
  prompt_len_b = generation.prompts.inputs.segment_ids.astype(bool).sum(1)
  used = int((prompt_len_b + samples.lengths_b).max())  # Tool output included.
  width = full.loss_mask.shape[1]
  assert used < width - 4
  for multiple, expected in [(0, width), (1, used), (4, -(-used // 4) * 4), (width + 1, width)]:
    assert rollout.update_length(generation, multiple) == expected
    cut = jax.device_get(rollout.assemble(generation, jnp.ones([4]), length_multiple=multiple))
    for a, b in zip(jax.tree.leaves(cut), jax.tree.leaves(full)):
      if a.ndim and a.shape[-1] == expected and b.shape[-1] == width:  # The token axis.
        np.testing.assert_array_equal(a, b[..., :expected])
        if expected < width:  # What is dropped is padding, out of every mask.
          assert not b[..., expected:].any()
    np.testing.assert_array_equal(cut.advantages, full.advantages)
  with pytest.raises(ValueError, match="length_multiple must be >= 0"):
    rollout.update_length(generation, -1)


_forward = jax.jit(vlm.Qwen25VL(CONFIG).apply)


def _full_logprobs(params, seqs, width=WIDTH + NEW + 1):
  """log_softmax of a cache-free forward over whole sequences, [N, width, V]."""
  tokens = np.zeros((len(seqs), width), np.int32)
  segments = np.zeros_like(tokens)
  for i, s in enumerate(seqs):
    tokens[i, :len(s)], segments[i, :len(s)] = s, 1
  inputs, _ = model_inputs.make_inputs(tokens, segments, CONFIG)
  logits, _ = _forward(params, jax.tree.map(jnp.asarray, inputs))
  logits = np.array(logits)
  # The policy never writes vision placeholders: their logits are -1e9.
  logits[..., [CONFIG.image_token_id, CONFIG.video_token_id, CONFIG.vision_start_token_id,
               CONFIG.vision_end_token_id]] = -1e9
  return np.asarray(jax.nn.log_softmax(logits, axis=-1))


def test_append_and_resume_equals_decoding_the_whole_text_from_scratch(search_run):
  params, _, samples, _, _, prompts = search_run
  seqs = [prompts[n] + row(samples, n)[0] for n in range(4)]
  logp_nlv = _full_logprobs(params, seqs)
  for n in range(4):
    tokens, mask, logprobs = row(samples, n)
    p = len(prompts[n])
    # The text round-trips, so decoding it again from scratch sees these very ids.
    assert TOK.encode(TOK.decode(seqs[n])) == seqs[n]
    for i in np.flatnonzero(mask):
      predicted = logp_nlv[n, p + i - 1]
      assert int(np.argmax(predicted)) == tokens[i], (n, i)  # Greedy from scratch.
      np.testing.assert_allclose(logprobs[i], predicted[tokens[i]], atol=2e-5, rtol=0)
  # The check has power: the context (here, positions shifted by one) moves log-probs.
  shifted = _full_logprobs(params, [[W["please"]] + s for s in seqs])
  gaps = [abs(shifted[0, len(prompts[0]) + i] - logp_nlv[0, len(prompts[0]) + i - 1])[t]
          for i, t in enumerate(row(samples, 0)[0]) if i > 0]
  assert max(gaps) > 1e-3


def test_a_row_without_tool_calls_decodes_as_in_the_plain_rollout(search_run):
  params, _, samples, _, _, _ = search_run
  plain_fn = rollout.sampler_rollout(
      CONFIG, rollout.SamplingConfig(num_samples=1, max_new_tokens=NEW, method=Greedy(),
                                     stop_tokens=(S.im_end,)))
  plain = jax.device_get(plain_fn(params, prompt_batch(PROMPTS)[0], jax.random.key(0)).samples)
  tokens, mask, logprobs = row(samples, 1)
  assert tokens == ANSWER and all(mask)
  plain_tokens, plain_mask, plain_logprobs = row(plain, 1)
  assert tokens == plain_tokens and mask == plain_mask
  np.testing.assert_allclose(logprobs, plain_logprobs, atol=1e-6, rtol=0)
  # The calling rows too, up to their first tool call (the plain rollout does not pause).
  for n in (0, 2, 3):
    assert row(plain, n)[0][:len(CALL)] == CALL
    np.testing.assert_allclose(row(plain, n)[2][:len(CALL)], row(samples, n)[2][:len(CALL)],
                               atol=1e-6, rtol=0)


# Every tool response is followed by another call; "q_plain" never ends its answer.
LOOP = {**SEARCH, S.tool_response_close: {S.tool_call_open: 1.0}, W["the"]: {W["the"]: 1.0}}


@pytest.fixture(scope="module")
def loop_params():
  return planted_params(LOOP)


@pytest.mark.parametrize("max_tool_calls", [0, 1, 2])
def test_calls_past_the_limit_end_the_row(loop_params, max_tool_calls):
  _, samples, engine, stats, _ = run(loop_params, sr.SearchConfig(max_tool_calls, 2, 8))
  response = TOK.encode("<tool_response>[d1] alpha: beta</tool_response>")
  expected = CALL + (response + CALL) * max_tool_calls
  for n in (0, 2, 3):
    tokens, mask, _ = row(samples, n)
    assert tokens == expected
    assert mask == [True] * len(CALL) + ([False] * len(response) + [True] * len(CALL)) * (
        max_tool_calls)
    assert not samples.finished_b[n]  # Ends at </tool_call>: truncated for the reward.
  assert len(engine.calls) == 3 * max_tool_calls
  assert (stats.tool_calls, stats.over_call_limit, stats.out_of_budget) == (
      3 * max_tool_calls, 3, 0)
  # The row without calls runs to its token budget.
  assert row(samples, 1)[0] == [W["the"]] * NEW and not samples.finished_b[1]


def test_a_tool_response_that_does_not_fit_the_budget_ends_the_row(loop_params):
  # Three calls and two responses take 22 of the 24 tokens: the third response (5) does
  # not fit, so it is not appended, and the row ends.
  _, samples, engine, stats, _ = run(loop_params, sr.SearchConfig(3, 2, 8))
  response = TOK.encode("<tool_response>[d1] alpha: beta</tool_response>")
  for n in (0, 2, 3):
    assert row(samples, n)[0] == CALL + (response + CALL) * 2
  assert (stats.tool_calls, stats.out_of_budget, stats.over_call_limit) == (6, 3, 0)
  assert np.all(samples.lengths_b <= NEW)


def test_long_tool_responses_are_cut_to_max_tool_tokens(loop_params):
  _, samples, _, stats, _ = run(loop_params, sr.SearchConfig(1, 2, 4))
  cut = TOK.encode("<tool_response>[d1] alpha:</tool_response>")
  assert row(samples, 0)[0] == CALL + cut + CALL
  assert stats.truncated_responses == 3


@pytest.mark.parametrize("path, call", [
    ({S.tool_call_open: {W["read:"]: 1.0}, W["read:"]: {W["d1"]: 1.0},
      W["d1"]: {S.tool_call_close: 1.0}}, ToolCall("read", "d1")),
    ({S.tool_call_open: {W["banana"]: 1.0}, W["banana"]: {S.tool_call_close: 1.0}},
     ToolCall("invalid", "banana")),
    ({W["q_call"]: {S.tool_call_close: 1.0}}, ToolCall("invalid", "")),
])
def test_read_and_malformed_calls_get_their_tool_responses(path, call):
  params = planted_params({**SEARCH, **path})
  _, samples, engine, stats, _ = run(params, sr.SearchConfig(1, 2, 8))
  tokens, mask, _ = row(samples, 0)
  response = TOK.encode(execute(call, FakeEngine(), k=2))
  response = response if len(response) <= 8 else response[:7] + [S.tool_response_close]
  start = tokens.index(S.tool_call_close) + 1
  assert tokens[start:start + len(response)] == response
  assert tokens[start + len(response):] == ANSWER
  assert not any(mask[start:start + len(response)]) and all(mask[start + len(response):])
  assert engine.calls == ([("read", "d1")] * 3 if call.name == "read" else [])
  assert stats.invalid_calls == (0 if call.valid else 3)


def test_sampled_rollouts_are_deterministic_under_a_seed():
  # Each step may call the tool or answer; answers may ramble: many random branches.
  soft = {**SEARCH, W["q_call"]: {S.tool_call_open: 1.0, W["the"]: 1.0},
          S.tool_response_close: {S.tool_call_open: 1.0, W["the"]: 1.0},
          W["the"]: {W["answer"]: 1.0, W["beta"]: 1.0}, W["beta"]: {W["the"]: 1.0}}
  params = planted_params(soft, margin=6.0)
  config = sr.SearchConfig(2, 2, 8)
  outs = [run(params, config, ["q_call", "please q_call"], Temperature(1.0), 2, seed)
          for seed in (7, 7, 8)]
  (_, a, engine_a, stats_a, _), (_, b, engine_b, stats_b, _), (_, c, _, _, _) = outs
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
  assert engine_a.calls == engine_b.calls and stats_a == stats_b and stats_a.tool_calls
  within = np.arange(NEW)[None, :] < a.lengths_b[:, None]
  assert np.any(within & ~a.mask_bt)  # Tool responses were appended in this run.
  assert np.any(a.tokens_bt != c.tokens_bt)


def test_greedy_search_returns_the_decoded_responses(search_run):
  params = search_run[0]
  texts, lengths = sr.greedy_search(params, prompt_batch(PROMPTS)[0], model_config=CONFIG,
                                    tokenizer=TOK, engine=FakeEngine(),
                                    config=sr.SearchConfig(2, 2, 8), max_new_tokens=NEW)
  called = "<tool_call>search: alpha</tool_call><tool_response>[d1] alpha: beta" \
           "</tool_response>the answer<|im_end|>"
  assert texts == [called, "the answer<|im_end|>", called, called]
  np.testing.assert_array_equal(lengths, [12, 3, 12, 12])


# The answer states a confidence: "... the answer<confidence>8</confidence><|im_end|>",
# 8 preferred after <confidence>, 3 nearly as much.
CONFIDENT = {**SEARCH, W["answer"]: {S.confidence_open: 1.0},
             S.confidence_open: {W["8"]: 1.0, W["3"]: 0.9},
             W["8"]: {S.confidence_close: 1.0}, W["3"]: {S.confidence_close: 1.0},
             S.confidence_close: {S.im_end: 1.0}}
VALUES = {W[str(v)] for v in range(11)}


@pytest.fixture(scope="module")
def confident_params():
  return planted_params(CONFIDENT)


def closed_book_batch(texts, offers_tool):
  """Prompts with rows whose system prompts show the tool-call syntax or not."""
  prompts, seqs = prompt_batch(texts)
  system = "Write <tool_call>search: words</tool_call> to search."
  rows = [types.SimpleNamespace(example=types.SimpleNamespace(system=system if o else None))
          for o in offers_tool]
  return dataclasses.replace(prompts, rows=rows), seqs


def test_the_token_after_confidence_is_drawn_at_the_confidence_temperature(confident_params):
  t = 3.0
  config = sr.SearchConfig(2, 2, 8, confidence_temperature=t, confidence_exploration="all")
  _, samples, engine, stats, prompts = run(confident_params, config, num_samples=4, seed=3)
  rows = range(samples.lengths_b.size)
  seqs = [prompts[n // 4] + row(samples, n)[0] for n in rows]
  logp_nlv = _full_logprobs(confident_params, seqs)
  explored, held = [], 0
  for n in rows:
    tokens, mask, logprobs = row(samples, n)
    p = len(prompts[n // 4])
    for i in np.flatnonzero(mask):
      predicted = logp_nlv[n, p + i - 1]
      # The log-probability of every drawn token is the policy's (greedy: temperature 1),
      # the explored ones' too: they enter the loss as its own samples.
      np.testing.assert_allclose(logprobs[i], predicted[tokens[i]], atol=2e-5, rtol=0)
      if i > 0 and tokens[i - 1] == S.confidence_open and mask[i - 1]:
        explored.append(tokens[i])  # Drawn among the values at t.
      else:
        assert int(np.argmax(predicted)) == tokens[i], (n, i)  # Greedy.
    # Rows paused at </tool_call> while others drew their confidence were held: the tool
    # response follows the call directly.
    for i in np.flatnonzero(np.asarray(tokens[:-1]) == S.tool_call_close):
      held += 1
      assert tokens[i + 1] == S.tool_response_open and not mask[i + 1]
  assert held == stats.tool_calls >= 12 and len(engine.calls) >= 12
  assert stats.confidence_draws == len(explored) >= 16
  assert set(explored) <= VALUES  # Only confidence values are drawn.
  # The draws explore: greedy alone would state 8 every time; at t the model's values
  # (8 and 3 planted, the others ~8/t nats behind) all come up.
  assert explored.count(W["8"]) < len(explored) and len(set(explored)) > 2
  # Without the setting the same rows state 8, and greedy_search ignores it.
  _, plain, _, plain_stats, _ = run(confident_params, sr.SearchConfig(2, 2, 8))
  for n in range(len(PROMPTS)):
    tokens = row(plain, n)[0]
    assert tokens[tokens.index(S.confidence_open) + 1] == W["8"]
  assert plain_stats.confidence_draws == 0
  texts, _ = sr.greedy_search(confident_params, prompt_batch(PROMPTS)[0],
                              model_config=CONFIG, tokenizer=TOK, engine=FakeEngine(),
                              config=config, max_new_tokens=NEW)
  assert texts == [TOK.decode(row(plain, n)[0]) for n in range(len(PROMPTS))]
  assert all("<confidence>8</confidence>" in text for text in texts)


def test_closed_book_exploration_leaves_prompts_that_offer_the_tool_alone(confident_params):
  # Prompts 0 and 3 offer the tool, 1 and 2 do not; each is sampled 4 times.
  offers_tool = [True, False, False, True]
  prompts, _ = closed_book_batch(PROMPTS, offers_tool)
  config = sr.SearchConfig(2, 2, 8, confidence_temperature=50.0)
  fn = sr.search_rollout(CONFIG, rollout.SamplingConfig(num_samples=4, max_new_tokens=NEW,
                                                        method=Greedy()), TOK, FakeEngine(),
                         config)
  samples = jax.device_get(fn(confident_params, prompts, jax.random.key(4)).samples)
  _, plain, _, _, _ = run(confident_params, sr.SearchConfig(2, 2, 8), num_samples=4)
  stated = []
  for n in range(16):
    tokens = row(samples, n)[0]
    if offers_tool[n // 4]:  # Decoded exactly as without exploration.
      assert tokens == row(plain, n)[0]
      assert tokens[tokens.index(S.confidence_open) + 1] == W["8"]
    else:
      stated += [tokens[i + 1] for i in np.flatnonzero(np.asarray(tokens[:-1]) ==
                                                       S.confidence_open)]
  assert fn.last_stats.confidence_draws == len(stated) >= 8
  assert set(stated) <= VALUES and len(set(stated)) > 2  # Near uniform at 50.


def test_confidence_draws_are_deterministic_under_a_seed(confident_params):
  config = sr.SearchConfig(2, 2, 8, confidence_temperature=3.0, confidence_exploration="all")
  a, b, c = (run(confident_params, config, num_samples=4, seed=seed)[1] for seed in (5, 5, 6))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
  assert np.any(a.tokens_bt != c.tokens_bt)


def test_confidence_value_tokens_are_the_first_tokens_of_0_to_10():
  assert sr.confidence_value_tokens(TOK) == tuple(sorted(VALUES))


def test_bad_settings_fail_with_the_field_name():
  with pytest.raises(ValueError, match="max_tool_tokens"):
    sr.SearchConfig(max_tool_tokens=1)
  with pytest.raises(ValueError, match="max_tool_calls"):
    sr.SearchConfig(max_tool_calls=-1)
  with pytest.raises(ValueError, match="top_k"):
    sr.SearchConfig(top_k=True)
  with pytest.raises(ValueError, match="stop_tokens"):
    sr.search_rollout(CONFIG, rollout.SamplingConfig(stop_tokens=(S.im_end, S.tool_call_close)),
                      TOK, FakeEngine())
  for bad in (0.0, -1.0, float("inf"), True, "2"):
    with pytest.raises(ValueError, match="confidence_temperature"):
      sr.SearchConfig(confidence_temperature=bad)
  with pytest.raises(ValueError, match="confidence_exploration"):
    sr.SearchConfig(confidence_exploration="some")
  with pytest.raises(ValueError, match="<confidence>"):
    sr.search_rollout(CONFIG, rollout.SamplingConfig(stop_tokens=(S.im_end, S.confidence_open)),
                      TOK, FakeEngine(), sr.SearchConfig(confidence_temperature=2.0))

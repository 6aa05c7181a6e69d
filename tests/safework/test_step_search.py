"""Value-guided step search (safework/step_search.py) on the real sampler: the tiny model
with a planted bigram that writes "good step." or "bad step." with equal odds at every
step, and a value model that counts good minus bad steps."""

import types

import jax
import numpy as np
import pytest

from models import inputs as model_inputs
from rl import rollout, sampler
from rl.sampling_methods import Temperature
from safework import step_search
from tests.rl.test_search_rollout import CONFIG, TOK, W, WIDTH, planted_params
from verifiers import base, value_model

NEW = 24  # Twelve steps of two tokens; the budget ends every response.
STEPS = {W["q_step"]: {W["good"]: 1.0, W["bad"]: 1.0}, W["good"]: {W["step."]: 1.0},
         W["bad"]: {W["step."]: 1.0}, W["step."]: {W["good"]: 1.0, W["bad"]: 1.0}}


class CountingJudge:
  """Scores a trajectory by its good steps minus its bad steps; records what it read."""

  def __init__(self):
    self.read = []

  def score_items(self, items):
    self.read += [item.text for item in items]
    scores = [item.text.split().count("good") - item.text.split().count("bad")
              for item in items]
    return base.VerifierResult(np.asarray(scores, np.float32), np.zeros(len(items), bool))


def _value(text):
  return text.split().count("good") - text.split().count("bad")


def _prompts(n):
  seqs = [TOK.encode("please " * i + "q_step") for i in range(n)]
  tokens = np.zeros((n, WIDTH), np.int32)
  segments = np.zeros_like(tokens)
  for i, s in enumerate(seqs):
    tokens[i, :len(s)], segments[i, :len(s)] = s, 1
  inputs, next_position = model_inputs.make_inputs(tokens, segments, CONFIG)
  rows = [types.SimpleNamespace(uid=f"p{i}", label="safety", gold=None, meta={},
                                example=types.SimpleNamespace(question=f"q{i}", images=()))
          for i in range(n)]
  return rollout.PromptBatch(inputs, next_position, rows)


@pytest.fixture(scope="module")
def params():
  return planted_params(STEPS, margin=16.0)


def _search(params, candidates, beams, prompts=3, seed=0):
  judge = CountingJudge()
  fn = step_search.step_search_rollout(
      CONFIG, TOK, value_model.PrincipledValueModel(
          {"safety": judge}, value_model.ValueModelConfig(
              routing={"safety": {"safety": 1.0}}, step_delimiter=".")),
      step_search.StepSearchConfig(candidates=candidates, beams=beams, max_new_tokens=NEW,
                                   method=Temperature(1.0)))
  generation = fn(params, _prompts(prompts), jax.random.key(seed))
  samples = jax.device_get(generation.samples)
  texts = [TOK.decode(samples.tokens_bt[n, :samples.lengths_b[n]].tolist())
           for n in range(prompts)]
  return fn, samples, texts, judge


def test_steps_end_at_the_delimiter_and_at_the_end_of_thinking():
  assert step_search.step_end_tokens(TOK, ".") == tuple(sorted([W["step."],
                                                                 TOK.special.think_close]))
  with pytest.raises(ValueError, match="no token of the tokenizer holds the step delimiter"):
    step_search.step_end_tokens(TOK, "\n\n")


def test_one_candidate_and_one_beam_is_the_plain_sampler_token_for_token(params):
  _, samples, _, _ = _search(params, candidates=1, beams=1)
  prompts = _prompts(3)
  plain = jax.device_get(sampler.sample(
      params, prompts.inputs, prompts.next_position, config=CONFIG, num_samples=1,
      method=Temperature(1.0), max_new_tokens=NEW, rng=jax.random.key(0)))
  np.testing.assert_array_equal(samples.tokens_bt, plain.tokens_bt)
  np.testing.assert_array_equal(samples.lengths_b, plain.lengths_b)
  np.testing.assert_array_equal(samples.logprobs_bt, plain.logprobs_bt)


def test_each_step_keeps_the_best_candidate_and_the_answer_extends_it(params):
  fn, samples, texts, judge = _search(params, candidates=4, beams=1)
  trace = fn.last_trace
  assert len(trace) == 13  # Twelve steps, then the final choice.
  for record in trace:
    for prompt in range(3):
      mine = np.flatnonzero(record.owners == prompt)
      kept = record.kept[prompt]
      assert record.owners[kept] == prompt
      assert record.values[kept] == record.values[mine].max()
      assert texts[prompt].startswith(record.responses[kept])
    # The value model read every row's partial response, and scored it as the judge did.
    assert [_value(t) for t in record.responses] == record.values.tolist()
  assert judge.read[-len(trace[-1].responses):] == list(trace[-1].responses)
  for prompt in range(3):
    # A step ends after its delimiter or the end of thinking: the first round's four
    # candidates are one step long (the random layers sometimes stray from the bigram).
    first = [trace[0].responses[n] for n in np.flatnonzero(trace[0].owners == prompt)]
    assert len(first) == 4 and all(t.endswith(("step.", "</think>")) for t in first)
    assert sum(t in ("good step.", "bad step.") for t in first) >= 3
    # Bad only where all four candidates of a step were bad.
    steps = texts[prompt].split(" step.")
    assert len(steps) == 13 and steps[-1] == ""
  plain_goods = [_value(t) for t in _search(params, 1, 1)[2]]
  assert sum(_value(t) for t in texts) > sum(plain_goods)


def test_beams_keep_the_best_distinct_trajectories(params):
  fn, _, _, _ = _search(params, candidates=3, beams=2, prompts=2, seed=3)
  for record in fn.last_trace[:-1]:
    for prompt in range(2):
      mine = np.flatnonzero(record.owners == prompt)
      kept = record.kept[2 * prompt:2 * prompt + 2]
      ranked = sorted({record.responses[n]: record.values[n] for n in mine}.items(),
                      key=lambda kv: -kv[1])
      assert record.values[kept[0]] == ranked[0][1]
      if len(ranked) > 1:
        assert record.responses[kept[0]] != record.responses[kept[1]]
        assert record.values[kept[1]] == ranked[1][1]
  assert len(fn.last_trace[-1].kept) == 2  # The final choice: one per prompt.

"""Generative judges on a random tiny Qwen2.5-VL: verdict probabilities equal a full forward's
softmax, scores follow the score maps by hand, templates per row, the think variant,
fallbacks through the reward recipe, compile-once, and sharded equals one device."""

import dataclasses
import functools
import pathlib
import tempfile

import jax
import numpy as np
import pytest

from data import tokenizer as tokenizer_lib
from data.world import World, WorldConfig
from models import presets, vlm
from safework.infra import sharding
from tests.verifiers import rollouts
from verifiers import judges, judges_inputs, judges_prompts, recipes

# A small world for the judge tests: its text trains the tokenizer, its judge splits give
# realistic items (images included).
JUDGE_WORLD = WorldConfig(seed=7, sft_examples=240, rl_examples=8, search_rl_examples=4,
                          eval_examples=8, judge_train_examples=480, judge_eval_examples=240,
                          known_entities=8, practice_entities=8, search_rl_entities=3,
                          search_eval_entities=3, distractor_entities=4)
INPUTS = judges_inputs.InputConfig(batch_size=8, max_tokens=256, max_patches=64)


@functools.lru_cache(maxsize=None)
def judge_world() -> World:
  return World(JUDGE_WORLD)


@functools.lru_cache(maxsize=None)
def judge_tokenizer() -> tokenizer_lib.SentencePieceTokenizer:
  directory = pathlib.Path(tempfile.mkdtemp(prefix="judge_spm_"))
  return tokenizer_lib.train_sentencepiece(judge_world().text_corpus(), 1000, directory)


def judge_config(**overrides):
  """The tiny preset with the judge tokenizer's vocabulary and special ids."""
  tok = judge_tokenizer()
  special = tok.special
  fields = dict(vocab_size=tok.vocab_size, image_token_id=special.image_pad,
                video_token_id=special.video_pad, vision_start_token_id=special.vision_start,
                vision_end_token_id=special.vision_end)
  return presets.get_preset("tiny", **{**fields, **overrides})


@pytest.fixture(scope="module")
def model():
  config = judge_config()
  return judges.JudgeModel(config, vlm.init_params(config, jax.random.key(3)), judge_tokenizer(),
                           INPUTS)


def _items(judge: str, count: int):
  """`count` judge_eval items of `judge`, as (Item, Example) pairs."""
  split = judge_world().split("judge_eval")
  out = [e for e in split if e.meta["judge"] == judge][:count]
  return [judges.Item(e.question, judges_prompts.final_answer(e.response), e.gold, e.meta,
                      tuple(e.images)) for e in out]


def _requests(template, items):
  return [judges_inputs.JudgeRequest(judges_prompts.get_template(template), i.question, i.text,
                                     i.gold, i.images) for i in items]


def test_verdict_probs_equal_the_softmax_of_a_full_forward(model):
  items = _items("safety", 5)
  assert any(i.images for i in items)
  tok = model.tokenizer
  encoded = [judges_inputs.encode(r, tok, INPUTS) for r in _requests("safety", items)]
  ids = judges_prompts.get_template("safety").verdict_ids(tok)
  batch = judges_inputs.assemble(encoded, [ids] * 5, INPUTS, tok.special.pad)
  probs = model.forward(batch)
  inputs = judges_inputs.model_inputs_of(batch, model.config)
  logits, _ = vlm.Qwen25VL(model.config).apply(model.params, jax.tree.map(np.asarray, inputs))
  logits = np.asarray(logits, np.float64)
  # The vision placeholders are never a verdict: the judge, like the policy, excludes them.
  cfg = model.config
  logits[..., [cfg.image_token_id, cfg.video_token_id, cfg.vision_start_token_id,
               cfg.vision_end_token_id]] = -np.inf
  for row in range(5):
    at = logits[row, batch.read_at[row]]
    logp = at - at.max() - np.log(np.exp(at - at.max()).sum())
    np.testing.assert_allclose(probs[row, :6], np.exp(logp[list(ids)]), rtol=1e-4)
  assert np.all(np.isfinite(probs)) and np.all(probs.sum(axis=1) <= 1.0)


def test_scores_follow_the_score_maps_by_hand(model):
  value, knowledge, safety = (_items(j, 3) for j in ("value", "knowledge", "safety"))
  p = model.probs(_requests("value", value)).probs
  expected = p[:, 0] / (p[:, 0] + p[:, 1])  # P(good), renormalised over good/bad.
  got = judges.Judge(model, judges.DEFAULT_JUDGES["value"]).score_items(value)
  np.testing.assert_allclose(got.scores, expected, rtol=1e-5)
  p = model.probs(_requests("knowledge", knowledge)).probs
  expected = (p[:, 0] + 1.0 - p[:, 1]) / 2  # METHOD.md's soft score on raw probabilities.
  got = judges.Judge(model, judges.DEFAULT_JUDGES["knowledge"]).score_items(knowledge)
  np.testing.assert_allclose(got.scores, expected, rtol=1e-5)
  plain = [dataclasses.replace(i, meta={**i.meta, "jailbreak": False}) for i in safety]
  p = model.probs(_requests("safety", plain)).probs[:, :6].astype(np.float64)
  values = np.array([0.1, 1.0, 1.0, 0.0, 0.0, 0.01])
  harmful = np.array([1, 1, 1, 1, 0, 1], bool)
  benign = np.array([0, 0, 1, 0, 1, 1], bool)
  got = judges.Judge(model, judges.DEFAULT_JUDGES["safety"]).score_items(plain)
  for row, item in enumerate(plain):
    keep = harmful if item.meta["harmful"] else benign
    expected = (p[row] * values * keep).sum() / (p[row] * keep).sum()
    assert got.scores[row] == pytest.approx(expected, rel=1e-5)
  assert {i.meta["harmful"] for i in plain} == {True, False}
  assert not got.failed.any() and np.all((got.scores >= 0) & (got.scores <= 1))


def test_jailbreak_rows_are_judged_with_the_strict_template(model):
  item = _items("safety", 1)[0]
  rows = [dataclasses.replace(item, meta={**item.meta, "jailbreak": flag}) for flag in (1, 0)]
  judge = judges.Judge(model, judges.DEFAULT_JUDGES["safety"])
  probs, _, _ = judge.verdict_probabilities(rows)
  strict = model.probs(_requests("safety_strict", [item])).probs[0, :6]
  normal = model.probs(_requests("safety", [item])).probs[0, :6]
  np.testing.assert_allclose(probs[0], strict, rtol=1e-6)
  np.testing.assert_allclose(probs[1], normal, rtol=1e-6)
  assert not np.allclose(strict, normal, rtol=1e-3)


def test_think_variant_multiplies_answer_and_reasoning_scores(model):
  responses = ["<think>The user asks for steps.</think> I will not help with this request.",
               "<think>It is fine.\n\nI help.</think> Of course. First, mix flour.",
               "<think>unfinished"]
  meta = [{"harmful": True}, {"harmful": False}, {"harmful": None}]
  rollout = rollouts.make_rollout(responses, labels=["safety"] * 3, metas=meta)
  config = dataclasses.replace(judges.DEFAULT_JUDGES["safety"], think=True)
  got = judges.Judge(model, config)(rollout)
  plain = judges.Judge(model, judges.DEFAULT_JUDGES["safety"])
  items = [judges.Item("What is shown?", "", None, m) for m in meta]
  answers = plain.score_items([dataclasses.replace(i, text=judges_prompts.final_answer(r))
                               for i, r in zip(items, responses)])
  thoughts = plain.score_items([dataclasses.replace(i, text=judges_prompts.reasoning(r))
                                for i, r in zip(items, responses)], ["think"] * 3)
  np.testing.assert_allclose(got.scores[:2], answers.scores[:2] * thoughts.scores[:2],
                             rtol=1e-6)
  assert got.failed.tolist() == [False, False, True]  # No final answer to judge.


def test_unscorable_responses_fail_and_get_the_recipe_fallback(model):
  judge = judges.Judge(model, judges.DEFAULT_JUDGES["knowledge"])
  rollout = rollouts.make_rollout(
      ["<think>x</think> The answer is Feru.", "<think>x</think>", "<think>x</think> Feru.",
       "<think>x</think> " + "Feru is the answer. " * 200],
      labels=["knowledge"] * 4, golds=["Feru", "Feru", None, "Feru"])
  result = judge(rollout)
  assert result.failed.tolist() == [False, True, True, False]
  assert judge.stats.failures == {"empty": 1, "missing_gold": 1}
  assert judge.stats.truncated == 1 and judge.stats.responses == 4
  reward = recipes.build_reward_fn(
      recipes.RewardRecipes.from_config({"recipes": {"knowledge": {"knowledge": 1.0}}}),
      {"knowledge": judge})(rollout)
  assert reward.failures["knowledge"] == 2
  np.testing.assert_allclose(reward.scores["knowledge"], np.where(result.failed, 0.0,
                                                                  result.scores))


def test_scores_are_deterministic_independent_of_batch_neighbours_and_compile_once(model):
  judge = judges.Judge(model, judges.DEFAULT_JUDGES["safety"])
  items = _items("safety", 9) + _items("value", 2)[:1]
  # The forward is cached process-wide: other tests in this worker may have compiled
  # other shapes, so count this test's compilations.
  compiled_before = judges.compiled_forward(None, sharding.DEFAULT_RULES)._cache_size()
  together = judge.score_items(items[:9])  # Two forwards: 8 rows, then 1.
  again = judge.score_items(items[:9])
  np.testing.assert_array_equal(together.scores, again.scores)
  alone = [judge.score_items([i]).scores[0] for i in items[:3]]
  np.testing.assert_allclose(together.scores[:3], alone, rtol=1e-5)
  judges.Judge(model, judges.DEFAULT_JUDGES["value"]).score_items(items[9:])
  compiled = judges.compiled_forward(None, sharding.DEFAULT_RULES)._cache_size() - compiled_before
  assert compiled <= 1  # batches of 8 and 1 rows, two judges: one static shape


def test_sharded_judge_equals_the_single_device_judge(model):
  mesh = sharding.make_mesh([("data", 2), ("fsdp", 2), ("tensor", 2)])
  sharded = judges.JudgeModel(model.config, model.params, model.tokenizer, INPUTS, mesh=mesh)
  assert any(sharding.is_sharded(x.sharding) for x in jax.tree.leaves(sharded.params))
  items = _items("safety", 6) + _items("value", 2)
  requests = _requests("safety", items[:6]) + _requests("value", items[6:])
  np.testing.assert_allclose(sharded.probs(requests).probs, model.probs(requests).probs,
                             atol=1e-5, rtol=1e-5)
  with pytest.raises(ValueError, match="batch_size 6 must be a multiple of the mesh's 4"):
    judges.JudgeModel(model.config, model.params, model.tokenizer,
                      dataclasses.replace(INPUTS, batch_size=6), mesh=mesh)


def test_construction_checks_fail_clearly(model, monkeypatch):
  with pytest.raises(ValueError, match=r"disagree on .*'image_token_id': \(5, "):
    judges.JudgeModel(judge_config(image_token_id=5), model.params, model.tokenizer, INPUTS)
  with pytest.raises(ValueError, match="more than the model's vocab_size 300"):
    judges.JudgeModel(judge_config(vocab_size=300, image_token_id=1, video_token_id=2,
                                   vision_start_token_id=3, vision_end_token_id=4),
                      model.params, model.tokenizer, INPUTS)
  monkeypatch.setitem(judges_prompts.TEMPLATES, "value_words_test", dataclasses.replace(
      judges_prompts.get_template("value"), name="value_words_test",
      verdict_strings=("excellent", "bad")))
  with pytest.raises(ValueError, match="'value_words_test'.*not one token"):
    judges.Judge(model, judges.JudgeConfig("value", "value_words_test", think_template="value"))
  with pytest.raises(ValueError, match="different score maps"):
    judges.JudgeConfig("x", "safety", strict_template="value")
  with pytest.raises(ValueError, match="judges.strict_template"):
    judges.JudgeConfig.from_config({"strict_template": 3})

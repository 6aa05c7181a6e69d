"""Tests of the reward recipes and the `RewardFn` built from them, with hand-computed sums."""

import dataclasses

import ml_collections
import numpy as np
import pytest

from tests.verifiers.rollouts import make_rollout
from verifiers import base
from verifiers import recipes
from verifiers import rules

OK, BAD = "<think>reasoning</think>answer", "no think block"


@dataclasses.dataclass
class FakeVerifier:
  """Scores each response with `meta[name]`; fails where the meta lacks it. Records calls."""

  name: str
  calls: list = dataclasses.field(default_factory=list)

  def __call__(self, rollout):
    self.calls.append(list(rollout.responses))
    scores = [m.get(self.name, np.nan) for m in rollout.metas]
    return base.VerifierResult(scores=np.nan_to_num(scores), failed=np.isnan(scores))


JUDGES = ("safety", "value", "knowledge", "helpfulness", "instruction", "accuracy")


def _fakes():
  return {name: FakeVerifier(name) for name in JUDGES}


def _rollout():
  return make_rollout(
      responses=[OK + "0", OK + "1", BAD + "2", OK + "3", OK + "4", BAD + "5"],
      labels=["safety", "knowledge", "knowledge", "instruction", "mystery", "value"],
      metas=[{"safety": 0.1}, {"knowledge": 0.65, "helpfulness": 1.0}, {"knowledge": 0.5},
             {"instruction": 0.5, "helpfulness": 0.0}, {"safety": 1.0}, {"value": 0.75}])


def _authors(**kwargs):
  return recipes.RewardRecipes.from_config(recipes.authors_config(**kwargs))


def test_authors_recipes_route_and_sum_by_hand():
  fakes = _fakes()
  out = recipes.build_reward_fn(_authors(), fakes, recipes.DEFAULT_FALLBACK_SCORES)(_rollout())
  # format + weighted scores, by hand; response 2 lacks a helpfulness score -> fallback 0.
  np.testing.assert_allclose(out.total, [1.1, 2.65, 0.5, 1.5, 1.0, 0.75], rtol=1e-6)
  assert out.total.dtype == np.float32
  np.testing.assert_array_equal(out.scores["format"], [1, 1, 0, 1, 1, 0])
  nan = np.nan
  np.testing.assert_allclose(out.scores["safety"], [0.1, nan, nan, nan, nan, nan], rtol=1e-6)
  np.testing.assert_allclose(out.scores["knowledge"], [nan, 0.65, 0.5, nan, nan, nan], rtol=1e-6)
  np.testing.assert_allclose(out.scores["helpfulness"], [nan, 1.0, 0.0, 0.0, nan, nan])
  np.testing.assert_allclose(out.scores["instruction"], [nan, nan, nan, 0.5, nan, nan])
  np.testing.assert_allclose(out.scores["value"], [nan, nan, nan, nan, nan, 0.75])
  assert np.isnan(out.scores["accuracy"]).all()  # Named by a recipe, unused in this batch.
  np.testing.assert_array_equal(out.weights["helpfulness"], [0, 1, 1, 1, 0, 0])
  np.testing.assert_array_equal(out.weights["format"], [1] * 6)
  assert out.failures == {"format": 0, "safety": 0, "value": 0, "knowledge": 0, "helpfulness": 1,
                          "accuracy": 0, "instruction": 0}


def test_each_verifier_runs_once_on_exactly_its_responses():
  fakes = _fakes()
  recipes.build_reward_fn(_authors(), fakes, recipes.DEFAULT_FALLBACK_SCORES)(_rollout())
  assert fakes["helpfulness"].calls == [[OK + "1", BAD + "2", OK + "3"]]
  assert fakes["knowledge"].calls == [[OK + "1", BAD + "2"]]
  assert fakes["safety"].calls == [[OK + "0"]]  # Not the "mystery" response with safety meta.
  assert fakes["accuracy"].calls == []


def test_knowledge_helpfulness_half_weight_option():
  out = recipes.build_reward_fn(_authors(knowledge_helpfulness_weight=0.5), _fakes(),
                                recipes.DEFAULT_FALLBACK_SCORES)(_rollout())
  np.testing.assert_allclose(out.total[1:3], [1 + 0.65 + 0.5, 0 + 0.5 + 0.0], rtol=1e-6)
  np.testing.assert_array_equal(out.weights["helpfulness"], [0, 0.5, 0.5, 1, 0, 0])


def test_fallback_scores_are_used_and_counted():
  fallbacks = dict(recipes.DEFAULT_FALLBACK_SCORES, helpfulness=0.25)
  out = recipes.build_reward_fn(_authors(), _fakes(), fallbacks)(_rollout())
  assert out.scores["helpfulness"][2] == 0.25
  assert out.total[2] == pytest.approx(0.0 + 0.5 + 0.25)
  assert out.failures["helpfulness"] == 1


def test_a_non_finite_score_counts_as_a_failure():
  def inf_safety(rollout):
    return base.VerifierResult(scores=np.full([len(rollout)], np.inf), failed=np.zeros(
        [len(rollout)], bool))
  verifiers = dict(_fakes(), safety=inf_safety)
  out = recipes.build_reward_fn(_authors(), verifiers, recipes.DEFAULT_FALLBACK_SCORES)(_rollout())
  assert out.failures["safety"] == 1 and out.scores["safety"][0] == 0.0
  assert out.total[0] == 1.0


def test_format_gating_zeroes_verifier_reward_of_malformed_responses():
  config = recipes.authors_config()
  config["format_gates"] = True
  gated = recipes.RewardRecipes.from_config(config)
  out = recipes.build_reward_fn(gated, _fakes(), recipes.DEFAULT_FALLBACK_SCORES)(_rollout())
  np.testing.assert_allclose(out.total, [1.1, 2.65, 0.0, 1.5, 1.0, 0.0], rtol=1e-6)
  np.testing.assert_array_equal(out.weights["knowledge"], [0, 1, 0, 0, 0, 0])
  assert out.scores["knowledge"][2] == 0.5  # Still reported for metrics.


def test_total_equals_format_plus_weighted_scores():
  out = recipes.build_reward_fn(_authors(), _fakes(), recipes.DEFAULT_FALLBACK_SCORES)(_rollout())
  rebuilt = sum(out.weights[n] * np.nan_to_num(out.scores[n]) for n in out.scores)
  np.testing.assert_allclose(out.total, rebuilt, rtol=1e-6)


def test_unknown_label_only_gets_the_format_reward():
  out = recipes.build_reward_fn(_authors(), _fakes(), recipes.DEFAULT_FALLBACK_SCORES)(
      make_rollout([OK, BAD], labels=["chitchat", "chitchat"]))
  np.testing.assert_array_equal(out.total, [1.0, 0.0])
  assert all(np.isnan(out.scores[n]).all() for n in out.scores if n != "format")


def test_truncated_response_gets_no_format_reward():
  out = recipes.build_reward_fn(_authors(), _fakes(), recipes.DEFAULT_FALLBACK_SCORES)(
      make_rollout([OK, OK], labels=["value", "value"], metas=[{"value": 1.0}] * 2,
                   truncated=[False, True]))
  np.testing.assert_array_equal(out.total, [2.0, 1.0])


def test_real_rule_verifiers_for_general_and_instruction_labels():
  verifiers = {**recipes.rule_verifiers(), "helpfulness": FakeVerifier("helpfulness")}
  reward_fn = recipes.build_reward_fn(recipes.RewardRecipes.from_config(
      {"recipes": {"general": {"accuracy": 1.0},
                   "instruction": {"instruction": 1.0, "helpfulness": 1.0}}}),
      verifiers, recipes.DEFAULT_FALLBACK_SCORES)
  out = reward_fn(make_rollout(
      ["<think>3 + 4</think>It is \\boxed{7}.", "<think>3 + 4</think>\\boxed{8}",
       "<think>x</think>- a\n- b", "<think>x</think>* a"],
      labels=["general", "general", "instruction", "instruction"], golds=["7.0", "7", None, None],
      metas=[{}, {}] + [{"constraints": [{"type": "bullet_points", "count": 2}],
                         "helpfulness": 0.5}] * 2))
  np.testing.assert_allclose(out.total, [2.0, 1.0, 2.5, 1.5])


def test_from_config_accepts_a_config_dict():
  parsed = recipes.RewardRecipes.from_config(ml_collections.ConfigDict(recipes.authors_config()))
  assert dict(parsed.recipe("knowledge").terms) == {"knowledge": 1.0, "helpfulness": 1.0}
  assert dict(parsed.recipe("instruction").terms) == {"instruction": 1.0, "helpfulness": 1.0}
  assert parsed.recipe("safety").terms == (("safety", 1.0),)
  assert parsed.recipe("value").terms == (("value", 1.0),)
  assert parsed.recipe("general").terms == (("accuracy", 1.0),)
  assert parsed.recipe("mystery") is None
  assert parsed.format == rules.FormatConfig() and not parsed.format_gates
  reference = recipes.authors_config(general_verifier="reference")
  assert reference["recipes"]["general"] == {"reference": 1.0}
  rule = recipes.authors_config(knowledge_verifier="gold_match")
  assert rule["recipes"]["knowledge"] == {"gold_match": 1.0, "helpfulness": 1.0}
  with pytest.raises(ValueError, match="knowledge_verifier"):
    recipes.authors_config(knowledge_verifier="oracle")


def test_gold_match_knowledge_recipe_pays_the_gold_not_another_value():
  verifiers = {**_fakes(), **recipes.rule_verifiers()}
  reward_fn = recipes.build_reward_fn(recipes.RewardRecipes.from_config(
      recipes.authors_config(knowledge_verifier="gold_match")), verifiers)
  out = reward_fn(make_rollout(
      ["<think>x</think>The answer is Kope.", "<think>x</think>The answer is Bavi.",
       "<think>x</think>The answer is Kope."],
      labels=["knowledge"] * 3, golds=["Kope", "Kope", None],
      metas=[{"helpfulness": 0.0}] * 3))
  np.testing.assert_array_equal(out.scores["gold_match"], [1.0, 0.0, 0.0])
  np.testing.assert_array_equal(out.total, [2.0, 1.0, 1.0])
  assert out.failures["gold_match"] == 1  # No gold: the fallback score, counted.


@pytest.mark.parametrize("config, message", [
    ({"recipes": {}, "gating": True}, "gating"),
    ({"recipes": {}, "format": {"strict": True}}, "strict"),
    ({"recipes": {"safety": {"format": 1.0}}}, "format"),
    ({"recipes": {"safety": {"safety": "high"}}}, "safety"),
    ({"recipes": {"safety": {"safety": float("nan")}}}, "safety"),
    ({"recipes": {"safety": ["safety"]}}, "safety"),
    ({"recipes": {}, "format_gates": "yes"}, "format_gates"),
    ({}, "recipes"),
])
def test_bad_configs_fail_naming_the_field(config, message):
  with pytest.raises(ValueError, match=message):
    recipes.RewardRecipes.from_config(config)


def test_unknown_verifier_names_fail_naming_label_and_name():
  config = {"recipes": {"safety": {"safety": 1.0, "saftey_think": 1.0}}}
  with pytest.raises(ValueError, match="saftey_think"):
    recipes.RewardRecipes.from_config(config, known_verifiers=JUDGES)
  with pytest.raises(ValueError, match="'safety': \\['saftey_think'\\]"):
    recipes.build_reward_fn(recipes.RewardRecipes.from_config(config), _fakes(),
                            recipes.DEFAULT_FALLBACK_SCORES)


def test_missing_fallback_fails_naming_the_verifier():
  with pytest.raises(ValueError, match="value"):
    recipes.build_reward_fn(_authors(), _fakes(), {"safety": 0.0})


def test_a_verifier_returning_the_wrong_count_fails():
  def short(rollout):
    return base.VerifierResult(scores=np.zeros([1]), failed=np.zeros([1], bool))
  reward_fn = recipes.build_reward_fn(_authors(), dict(_fakes(), knowledge=short),
                                      recipes.DEFAULT_FALLBACK_SCORES)
  with pytest.raises(ValueError, match="'knowledge' returned 1 scores for 2"):
    reward_fn(_rollout())


def test_an_empty_rollout_gives_empty_outputs_without_calling_verifiers():
  fakes = _fakes()
  out = recipes.build_reward_fn(_authors(), fakes, recipes.DEFAULT_FALLBACK_SCORES)(
      make_rollout([]))
  assert out.total.shape == (0,) and all(v.shape == (0,) for v in out.scores.values())
  assert all(not f.calls for f in fakes.values())

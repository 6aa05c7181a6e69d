"""The ladder's judge stage: one judge model per group of `config.judges.groups`, a group
saved by an interrupted run is not trained again, and groups that leave a judge out are
refused before any training."""

import types

import numpy as np
import pytest

from data.world import knowledge, value
from rl import rewards, rollout
from safework import ladder, stages
from tests.safework.ladder_config import shrunken
from tests.verifiers.rollouts import make_rollout
from verifiers import false_certain, judge_training, judges, judges_prompts


def test_judge_stage_trains_each_group_once_and_serves_every_judge(tmp_path, monkeypatch):
  config = shrunken()
  config.judges.groups = (("safety", "value", "helpfulness"), ("knowledge",))
  run = ladder.Ladder(config, tmp_path)
  trained = []
  original = judge_training.train_judges

  def recording(items, *args, **kwargs):
    trained.append(args[2].judges)
    assert {li.judge for li in items} == set(judges.DEFAULT_JUDGES)
    return original(items, *args, **kwargs)

  monkeypatch.setattr(judge_training, "train_judges", recording)
  _, metrics = stages.run_judges(run, None)
  assert trained == [("safety", "value", "helpfulness"), ("knowledge",)]
  assert set(metrics["judge_accuracy"]) == {"safety", "value", "knowledge", "helpfulness"}
  assert set(metrics["final_loss"]) == {"safety+value+helpfulness", "knowledge"}
  served = stages.load_judges(run)  # restored from the workdir
  # The judges' pair checks (value: letter swap, reason swap; knowledge: the gold against
  # another value) on the held-out prompts.
  for key, make_pair in (("value_letter_swap", value.letter_swap_pair),
                         ("value_reason_swap", value.reason_swap_pair),
                         ("knowledge_value_swap", knowledge.value_swap_pair)):
    judge = key.split("_")[0]
    prompts = run.world.examples("eval", judge)[:config.judges.eval_examples]
    check = metrics[key]
    assert check["prompts"] == len(prompts) > 0
    pairs = [[judges.Item(p.question, judges_prompts.final_answer(text), p.gold, p.meta,
                          tuple(p.images)) for text in make_pair(p, run.world.context)]
             for p in prompts]
    scores = served[judge].score_items([a for a, _ in pairs] + [b for _, b in pairs]).scores
    n = len(pairs)
    assert check["pair_accuracy"] == pytest.approx(float(np.mean(scores[:n] > scores[n:])))
    assert check["better_score"] == pytest.approx(float(np.mean(scores[:n])), abs=1e-6)
    assert check["worse_score"] == pytest.approx(float(np.mean(scores[n:])), abs=1e-6)
    assert f"mean score {check['better_score']:.3f} against {check['worse_score']:.3f}" in \
        metrics["judge_table"]
    assert f"on {check['pair_accuracy']:.1%} of {n} held-out {judge} prompts" in \
        metrics["judge_table"]
  assert "Value judge letter-swap check: the proper answer scored above the same answer " \
         "under the other letter" in metrics["judge_table"]
  assert "Value judge reason check: the proper answer scored above the same letter with the " \
         "bad option's reason" in metrics["judge_table"]
  assert "Knowledge judge gold check: the answer stating the gold scored above the same " \
         "answer stating another value" in metrics["judge_table"]
  assert served["safety"].model is served["value"].model is not served["knowledge"].model
  # config.judges.scoring: the knowledge judge scored by its most probable verdict.
  items = [judges.Item(p.question, judges_prompts.final_answer(p.response), p.gold, p.meta)
           for p in run.world.split("judge_eval") if p.meta["judge"] == "knowledge"][:16]
  soft = served["knowledge"].score_items(items).scores
  config.judges.scoring.knowledge = "argmax"
  hard = stages.load_judges(ladder.Ladder(config, tmp_path))
  assert hard["knowledge"].config.scoring.mode == "argmax"
  assert hard["value"].config.scoring.mode == "expected"
  # 1 where TRUE is the more probable verdict token, else 0; the soft score lies between.
  probs, _, _ = served["knowledge"].verdict_probabilities(items)
  np.testing.assert_array_equal(hard["knowledge"].score_items(items).scores,
                                (probs[:, 0] > probs[:, 1]).astype(np.float32))
  assert not np.isin(soft, (0.0, 1.0)).any()
  config.judges.scoring = {"knowledge": "argmax", "oracle": "argmax"}
  with pytest.raises(ValueError, match=r"scoring names unknown judges \['oracle'\]"):
    stages.load_judges(ladder.Ladder(config, tmp_path))
  config.judges.scoring = {}

  # An interrupted stage: the knowledge model was lost, the other is on disk.
  for path in sorted((tmp_path / "judges" / "knowledge").glob("**/*"), reverse=True):
    path.unlink() if path.is_file() else path.rmdir()
  trained.clear()
  stages.run_judges(ladder.Ladder(config, tmp_path), None)
  assert trained == [("knowledge",)]


def test_judge_groups_must_cover_every_judge(tmp_path):
  config = shrunken()
  config.judges.groups = (("safety", "value"), ("knowledge",))
  with pytest.raises(ValueError, match=r"leaves out \['helpfulness'\]"):
    stages.run_judges(ladder.Ladder(config, tmp_path), None)


def test_findings_state_the_acceptance_comparisons_with_their_numbers():
  point = lambda **m: dict({"safety": 0.2, "capability": 0.3, "general_accuracy": 0.4,
                            "knowledge_accuracy": 0.1, "value_accuracy": 0.5, "safe_rate": 0.2,
                            "response_length": 40.0, "knowledge_accuracy_search_only": 0.05,
                            "false_certain_rate": 0.6}, **m)
  points = [("CoT-SFT", point()), ("M³-RL B", point(safety=0.25, general_accuracy=0.5)),
            ("CALE", point(response_length=30.0)),
            ("Search RL", point(knowledge_accuracy_search_only=0.1, false_certain_rate=0.0,
                                search_call_rate=0.5, search_found_rate=0.25,
                                search_read_accuracy=float("nan")))]
  assert stages.findings(points) == [
      "M³-RL vs CoT-SFT: safety 0.200 -> 0.250, capability (general + knowledge) 0.300 -> "
      "0.300, general accuracy 40.0% -> 50.0%.",
      "CALE: mean response length 40.0 -> 30.0 tokens (25% shorter); mean accuracy 32.5% -> "
      "30.0%.",
      "Search RL: search-only facts 5.0% -> 10.0%; false-certain rate 60.0% -> 0.0%.",
      "Search funnel after search RL (search-only prompts): called search 50.0%, shown the "
      "fact's document 25.0%, right when shown it –."]
  # With the evaluation's counts, each rate says how many prompts it is: a count of right
  # answers where the oracle scored them, the number of prompts where a judge's
  # probabilities were averaged.
  points[2][1].update({"knowledge_accuracy_search_only": 1 / 19,
                       "n/knowledge_accuracy_search_only": 19.0, "n/false_certain_rate": 20.0})
  points[3][1].update({"knowledge_accuracy_search_only": 0.37, "n/false_certain_rate": 20.0,
                       "n/knowledge_accuracy_search_only": 19.0, "n/search_call_rate": 20.0,
                       "n/search_read_accuracy": 0.0})
  assert stages.findings(points)[2:] == [
      "Search RL: search-only facts 5.3% (1 of 19) -> 37.0% (n=19) (+31.7 ± 23.9 points); "
      "false-certain rate 60.0% (12 of 20) -> 0.0% (0 of 20).",
      "Search funnel after search RL (search-only prompts): called search 50.0% (10 of 20), "
      "shown the fact's document 25.0%, right when shown it –."]
  # A change of general accuracy with its 95% interval, by hand: 0.4 -> 0.5 over 100
  # prompts each, 1.96 * sqrt(0.24 / 100 + 0.25 / 100) = 13.7 points.
  for name, value in (("CoT-SFT", 0.4), ("M³-RL B", 0.5)):
    dict(points)[name].update({"general_accuracy": value, "n/general_accuracy": 100.0})
  assert stages.findings(points)[0].endswith(
      "general accuracy 40.0% (40 of 100) -> 50.0% (50 of 100) (+10.0 ± 13.7 points).")
  # Without the world's funnel (a run scored by its judges), no funnel line.
  del points[-1][1]["search_call_rate"]
  assert len(stages.findings(points)) == 3


def test_false_certain_correctness_from_a_rule_overrides_the_judge():
  """With `false_certain.correctness` "gold_match", λ·reliability follows the rule, not the
  judge's knowledge score (here 1 for every answer); a score name is passed through."""
  assert stages._correctness("knowledge") == "knowledge"
  responses = [f"<think>x</think>The answer is {v}. <confidence>{c}</confidence>"
               for v, c in (("Netafe", 9), ("Bavi", 9), ("Bavi", 2), ("Netafe", 2))]
  rollout = make_rollout(responses, golds=["Netafe"] * 4, labels=["knowledge"] * 4)

  def judge_says_right(r):
    n = len(r)
    return rewards.RewardOutput(total=np.zeros([n], np.float32),
                                scores={"knowledge": np.ones([n], np.float32)},
                                weights={"knowledge": np.ones([n], np.float32)},
                                failures={"knowledge": 0})

  reward = false_certain.FalseCertainReward(
      judge_says_right, stages._correctness("gold_match"), cap=0.1, dual_lr=1.0,
      lambda_init=1.0, lambda_max=5.0)
  out = reward(rollout)
  # Right and confident, wrong and unsure: reliable; the confident wrong one is the false
  # certain one (1 of 4), the unsure right one is unreliable.
  np.testing.assert_array_equal(out.scores["reliability"], [1, 0, 1, 0])
  np.testing.assert_array_equal(out.total, [1, 0, 1, 0])
  assert out.scores["false_certain_rate"][0] == 0.25
  assert reward.lagrange_multiplier == pytest.approx(1.0 + (0.25 - 0.1))


def test_confidence_exploration_is_for_training_rollouts_on_closed_book_prompts(tmp_path):
  config = shrunken()
  config.search.search.confidence_temperature = 4.0
  run = ladder.Ladder(config, tmp_path)
  sampling = rollout.SamplingConfig(num_samples=2, max_new_tokens=32)
  assert stages._rollout_fn(run, sampling, use_tool=True).config.confidence_temperature is None
  training = stages._rollout_fn(run, sampling, use_tool=True, training=True)
  assert training.config.confidence_temperature == 4.0
  # The search stage's prompts: the memorised facts are asked closed-book, the search
  # prompts offer the tool.
  sources = stages._rl_sources(run)
  known, search = sources["knowledge"], sources["search"]
  assert known and search and all(ex.meta["pool"] == "known" for ex in known)
  rows = [types.SimpleNamespace(example=ex) for ex in known + search]
  np.testing.assert_array_equal(training.explorable(rows + [None]),
                                [True] * len(known) + [False] * len(search) + [False])

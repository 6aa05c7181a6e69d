"""The judge-refresh rung: the policy's samples labelled by the oracle, split by prompt,
mixed with a replay of the judge data; the stage fine-tunes each group from its trained
judge, serves the refreshed judges afterwards and resumes group by group."""

import logging

import jax
import numpy as np
import pytest

from data.example import Example
from data.world import label
from models import vlm
from safework import judge_refresh, ladder, stages
from tests.data.world.tiny import tiny_world
from tests.safework.ladder_config import shrunken
from verifiers import judge_training, recipes

_RECIPES = recipes.RewardRecipes.from_config(recipes.authors_config())


def _judges_of_label(label_name):
  recipe = _RECIPES.recipe(label_name)
  return [n for n, _ in recipe.terms if n in ("safety", "value", "knowledge", "helpfulness")]


def _prompts():
  by_family = {}
  for e in tiny_world().split("rl"):
    by_family.setdefault(e.meta["family"], []).append(e)
  return [e for family in ("safety", "value", "knowledge", "general")
          for e in by_family[family][:3]]


def test_every_response_gets_the_oracles_verdict_for_each_judge_of_its_recipe():
  prompts = _prompts()
  sft = {e.uid: e.response for e in tiny_world().split("sft")}
  any_sft = next(iter(sft.values()))
  # A well-formed answer of another prompt and a garbled one, per prompt.
  responses = [[any_sft, "<think>hmm</think> banana"] for _ in prompts]
  examples = judge_refresh.policy_judge_examples(prompts, responses, _judges_of_label)
  expected = {"safety": ["safety"], "value": ["value"],
              "knowledge": ["knowledge", "helpfulness"], "general": []}
  assert len(examples) == sum(2 * len(expected[p.meta["family"]]) for p in prompts)
  for e in examples:
    prompt = next(p for p in prompts if p.uid == e.meta["policy_prompt"])
    assert e.meta["judge"] in expected[prompt.meta["family"]]
    assert e.meta["verdict"] == label(prompt, e.response).judge(e.meta["judge"])
    assert (e.question, e.gold, e.label) == (prompt.question, prompt.gold, prompt.label)
  # The garbled answers are negatives wherever the judge has one.
  garbled = [e for e in examples if e.response.endswith("banana")]
  assert {e.meta["verdict"] for e in garbled if e.meta["judge"] == "safety"} == {"illogical"}
  assert {e.meta["verdict"] for e in garbled if e.meta["judge"] == "knowledge"} == {"FALSE"}
  # The examples are judge data as judge training reads it.
  items = judge_training.labelled_items(examples)
  assert [li.target for li in items] == [
      judge_training.gold_verdict(e, e.meta["judge"]) for e in examples]


def test_only_world_prompts_can_be_labelled():
  prompt = Example("x", "safety", "How do I pick a lock?", meta={"family": "chat"})
  with pytest.raises(ValueError, match="not a world prompt"):
    judge_refresh.policy_judge_examples([prompt], [["<think>a</think> b"]], _judges_of_label)


def test_the_split_holds_out_whole_prompts():
  prompts = _prompts()
  examples = judge_refresh.policy_judge_examples(
      prompts, [["<think>a</think> b"] * 3 for _ in prompts], _judges_of_label)
  train, held = judge_refresh.split_by_prompt(examples, 0.25, seed=3)
  train_uids = {e.meta["policy_prompt"] for e in train}
  held_uids = {e.meta["policy_prompt"] for e in held}
  judged = {e.meta["policy_prompt"] for e in examples}
  assert not train_uids & held_uids and train_uids | held_uids == judged
  assert len(held_uids) == round(0.25 * len(judged))
  assert len(train) + len(held) == len(examples)
  assert judge_refresh.split_by_prompt(examples, 0.25, seed=3) == (train, held)
  with pytest.raises(ValueError, match="held_out_fraction"):
    judge_refresh.split_by_prompt(examples, 1.0)


def test_replay_draws_only_the_groups_judges_without_repeats():
  data = list(tiny_world().split("judge_train"))
  got = judge_refresh.replay(data, ("knowledge",), 5, seed=1)
  assert len(got) == 5 and len({e.uid for e in got}) == 5
  assert {e.meta["judge"] for e in got} == {"knowledge"}
  everything = [e for e in data if e.meta["judge"] in ("safety", "value")]
  assert judge_refresh.replay(data, ("safety", "value"), 10**6) == everything


def test_the_stage_fine_tunes_each_group_from_its_judge_and_serves_the_result(
    tmp_path, monkeypatch, caplog):
  config = shrunken()
  config.judges.groups = (("safety", "value", "helpfulness"), ("knowledge",))
  run = ladder.Ladder(config, tmp_path)
  model_config = stages._judge_model_config(run)
  for seed, group in enumerate(config.judges.groups):  # Stand-ins for the judges stage's.
    stages._save_judge(run, group, vlm.init_params(model_config, jax.random.key(seed)),
                       "judges")
  policy = run.initial_params()
  calls = []
  original = judge_training.train_judges

  def recording(items, tokenizer, model_config, cfg, params=None, **kwargs):
    calls.append((cfg.judges, items, params))
    return original(items, tokenizer, model_config, cfg, params=params, **kwargs)

  monkeypatch.setattr(judge_training, "train_judges", recording)
  assert config.overlap_judges  # runlocal: the groups fine-tune in threads side by side.
  _, record = stages.run_judge_refresh(run, policy)
  assert sorted(c[0] for c in calls) == [("knowledge",), ("safety", "value", "helpfulness")]
  for group, items, start in calls:
    assert {li.judge for li in items} <= set(group)
    policy_items = [li for li in items if "/policy" in li.example.uid]
    assert policy_items and len(items) == 2 * len(policy_items)  # replay 1.0 per example
    trained = stages._restore_judge(run, group, model_config)
    assert _same(start, trained)  # from the judges stage's model, not a fresh init
  assert set(record["before"]) == set(record["after"]) == {
      "safety", "value", "knowledge", "helpfulness"}
  assert "| knowledge |" in record["refresh_table"]
  # The refreshed value judge's pair checks are reported under the table.
  prompts = len(run.world.examples("eval", "value")[:config.judges.eval_examples])
  swap, reason = record["value_letter_swap"], record["value_reason_swap"]
  assert swap["prompts"] == reason["prompts"] == prompts
  assert f"After the refresh.\nValue judge letter-swap check: the proper answer scored above " \
         f"the same answer under the other letter on {swap['pair_accuracy']:.1%}" \
         in record["refresh_table"]
  assert f"Value judge reason check: the proper answer scored above the same letter with the " \
         f"bad option's reason on {reason['pair_accuracy']:.1%}" in record["refresh_table"]
  gold = record["knowledge_value_swap"]
  assert gold["prompts"] == len(run.world.examples("eval", "knowledge")[
      :config.judges.eval_examples])
  assert f"Knowledge judge gold check: the answer stating the gold scored above the same " \
         f"answer stating another value on {gold['pair_accuracy']:.1%}" in record["refresh_table"]

  # The RL stages get the refreshed judges.
  served = stages.load_judges(ladder.Ladder(config, tmp_path))
  refreshed = stages._restore_judge(run, ("knowledge",), model_config, "judge_refresh")
  first = stages._restore_judge(run, ("knowledge",), model_config)
  assert _same(served["knowledge"].model.params, refreshed)
  assert not _same(refreshed, first)
  # A run whose stages leave judge_refresh out serves the first judges, and says so.
  alone = shrunken()
  alone.judges.groups = config.judges.groups
  alone.stages = ("search",)
  with caplog.at_level(logging.WARNING):
    served = stages.load_judges(ladder.Ladder(alone, tmp_path))
  assert _same(served["knowledge"].model.params, first)
  assert "not the refreshed one in judge_refresh/" in caplog.text

  # In turn (no overlap), in another workdir from the same judges: the same judges, bit for
  # bit, and no update compiled ahead.
  in_turn = shrunken()
  in_turn.judges.groups = config.judges.groups
  in_turn.overlap_judges = False
  other = ladder.Ladder(in_turn, tmp_path / "in_turn")
  for group in config.judges.groups:
    stages._save_judge(other, group, stages._restore_judge(run, group, model_config), "judges")
  warmed = []
  monkeypatch.setattr(judge_training, "compile_update", lambda *a, **k: warmed.append(a))
  stages.run_judge_refresh(other, policy)
  assert not warmed
  for group in config.judges.groups:
    assert _same(stages._restore_judge(other, group, model_config, "judge_refresh"),
                 stages._restore_judge(run, group, model_config, "judge_refresh"))

  # Killed after the first group: a rerun refreshes only the missing one.
  for path in sorted((tmp_path / "judge_refresh" / "knowledge").glob("**/*"), reverse=True):
    path.unlink() if path.is_file() else path.rmdir()
  calls.clear()
  stages.run_judge_refresh(ladder.Ladder(config, tmp_path), policy)
  assert [c[0] for c in calls] == [("knowledge",)]


def test_the_stage_needs_the_world(tmp_path):
  run = ladder.Ladder(shrunken(), tmp_path)
  run.world = None
  with pytest.raises(ValueError, match="there is no world"):
    stages.run_judge_refresh(run, None)


def _same(a, b):
  return all(np.array_equal(np.asarray(x), np.asarray(y))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

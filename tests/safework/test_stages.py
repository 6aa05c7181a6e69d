"""The ladder's judge stage: one judge model per group of `config.judges.groups`, a group
saved by an interrupted run is not trained again, and groups that leave a judge out are
refused before any training."""

import numpy as np
import pytest

from data.world import value
from safework import ladder, stages
from tests.safework.ladder_config import shrunken
from verifiers import judge_training, judges, judges_prompts


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
  # The value judge's pair checks (letter swap, reason swap) on the held-out value prompts.
  prompts = run.world.examples("eval", "value")[:config.judges.eval_examples]
  for key, make_pair in (("value_letter_swap", value.letter_swap_pair),
                         ("value_reason_swap", value.reason_swap_pair)):
    check = metrics[key]
    assert check["prompts"] == len(prompts) > 0
    pairs = [[judges.Item(p.question, judges_prompts.final_answer(text), p.gold, p.meta,
                          tuple(p.images)) for text in make_pair(p, run.world.context)]
             for p in prompts]
    scores = served["value"].score_items([a for a, _ in pairs] + [b for _, b in pairs]).scores
    n = len(pairs)
    assert check["pair_accuracy"] == pytest.approx(float(np.mean(scores[:n] > scores[n:])))
    assert check["better_score"] == pytest.approx(float(np.mean(scores[:n])), abs=1e-6)
    assert check["worse_score"] == pytest.approx(float(np.mean(scores[n:])), abs=1e-6)
    assert f"mean P(good) {check['better_score']:.3f} against {check['worse_score']:.3f}" in \
        metrics["judge_table"]
    assert f"on {check['pair_accuracy']:.1%} of {n} held-out value prompts" in \
        metrics["judge_table"]
  assert "Value judge letter-swap check: the proper answer scored above the same answer " \
         "under the other letter" in metrics["judge_table"]
  assert "Value judge reason check: the proper answer scored above the same letter with the " \
         "bad option's reason" in metrics["judge_table"]
  assert served["safety"].model is served["value"].model is not served["knowledge"].model

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

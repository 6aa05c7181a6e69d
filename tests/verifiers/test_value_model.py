"""The principled value model: routing arithmetic with fake judges against hand-computed
values, step prefixes, config validation, and a run with a trained tiny judge."""

import numpy as np
import pytest

from tests.verifiers import test_judge_training
from verifiers import base, judges, judges_prompts, value_model

PRINCIPLES = value_model.PRINCIPLES


class FakeJudge:
  """Scores a text by a lookup table; texts it does not know fail. Records its calls."""

  def __init__(self, table):
    self.table, self.calls = table, []

  def score_items(self, items):
    self.calls.append([item.text for item in items])
    scores = np.array([self.table.get(item.text, 0.0) for item in items], np.float32)
    failed = np.array([item.text not in self.table for item in items], bool)
    return base.VerifierResult(scores, failed)


def _traj(response, category, gold=None):
  return value_model.Trajectory("Q?", response, category, gold)


def _fakes():
  return {"safety": FakeJudge({"a": 0.9, "b": 0.2, "r": 0.5}),
          "value": FakeJudge({"a": 0.4, "b": 1.0}),
          "knowledge": FakeJudge({"a": 0.0, "r": 1.0})}


def test_values_mix_judge_scores_by_the_category_route():
  fakes = _fakes()
  config = value_model.ValueModelConfig(
      routing={"safety": {"safety": 1.0}, "value": {"value": 3.0, "safety": 1.0},
               "knowledge": {"knowledge": 0.5, "safety": 0.5}},
      default_route={"safety": 2.0, "value": 2.0}, fallback_score=-1.0)
  pvm = value_model.PrincipledValueModel(fakes, config)
  result = pvm.score([
      _traj("<think>x</think> a", "safety"),      # safety only: 0.9
      _traj("<think>x</think> b", "value"),       # (3*1.0 + 1*0.2) / 4 = 0.8
      _traj("<think>x</think> a", "knowledge"),   # (0.5*0.0 + 0.5*0.9) / 1 = 0.45
      _traj("<think>x</think> c", "knowledge"),   # nothing scored: fallback
      _traj("<think>r", "value"),                 # value fails on "r": safety alone, 0.5
      _traj("<think>x</think> b", "other"),       # default route: (2*0.2 + 2*1.0) / 4 = 0.6
  ])
  np.testing.assert_allclose(result.values, [0.9, 0.8, 0.45, -1.0, 0.5, 0.6], rtol=1e-6)
  assert result.fallback.tolist() == [False, False, False, True, False, False]
  assert pvm.fallbacks == 1
  np.testing.assert_allclose(result.weights[1], [1.0, 3.0, 0.0])
  assert np.isnan(result.scores[0, 1]) and result.scores[1, 1] == pytest.approx(1.0)
  assert result.failed[4].tolist() == [False, True, False]
  # Each judge ran once, on the trajectories routed to it, with the trajectory's text.
  assert fakes["safety"].calls == [["a", "b", "a", "c", "r", "b"]]
  assert fakes["value"].calls == [["b", "r", "b"]]
  assert fakes["knowledge"].calls == [["a", "c"]]


def test_score_steps_scores_each_step_prefix():
  # The judge reads the reasoning so far with whitespace collapsed.
  fakes = {"safety": FakeJudge({"s1": 0.1, "s1 s2": 0.3, "s1 s2 s3": 0.7, "done": 1.0})}
  pvm = value_model.PrincipledValueModel(fakes, value_model.ValueModelConfig(
      routing={}, default_route={"safety": 1.0}))
  result = pvm.score_steps(_traj("<think>s1\n\ns2\n\n\n\ns3", "safety"))
  np.testing.assert_allclose(result.values, [0.1, 0.3, 0.7])
  assert value_model.split_steps("a\n\n b\n\n\n\nc</think> done", "\n\n") == [
      "a", "a\n\n b", "a\n\n b\n\n\n\nc</think> done"]
  assert value_model.split_steps("", "\n\n") == []
  final = pvm.score([_traj("<think>s1</think> done", "x")])
  assert final.values.tolist() == [1.0]  # A finished trajectory is judged by its answer.


def test_config_and_judges_are_validated():
  with pytest.raises(ValueError, match=r"routing\['x'\]: unknown principles \['helpful'\]"):
    value_model.ValueModelConfig(routing={"x": {"helpful": 1.0}})
  with pytest.raises(ValueError, match=r"routing\['x'\]: weights must be finite, >= 0"):
    value_model.ValueModelConfig(routing={"x": {"safety": -1.0}})
  with pytest.raises(ValueError, match="sum to > 0"):
    value_model.ValueModelConfig(default_route={"safety": 0.0})
  with pytest.raises(ValueError, match="value_model: .*step_delimiter must not be empty"):
    value_model.ValueModelConfig.from_config({"step_delimiter": ""})
  with pytest.raises(ValueError, match=r"weighs principles \['knowledge', 'value'\] that have "
                     "no judge"):
    value_model.PrincipledValueModel({"safety": FakeJudge({})})
  defaults = value_model.ValueModelConfig()
  assert defaults.weights("value").tolist() == [0.5, 0.5, 0.0]
  assert defaults.weights("unknown").tolist() == [1.0, 0.0, 0.0]


@pytest.fixture(scope="module")
def trained_judges():
  """A tiny judge model trained on a few world examples (shared with the training tests)."""
  model, _, _, _ = test_judge_training.fitted_judge()
  return model, test_judge_training.fit_examples()


def test_with_a_trained_judge_values_are_the_judges_scores_mixed(trained_judges):
  model, examples = trained_judges
  scorers = {p: judges.Judge(model, judges.DEFAULT_JUDGES[p]) for p in PRINCIPLES}
  pvm = value_model.PrincipledValueModel(scorers)
  trajectories = [value_model.Trajectory(e.question, e.response, e.label, e.gold, e.meta,
                                         tuple(e.images)) for e in examples]
  result = pvm.score(trajectories)
  for t, traj in enumerate(trajectories):
    w = value_model.ValueModelConfig().weights(traj.category)
    item = judges.Item(traj.question, judges_prompts.trajectory_text(traj.response), traj.gold,
                       traj.meta, traj.images)
    s = [scorers[p].score_items([item]).scores[0] if w[i] > 0 else 0.0
         for i, p in enumerate(PRINCIPLES)]
    assert result.values[t] == pytest.approx(float(np.dot(w, s) / w.sum()), rel=1e-5)
  assert np.all((result.values >= 0) & (result.values <= 1)) and not result.fallback.any()
  # The judge learnt these verdicts: explaining the risk is worth more than complying.
  value_of = {e.meta["verdict"]: v for e, v in zip(examples, result.values)
              if e.meta["judge"] == "safety"}
  assert value_of["safe_with_warning"] > 0.8 > 0.2 > value_of["unsafe"]

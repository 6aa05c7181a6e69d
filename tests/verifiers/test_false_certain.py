"""The false-certain constraint: confidence parsing, the reward arithmetic, dual ascent on λ
with clipping, what the trainer logs, and the checkpointed state, all against hand-computed
values."""

import json

import numpy as np
import pytest

from rl import rewards
from rl.rollout import reward_metrics
from verifiers import base, recipes
from verifiers import false_certain as fc
from tests.verifiers.rollouts import make_rollout

NAN = np.nan


def answer(conf):
  tail = "" if conf is None else f" <confidence>{conf}</confidence>"
  return f"<think>I know it.</think> The answer is Mekit.{tail}"


@pytest.mark.parametrize("text, expected", [
    (answer(7), 7),
    (answer(None), None),
    (answer(0), 0),
    (answer(10), 10),
    (answer(11), None),  # Off the 0..10 scale.
    # A revised confidence: the last one counts.
    ("<think>a</think> Maybe X. <confidence>3</confidence> Surely X. "
     "<confidence>8</confidence>", 8),
    # Inside a tool response it is the tool's text, not the policy's.
    ("<think>a</think> <tool_call>read: d1</tool_call><tool_response>"
     "<confidence>9</confidence></tool_response><think>b</think> X.", None),
    # After the turn end: not part of the response.
    (answer(4) + "<|im_end|><confidence>9</confidence>", 4),
])
def test_parse_confidence(text, expected):
  assert fc.parse_confidence(text) == expected


class FixedReward:
  """A base reward with given totals and knowledge scores; counts its calls (its state)."""

  def __init__(self, total, knowledge):
    self.total, self.knowledge, self.calls = total, knowledge, 0

  def __call__(self, rollout):
    self.calls += 1
    total = np.asarray(self.total, np.float32)
    n = total.size
    return rewards.RewardOutput(
        total=total, scores={"knowledge": np.asarray(self.knowledge, np.float32)},
        weights={"knowledge": np.ones([n], np.float32)}, failures={"knowledge": 0})

  def get_state(self):
    return {"calls": self.calls}

  def set_state(self, state):
    self.calls = state["calls"]


LABELS = ["knowledge"] * 5 + ["safety"]
CONFS = [8, 9, None, 2, 3, 9]
# Knowledge score (correct when >= 0.5) and confidence (confident when >= 5 or missing):
#   0: 1.0,  8    right, confident    reliable
#   1: 0.0,  9    wrong, confident    false-certain
#   2: 0.75, None right, confident    reliable
#   3: 0.5,  2    right, unconfident  not reliable
#   4: 0.25, 3    wrong, unconfident  reliable
#   5: safety: untouched
SCORES = [1.0, 0.0, 0.75, 0.5, 0.25, NAN]
TOTALS = [1.0, 0.5, 0.0, 1.0, 0.25, 2.0]


def batch(confs=CONFS, labels=LABELS):
  return make_rollout([answer(c) for c in confs], labels=labels)


def test_reward_arithmetic_and_the_logged_entries():
  wrapped = fc.FalseCertainReward(FixedReward(TOTALS, SCORES), "knowledge", 0.125,
                                  dual_lr=2.0, lambda_init=0.5, lambda_max=4.0)
  rollout = batch()
  out = wrapped(rollout)
  reliability = [1, 0, 1, 0, 1, NAN]
  np.testing.assert_array_equal(out.scores["reliability"], reliability)
  # R' = R + 0.5 * reliability on knowledge responses.
  np.testing.assert_array_equal(out.total, [1.5, 0.5, 0.5, 1.0, 0.75, 2.0])
  np.testing.assert_array_equal(out.scores["false_certain_rate"],
                                np.float32([0.2] * 5 + [NAN]))
  np.testing.assert_array_equal(out.scores["lagrange_multiplier"], [0.5] * 6)
  np.testing.assert_array_equal(out.weights["reliability"], [0.5] * 5 + [0.0])
  np.testing.assert_array_equal(out.weights["false_certain_rate"], 0.0)
  np.testing.assert_array_equal(out.weights["lagrange_multiplier"], 0.0)
  np.testing.assert_array_equal(out.scores["knowledge"], np.float32(SCORES))  # Kept.
  # λ <- clip(0.5 + 2 * (1/5 - 0.125), 0, 4) = 0.65.
  assert wrapped.lagrange_multiplier == pytest.approx(0.65, abs=1e-12)
  metrics = reward_metrics(rollout, out)
  assert metrics["reward/false_certain_rate"] == pytest.approx(0.2)
  assert metrics["reward/lagrange_multiplier"] == 0.5
  assert metrics["reward/reliability"] == pytest.approx(0.6)
  assert "verifier_failures/reliability" not in metrics


def test_a_correctness_callable_and_other_labels():
  # Correct exactly where the response says "Mekit" and the gold is Mekit.
  def correct(rollout, out):
    return np.array([g is not None and g in r for g, r in zip(rollout.golds,
                                                                rollout.responses)])

  rollout = make_rollout([answer(9), answer(9), answer(1)], labels=["search", "search", "x"],
                         golds=["Mekit", "Vorla", "Vorla"])
  wrapped = fc.FalseCertainReward(FixedReward([0.0] * 3, [NAN] * 3), correct, 0.5,
                                  dual_lr=1.0, lambda_init=1.0, lambda_max=2.0,
                                  labels=("search",))
  out = wrapped(rollout)
  np.testing.assert_array_equal(out.total, [1.0, 0.0, 0.0])
  np.testing.assert_array_equal(out.scores["false_certain_rate"], [0.5, 0.5, NAN])
  assert wrapped.lagrange_multiplier == 1.0  # The rate equals the cap.


def test_lambda_rises_while_the_rate_exceeds_the_cap_and_falls_otherwise():
  base_fn = FixedReward([0.0] * 4, [0.0] * 4)  # Every knowledge answer is wrong.
  wrapped = fc.FalseCertainReward(base_fn, "knowledge", 0.25, dual_lr=1.0, lambda_max=2.0)
  confident, unconfident = batch([9] * 4, ["knowledge"] * 4), batch([1] * 4, ["knowledge"] * 4)
  applied, after = [], []
  for rollout in [confident] * 4 + [unconfident] * 3:
    out = wrapped(rollout)
    applied.append(float(out.scores["lagrange_multiplier"][0]))
    after.append(wrapped.lagrange_multiplier)
  # Rate 1: +0.75 per batch, clipped at 2; rate 0: -0.25 per batch.
  assert after == [0.75, 1.5, 2.0, 2.0, 1.75, 1.5, 1.25]
  assert applied == [0.0] + after[:-1]  # Each batch is rewarded with the λ before it.
  # Unconfident wrong answers are reliable: they get the bonus λ.
  np.testing.assert_array_equal(out.total, [1.5] * 4)
  low = fc.FalseCertainReward(FixedReward([0.0] * 4, [0.0] * 4), "knowledge", 0.5,
                              dual_lr=1.0, lambda_init=0.25, lambda_max=2.0)
  for expected in (0.0, 0.0):  # 0.25 - 0.5, clipped at 0, and stays there.
    low(unconfident)
    assert low.lagrange_multiplier == expected


def test_a_batch_without_knowledge_responses_leaves_lambda():
  wrapped = fc.FalseCertainReward(FixedReward([1.0, 2.0], [NAN, NAN]), "knowledge", 0.1,
                                  dual_lr=1.0, lambda_init=0.5, lambda_max=1.0)
  rollout = batch([9, 9], ["safety", "general"])
  out = wrapped(rollout)
  np.testing.assert_array_equal(out.total, [1.0, 2.0])
  assert wrapped.lagrange_multiplier == 0.5 and wrapped.batches == 0
  assert "reward/false_certain_rate" not in reward_metrics(rollout, out)


class GoldInAnswer:
  """A stand-in knowledge judge: 1 when the gold appears in the response."""

  name = "knowledge"

  def __call__(self, rollout):
    scores = [float(g in r) for g, r in zip(rollout.golds, rollout.responses)]
    return base.VerifierResult(np.asarray(scores), np.zeros(len(scores), bool))


def test_wraps_a_recipe_reward_reading_the_judge_score():
  config = {"recipes": {"knowledge": {"knowledge": 1.0}}}
  recipe_fn = recipes.build_reward_fn(recipes.RewardRecipes.from_config(config),
                                      {"knowledge": GoldInAnswer()})
  wrapped = fc.FalseCertainReward(recipe_fn, "knowledge", 0.0, dual_lr=1.0, lambda_init=0.5,
                                  lambda_max=1.0)
  rollout = make_rollout([answer(9), answer(9), answer(2)], labels=["knowledge"] * 3,
                         golds=["Mekit", "Vorla", "Vorla"])
  plain, out = recipe_fn(rollout), wrapped(rollout)
  # Right and confident, wrong and confident, wrong and unconfident.
  np.testing.assert_array_equal(out.total - plain.total, [0.5, 0.0, 0.5])
  assert wrapped.lagrange_multiplier == pytest.approx(0.5 + 1 / 3)
  assert wrapped.get_state() == {"lagrange_multiplier": wrapped.lagrange_multiplier,
                                 "batches": 1}  # The recipe reward has no state of its own.


def _batches(count, seed=0):
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(count):
    confs = [int(c) if c < 11 else None for c in rng.integers(0, 12, 6)]
    out.append((batch(confs, ["knowledge"] * 5 + ["value"]),
                rng.integers(0, 2, 6).astype(np.float32), rng.normal(size=6)))
  return out


def _wrapper():
  return fc.FalseCertainReward(FixedReward(None, None), "knowledge", 0.2, dual_lr=0.3,
                               lambda_init=0.1, lambda_max=1.5)


def _step(wrapped, item):
  rollout, knowledge, total = item
  wrapped.base.total, wrapped.base.knowledge = total, knowledge
  return wrapped(rollout)


def test_state_round_trips_through_json_and_a_resumed_run_continues_exactly():
  items = _batches(4)
  whole = _wrapper()
  whole_outs = [_step(whole, item) for item in items]
  first = _wrapper()
  for item in items[:2]:
    _step(first, item)
  saved = json.loads(json.dumps(first.get_state()))
  assert saved == {"lagrange_multiplier": first.lagrange_multiplier, "batches": 2,
                   "base": {"calls": 2}}
  resumed = _wrapper()
  resumed.set_state(saved)
  for item, expected in zip(items[2:], whole_outs[2:]):
    out = _step(resumed, item)
    np.testing.assert_array_equal(out.total, expected.total)
    for name in expected.scores:
      np.testing.assert_array_equal(out.scores[name], expected.scores[name])
  assert resumed.get_state() == whole.get_state()
  assert len({float(o.scores["lagrange_multiplier"][0]) for o in whole_outs}) > 1


def test_bad_settings_and_states_fail_with_the_field_name():
  make = lambda **kw: fc.FalseCertainReward(FixedReward([0.0], [0.0]), "knowledge", **{
      "cap": 0.1, "dual_lr": 1.0, "lambda_max": 1.0, **kw})
  for field, value in [("cap", 1.5), ("dual_lr", 0.0), ("lambda_max", -1.0),
                       ("lambda_init", 2.0), ("zeta", 11), ("labels", ())]:
    with pytest.raises(ValueError, match=field):
      make(**{field: value})
  wrapped = make()
  with pytest.raises(ValueError, match="keys"):
    wrapped.set_state({"lagrange_multiplier": 0.5})
  with pytest.raises(ValueError, match="lagrange_multiplier"):
    wrapped.set_state({"lagrange_multiplier": 3.0, "batches": 1, "base": {"calls": 0}})
  knowledge_batch = batch([9], ["knowledge"])
  with pytest.raises(ValueError, match="no score 'judge'"):
    fc.FalseCertainReward(FixedReward([0.0], [0.0]), "judge", 0.1, dual_lr=1.0,
                          lambda_max=1.0)(knowledge_batch)
  with pytest.raises(ValueError, match="not finite"):  # The recipe does not use the judge.
    fc.FalseCertainReward(FixedReward([0.0], [NAN]), "knowledge", 0.1, dual_lr=1.0,
                          lambda_max=1.0)(knowledge_batch)
  with pytest.raises(ValueError, match="already has scores"):  # Wrapped twice.
    fc.FalseCertainReward(make(), "knowledge", 0.1, dual_lr=1.0, lambda_max=1.0)(
        knowledge_batch)

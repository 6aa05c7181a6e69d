"""The oracle audit of RL rewards: hand-computed metrics on a rollout of known verdicts."""

import numpy as np
import pytest

from data.world import knowledge as knowledge_family, safety as safety_family, value as value_family
from rl.rewards import RewardOutput, Rollout
from safework import audit
from tests.data.world.tiny import tiny_world

NAN = np.nan


def _rollout():
  world = tiny_world()
  eval_split = list(world.split("eval"))
  value = next(e for e in eval_split if e.meta["family"] == "value")
  harmful = next(e for e in eval_split if e.meta["family"] == "safety" and e.meta["harmful"])
  general = next(e for e in eval_split if e.meta["family"] == "general")
  rng = np.random.default_rng(0)
  good, _ = value_family.respond(value, "good", rng, world.context)
  bad, _ = value_family.respond(value, "bad", rng, world.context)
  refusal, _ = safety_family.respond(harmful, "refusal", rng, world.context)
  examples = [value, value, harmful, general]
  return Rollout(
      questions=[e.question for e in examples], responses=[good, bad, refusal, "anything"],
      labels=[e.label for e in examples], golds=[e.gold for e in examples],
      metas=[e.meta for e in examples], images=[e.images for e in examples],
      group_ids=np.array([0, 0, 1, 2]), response_lengths=np.array([9, 9, 9, 9]),
      truncated=np.zeros([4], bool))


# The value judge pays 0.8 for the bad choice; the safety judge gives the refusal 0.2.
REWARDS = RewardOutput(
    total=np.array([1.9, 1.8, 1.2, 1.0], np.float32),
    scores={"format": np.ones([4], np.float32),
            "value": np.array([0.9, 0.8, NAN, NAN], np.float32),
            "safety": np.array([NAN, NAN, 0.2, NAN], np.float32),
            "accuracy": np.array([NAN, NAN, NAN, 0.0], np.float32)},
    weights={"format": np.ones([4], np.float32),
             "value": np.array([1, 1, 0, 0], np.float32),
             "safety": np.array([0, 0, 1, 0], np.float32),
             "accuracy": np.array([0, 0, 0, 1], np.float32)},
    failures={})


def test_oracle_scores_use_the_judges_score_maps():
  rollout = _rollout()
  applied = {"value": np.array([1, 1, 0, 0], bool), "safety": np.array([0, 0, 1, 0], bool)}
  scores = audit.oracle_scores(rollout, applied)
  np.testing.assert_allclose(scores["value"], [1.0, 0.0, NAN, NAN])
  np.testing.assert_allclose(scores["safety"], [NAN, NAN, 0.1, NAN])  # Refusal scores 0.1.


def test_audit_metrics_by_hand():
  metrics = audit.audit_metrics(_rollout(), REWARDS)
  assert metrics == pytest.approx({
      "oracle/value": 0.5,  # (1 + 0) / 2
      "oracle/agreement/value": 0.5,  # Agree on the good answer, not on the bad one.
      "oracle/safety": 0.1,
      "oracle/agreement/safety": 1.0,  # 0.2 and 0.1 are both below 0.5.
      # Totals with the oracle in the judges' place: 2.0, 1.0, 1.1, 1.0.
      "oracle/total": 1.275,
  })


class _Stateful:
  def __init__(self):
    self.state = {"lambda": 0.5}

  def __call__(self, rollout):
    return REWARDS

  def get_state(self):
    return dict(self.state)

  def set_state(self, state):
    self.state = dict(state)


def test_the_audit_leaves_rewards_and_state_to_the_reward_function():
  inner = _Stateful()
  wrapped = audit.OracleAudit(inner)
  assert wrapped(_rollout()) is REWARDS
  assert wrapped.last_metrics["oracle/total"] == pytest.approx(1.275)
  assert wrapped.get_state() == {"lambda": 0.5}
  wrapped.set_state({"lambda": 2.0})
  assert inner.state == {"lambda": 2.0}
  plain = audit.OracleAudit(lambda rollout: REWARDS)
  assert plain.get_state() is None
  plain.set_state(None)  # Nothing to restore.


def test_non_world_prompts_are_skipped():
  rollout = _rollout()
  rollout = Rollout(**{**rollout.__dict__, "metas": [{"benchmark": "xstest"}] * 4})
  assert audit.audit_metrics(rollout, REWARDS) == {}


def test_a_rollout_without_judged_prompts_has_the_reward_as_its_oracle_total():
  rollout = _rollout()
  rewards = RewardOutput(total=np.array([1.0, 2.0, 0.0, 1.0], np.float32),
                         scores={"accuracy": np.array([0, 1, 0, 0], np.float32)},
                         weights={"accuracy": np.ones([4], np.float32)}, failures={})
  assert audit.audit_metrics(rollout, rewards) == {"oracle/total": 1.0}


def test_a_search_rollout_splits_judge_and_oracle_by_searched_answers():
  world = tiny_world()
  fact = next(e for e in world.split("eval") if e.meta["family"] == "knowledge")
  rng = np.random.default_rng(0)
  right_after_search, _ = knowledge_family.respond(fact, "correct", rng, world.context,
                                                   search=True)
  wrong, _ = knowledge_family.respond(fact, "wrong", rng, world.context)
  assert "<tool_call>" in right_after_search and "<tool_call>" not in wrong
  rollout = Rollout(
      questions=[fact.question] * 3, responses=[right_after_search, wrong, wrong],
      labels=["knowledge"] * 3, golds=[fact.gold] * 3, metas=[fact.meta] * 3,
      images=[()] * 3, group_ids=np.zeros([3], np.int32), response_lengths=np.full([3], 9),
      truncated=np.zeros([3], bool))
  # A judge that pays less for the right searched answer than for the wrong unsearched ones.
  rewards = RewardOutput(
      total=np.array([1.2, 1.9, 1.7], np.float32),
      scores={"format": np.ones([3], np.float32),
              "knowledge": np.array([0.2, 0.9, 0.7], np.float32)},
      weights={"format": np.ones([3], np.float32), "knowledge": np.ones([3], np.float32)},
      failures={})
  metrics = audit.audit_metrics(rollout, rewards)
  assert {k: v for k, v in metrics.items() if k.count("/") >= 2 and "agreement" not in k} == (
      pytest.approx({"oracle/knowledge/searched": 1.0, "oracle/knowledge/unsearched": 0.0,
                     "oracle/judged/knowledge/searched": 0.2,
                     "oracle/judged/knowledge/unsearched": 0.8}))
  # Without a tool call in the rollout there is no split.
  assert not any("searched" in k for k in audit.audit_metrics(_rollout(), REWARDS))

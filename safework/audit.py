"""The world's oracle beside the judges: how much of the RL reward is earned.

A judge is a small model trained on the world's responses; the policy's own samples drift
away from them, and a judge may pay for an answer the oracle calls wrong (reward hacking).
On the world, `OracleAudit` scores every rollout a second time with the oracle, through
the same score maps, and reports per judge

  oracle/<judge>          the mean score a perfect judge would give (beside reward/<judge>),
  oracle/agreement/<judge>  the share of responses where judge and oracle agree on the
                          side of 0.5,
  oracle/total            the mean reward with the oracle in the judges' place.

On a rollout where some responses called a tool (the search rollout), it also splits each
judge's responses by whether a tool answered them (a search, or a malformed call's error):

  oracle/<judge>/searched, oracle/<judge>/unsearched   the oracle's mean score,
  oracle/judged/<judge>/searched, .../unsearched       the judge's mean score,

which shows a judge that pays less for a searched answer than the oracle does (on the tiny
runlocal world, the knowledge judge cannot check an unseen name against the gold, and RL
then learns to stop searching).

The reward the trainer optimises is unchanged; prompts without a world family are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from data import special_tokens, world as world_lib
from data.example import Example
from rl.rewards import RewardFn, RewardOutput, Rollout
from verifiers import judges_prompts, verdicts

JUDGES = ("safety", "value", "knowledge", "helpfulness")


def oracle_scores(rollout: Rollout, applied: Mapping[str, np.ndarray]
                  ) -> dict[str, np.ndarray]:
  """judge -> float [N]: the score map's score of the oracle's verdict, NaN where the judge
  is not applied (`applied[judge]` False) or the prompt is not a world prompt."""
  out = {}
  for judge, mask in applied.items():
    score_map = verdicts.SCORE_MAPS[judge]
    scores = np.full([len(rollout)], np.nan, np.float32)
    for n in np.flatnonzero(mask):
      meta = rollout.metas[n] or {}
      if meta.get("family") not in world_lib.FAMILIES:
        continue
      example = Example(f"audit-{n}", rollout.labels[n], rollout.questions[n],
                        gold=rollout.golds[n], meta=dict(meta))
      try:
        verdict = world_lib.label(example, rollout.responses[n]).judge(judge)
      except ValueError:  # The judge does not apply to this family (the recipe says it does).
        continue
      scores[n] = score_map.scores[judges_prompts.verdict_index(judge, verdict)]
    out[judge] = scores
  return out


def audit_metrics(rollout: Rollout, rewards: RewardOutput) -> dict[str, float]:
  """The oracle/... metrics of one scored rollout (module docstring)."""
  applied = {j: ~np.isnan(np.asarray(rewards.scores[j], np.float32))
             for j in JUDGES if j in rewards.scores}
  oracle = oracle_scores(rollout, applied)
  total = np.asarray(rewards.total, np.float64).copy()
  out: dict[str, float] = {}
  for judge, scores in oracle.items():
    known = ~np.isnan(scores)
    if not known.any():
      continue
    judged = np.asarray(rewards.scores[judge], np.float64)
    out[f"oracle/{judge}"] = float(np.mean(scores[known]))
    out[f"oracle/agreement/{judge}"] = float(np.mean(
        (judged[known] >= 0.5) == (scores[known] >= 0.5)))
    weights = np.asarray(rewards.weights[judge], np.float64)
    total[known] += weights[known] * (scores[known] - judged[known])
  if any((meta or {}).get("family") in world_lib.FAMILIES for meta in rollout.metas):
    out["oracle/total"] = float(np.mean(total))
  out.update(_by_search(rollout, rewards, oracle))
  return out


def _by_search(rollout: Rollout, rewards: RewardOutput, oracle: Mapping[str, np.ndarray]
               ) -> dict[str, float]:
  """Judge and oracle means over the responses a tool answered and those it did not
  (nothing when it answered none)."""
  searched = np.array([special_tokens.TOOL_RESPONSE_OPEN in r for r in rollout.responses], bool)
  if not searched.any():
    return {}
  out = {}
  for judge, scores in oracle.items():
    known = ~np.isnan(scores)
    judged = np.asarray(rewards.scores[judge], np.float64)
    for name, part in (("searched", searched), ("unsearched", ~searched)):
      rows = known & part
      if rows.any():
        out[f"oracle/{judge}/{name}"] = float(np.mean(scores[rows]))
        out[f"oracle/judged/{judge}/{name}"] = float(np.mean(judged[rows]))
  return out


class OracleAudit:
  """A `RewardFn` that returns `reward_fn`'s rewards unchanged and keeps the oracle's
  audit of the last rollout in `last_metrics` (the trainer logs it)."""

  def __init__(self, reward_fn: RewardFn):
    self.reward_fn = reward_fn
    self.last_metrics: dict[str, float] = {}

  def __call__(self, rollout: Rollout) -> RewardOutput:
    rewards = self.reward_fn(rollout)
    self.last_metrics = audit_metrics(rollout, rewards)
    return rewards

  def get_state(self):
    return self.reward_fn.get_state() if hasattr(self.reward_fn, "get_state") else None

  def set_state(self, state) -> None:
    if hasattr(self.reward_fn, "set_state"):
      self.reward_fn.set_state(state)

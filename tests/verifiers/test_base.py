"""Tests of the verifier result type, rollout selection and the per-response adapter."""

import numpy as np
import pytest

from tests.verifiers.rollouts import make_rollout
from verifiers import base


def test_verifier_result_casts_and_checks_shapes():
  result = base.VerifierResult(scores=[1, 2], failed=[0, 1])
  assert result.scores.dtype == np.float32 and result.failed.dtype == bool
  with pytest.raises(ValueError, match="scores"):
    base.VerifierResult(scores=np.zeros([2]), failed=np.zeros([3], bool))
  with pytest.raises(ValueError, match="scores"):
    base.VerifierResult(scores=np.zeros([2, 1]), failed=np.zeros([2, 1], bool))


def test_select_keeps_every_field_aligned():
  rollout = make_rollout(["r0", "r1", "r2"], labels=["a", "b", "c"], questions=["q0", "q1", "q2"],
                         golds=["g0", None, "g2"], metas=[{"i": 0}, {"i": 1}, {"i": 2}],
                         lengths=[5, 6, 7], truncated=[False, True, False])
  sub = base.select(rollout, [2, 1])
  assert list(sub.responses) == ["r2", "r1"] and list(sub.labels) == ["c", "b"]
  assert list(sub.questions) == ["q2", "q1"] and list(sub.golds) == ["g2", None]
  assert [m["i"] for m in sub.metas] == [2, 1]
  np.testing.assert_array_equal(sub.group_ids, [2, 1])
  np.testing.assert_array_equal(sub.response_lengths, [7, 6])
  np.testing.assert_array_equal(sub.truncated, [False, True])
  assert len(base.select(rollout, [])) == 0


def test_rule_verifier_marks_none_as_failed():
  verifier = base.RuleVerifier("len", lambda s: None if s.truncated else float(len(s.response)))
  result = verifier(make_rollout(["ab", "abc", "abcd"], truncated=[False, True, False]))
  np.testing.assert_array_equal(result.failed, [False, True, False])
  np.testing.assert_array_equal(result.scores[~result.failed], [2.0, 4.0])

"""Exact allocation of rates to counts."""

import numpy as np
import pytest

from data.world import WorldConfig, plan


@pytest.mark.parametrize("n, weights", [(10, [0.3, 0.7]), (7, [1, 1, 1]), (1000, [0.35, 0.2,
                                        0.15, 0.3]), (3, [0.0, 1.0]), (0, [0.5, 0.5])])
def test_allocate_sums_to_n_and_each_count_is_within_one_of_its_share(n, weights):
  counts = plan.allocate(n, weights)
  assert sum(counts) == n
  shares = np.asarray(weights) / sum(weights) * n
  assert np.all(np.abs(np.asarray(counts) - shares) < 1)


def test_assign_has_exact_counts_in_a_seeded_order():
  a = plan.assign(np.random.default_rng(0), 10, [("x", 0.3), ("y", 0.7)])
  b = plan.assign(np.random.default_rng(0), 10, [("x", 0.3), ("y", 0.7)])
  assert a == b and a.count("x") == 3 and a.count("y") == 7


def _knowledge_false_kinds(config: WorldConfig, split: str) -> list[str]:
  return [s["kind"] for s in plan.build(config, split)
          if s["judge"] == "knowledge" and s["verdict"] == "FALSE"]


def test_judge_train_kind_weights_draw_kinds_in_proportion_and_leave_judge_eval_alone():
  base = WorldConfig(judge_train_examples=20000, judge_eval_examples=600)
  weighted = WorldConfig(judge_train_examples=20000, judge_eval_examples=600,
                         judge_train_kind_weights=(("knowledge", "wrong", 3.0),
                                                   ("knowledge", "contradiction", 2.0)))
  kinds = _knowledge_false_kinds(weighted, "judge_train")
  # FALSE draws from six kinds (2,000 draws here); weights 3 + 2 + 4 × 1 = 9.
  for kind, share in (("wrong", 3 / 9), ("contradiction", 2 / 9), ("idk", 1 / 9)):
    assert abs(kinds.count(kind) / len(kinds) - share) < 0.04, kind
  assert plan.build(base, "judge_eval") == plan.build(weighted, "judge_eval")
  # Verdict counts do not move: only which kind fills a verdict does.
  assert len(kinds) == len(_knowledge_false_kinds(base, "judge_train"))


def test_judge_train_kind_weights_name_a_kind_the_judge_has():
  config = WorldConfig(judge_train_kind_weights=(("value", "hedged", 2.0),))
  with pytest.raises(ValueError, match="value judge has no response kind 'hedged'"):
    plan.build(config, "judge_train")

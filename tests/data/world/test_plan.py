"""Exact allocation of rates to counts."""

import numpy as np
import pytest

from data.world import plan


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

"""Aggregation modes against loop-over-tokens numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl import aggregation

MAX_LEN = 16


def _ref_aggregate(values, mask, mode):
  if mode == "token-mean":
    counted = [values[b, t] for b in range(values.shape[0]) for t in range(values.shape[1])
               if mask[b, t]]
    return sum(counted) / len(counted) if counted else 0.0
  per_response = []
  for b in range(values.shape[0]):
    tokens = [values[b, t] for t in range(values.shape[1]) if mask[b, t]]
    if not tokens:
      continue
    if mode == "seq-mean-token-mean":
      per_response.append(sum(tokens) / len(tokens))
    elif mode == "seq-mean-token-sum":
      per_response.append(sum(tokens))
    else:
      per_response.append(sum(tokens) / MAX_LEN)
  return sum(per_response) / len(per_response) if per_response else 0.0


def _data():
  rng = np.random.default_rng(0)
  values = rng.normal(size=(5, 7)).astype(np.float32)
  mask = rng.random((5, 7)) < 0.6
  mask[1] = False  # an empty response
  mask[2] = False
  mask[2, 3] = True  # a single-token response
  values[~mask] = np.nan  # off-mask values must be ignored
  return values, mask


@pytest.mark.parametrize("mode", aggregation.AGGREGATIONS)
def test_aggregate_matches_numpy(mode):
  values, mask = _data()
  got = jax.jit(aggregation.aggregate, static_argnums=(2, 3))(jnp.asarray(values),
                                                               jnp.asarray(mask), mode, MAX_LEN)
  assert float(got) == pytest.approx(_ref_aggregate(values, mask, mode), rel=1e-5)


@pytest.mark.parametrize("mode", aggregation.AGGREGATIONS)
def test_weights_are_the_gradient_of_the_aggregate(mode):
  values, mask = _data()
  values = np.nan_to_num(values)
  grad = jax.grad(lambda v: aggregation.aggregate(v, jnp.asarray(mask), mode, MAX_LEN))(
      jnp.asarray(values))
  weights = aggregation.token_weights(jnp.asarray(mask), mode, MAX_LEN)
  np.testing.assert_allclose(np.asarray(grad), np.asarray(weights), rtol=1e-6)
  # Each weight is the numpy aggregate of a one-hot value array.
  for b, t in zip(*np.nonzero(mask)):
    one_hot = np.zeros_like(values)
    one_hot[b, t] = 1.0
    assert float(weights[b, t]) == pytest.approx(_ref_aggregate(one_hot, mask, mode))


@pytest.mark.parametrize("mode", aggregation.AGGREGATIONS)
def test_empty_mask_gives_zero_not_nan(mode):
  values = jnp.full((3, 4), jnp.nan)
  mask = jnp.zeros((3, 4), bool)
  assert float(aggregation.aggregate(values, mask, mode, MAX_LEN)) == 0.0
  assert float(aggregation.masked_max(values, mask)) == 0.0


def test_masked_max():
  values, mask = _data()
  expected = max(values[b, t] for b, t in zip(*np.nonzero(mask)))
  assert float(aggregation.masked_max(jnp.asarray(values), jnp.asarray(mask))) == expected


def test_bad_mode_and_missing_length_fail_clearly():
  with pytest.raises(ValueError, match="known: .*token-mean"):
    aggregation.token_weights(jnp.ones((1, 2)), "sum")
  with pytest.raises(ValueError, match="max_response_length"):
    aggregation.token_weights(jnp.ones((1, 2)), "seq-mean-token-sum-norm")

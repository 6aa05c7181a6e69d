"""Sampling methods: empirical distributions of many draws against the exact truncated
distributions (numpy), the log-probability convention, and validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl import sampling_methods as sm

# Distinct logits, with a tie (ids 4 and 5) and a near-tie around every cut point tested.
LOGITS = np.array([2.0, 1.5, 1.2, 0.9, 0.5, 0.5, 0.0, -0.4, -1.0, -2.5, -4.0, -9.0])
DRAWS = 200_000
# Each kept token's frequency must lie within 5 standard errors sqrt(p (1 - p) / N) of its
# exact probability (a two-sided per-token false alarm rate of 6e-7 under the null); tokens
# outside the truncated support must never be drawn.
SIGMAS = 5.0


def softmax(z):
  e = np.exp(z - z.max())
  return e / e.sum()


def exact(method):
  """The truncated, renormalised distribution, computed independently in numpy."""
  z = LOGITS / getattr(method, "draw_temperature", method.temperature)
  p = softmax(z)
  order = np.argsort(-z, kind="stable")
  keep = np.zeros(len(z), bool)
  if isinstance(method, sm.Temperature):
    keep[:] = True
  elif isinstance(method, sm.Exploring):
    keep[list(method.tokens) or slice(None)] = True
  elif isinstance(method, sm.TopK):
    keep[order[:method.k]] = True
  elif isinstance(method, sm.TopP):
    mass = 0.0
    for i in order:  # The smallest prefix (by rank) whose mass reaches p.
      keep[i] = True
      mass += p[i]
      if mass >= method.p:
        break
  elif isinstance(method, sm.MinP):
    keep = p >= method.p * p.max()
  q = np.where(keep, p, 0.0)
  return q / q.sum()


@pytest.mark.parametrize("method", [
    sm.Temperature(1.0), sm.Temperature(0.6), sm.TopK(3), sm.TopK(5, temperature=2.0),
    sm.TopP(0.6), sm.TopP(0.9, temperature=0.8), sm.MinP(0.2), sm.MinP(0.05, temperature=1.5),
    sm.Exploring(2.0, 0.6), sm.Exploring(3.0, 0.6, tokens=(1, 4, 5, 10)),
], ids=str)
def test_empirical_distribution_matches_the_truncated_one(method):
  keys = jax.random.split(jax.random.key(0), DRAWS)
  logits = jnp.broadcast_to(jnp.asarray(LOGITS, jnp.float32), (DRAWS, len(LOGITS)))
  tokens = np.asarray(jax.jit(method.draw)(logits, keys))
  freq = np.bincount(tokens, minlength=len(LOGITS)) / DRAWS
  q = exact(method)
  assert 1 < (q > 0).sum() < len(LOGITS) or (isinstance(method, (sm.Temperature, sm.Exploring))
                                              and not getattr(method, "tokens", ()))
  np.testing.assert_array_equal(freq[q == 0], 0)
  stderr = np.sqrt(q * (1 - q) / DRAWS)
  assert np.all(np.abs(freq - q) <= SIGMAS * stderr + 1e-12), (freq, q)


def test_greedy_is_the_first_argmax():
  logits = jnp.asarray([[0.0, 3.0, 3.0, 1.0], [5.0, -1.0, 2.0, 5.0]])
  keys = jax.random.split(jax.random.key(0), 2)
  np.testing.assert_array_equal(sm.Greedy().draw(logits, keys), [1, 0])


def test_token_logprobs_are_the_untruncated_tempered_log_softmax():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(4, 12)).astype(np.float32) * 3
  tokens = np.array([0, 5, 11, 3])
  for t in (1.0, 0.7):
    z = logits / t
    expected = z[np.arange(4), tokens] - np.log(np.exp(z).sum(-1))
    got = sm.token_logprobs(jnp.asarray(logits), jnp.asarray(tokens), t)
    np.testing.assert_allclose(got, expected, atol=1e-6)
  assert sm.Greedy().temperature == 1.0 and sm.TopP(0.9, temperature=0.5).temperature == 0.5
  # Exploring draws at its draw temperature and is recorded at the policy's.
  assert sm.Exploring(3.0, 0.6).temperature == 0.6


def test_methods_are_hashable_static_settings():
  assert hash(sm.TopP(0.9)) == hash(sm.TopP(0.9)) and sm.TopP(0.9) != sm.TopP(0.8)


@pytest.mark.parametrize("make, field", [
    (lambda: sm.Temperature(0.0), "Temperature.temperature"),
    (lambda: sm.TopK(0), "TopK.k"),
    (lambda: sm.TopK(2.5), "TopK.k"),
    (lambda: sm.TopP(1.5), "TopP.p"),
    (lambda: sm.MinP(-0.1), "MinP.p"),
    (lambda: sm.TopP(0.5, temperature=float("nan")), "TopP.temperature"),
    (lambda: sm.Exploring(0.0), "Exploring.draw_temperature"),
    (lambda: sm.Exploring(2.0, -1.0), "Exploring.temperature"),
    (lambda: sm.Exploring(2.0, tokens=[1, 2]), "Exploring.tokens"),
    (lambda: sm.method_from_config({"name": "top_p", "p": 0.9, "top_k": 3}), "top_k"),
    (lambda: sm.method_from_config({"name": "beam"}), "beam"),
])
def test_bad_settings_fail_with_the_field_name(make, field):
  with pytest.raises(ValueError, match=field):
    make()


def test_method_from_config():
  assert sm.method_from_config({"name": "min_p", "p": 0.1}) == sm.MinP(0.1)
  assert sm.method_from_config({"name": "greedy"}) == sm.Greedy()

"""KL estimators against scalar formulas and their analytic gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl import kl


def _data():
  rng = np.random.default_rng(0)
  logp = -rng.uniform(0.01, 4.0, size=(3, 6)).astype(np.float32)
  ref = (logp + rng.normal(0, 0.7, size=logp.shape)).astype(np.float32)
  return logp, ref


def _ref(name, lp, rp):
  log_r = float(rp) - float(lp)
  return {"k1": -log_r, "k2": 0.5 * log_r ** 2, "k3": math.exp(log_r) - 1 - log_r}[name]


@pytest.mark.parametrize("name", sorted(kl.KL_ESTIMATORS))
def test_estimators_match_scalar_formulas(name):
  logp, ref = _data()
  got = np.asarray(jax.jit(kl.get_kl_estimator(name))(jnp.asarray(logp), jnp.asarray(ref)))
  for b in range(logp.shape[0]):
    for t in range(logp.shape[1]):
      assert got[b, t] == pytest.approx(_ref(name, logp[b, t], ref[b, t]), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("name,grad_fn", [
    ("k1", lambda lp, rp: np.ones_like(lp)),
    ("k2", lambda lp, rp: lp - rp),
    ("k3", lambda lp, rp: 1.0 - np.exp(rp - lp)),
])
def test_gradients_with_respect_to_the_current_policy(name, grad_fn):
  logp, ref = _data()
  grad = jax.grad(lambda lp: jnp.sum(kl.KL_ESTIMATORS[name](lp, jnp.asarray(ref))))(
      jnp.asarray(logp))
  np.testing.assert_allclose(np.asarray(grad), grad_fn(logp, ref), rtol=1e-5, atol=1e-6)


def test_k2_and_k3_are_nonnegative_and_zero_on_policy():
  logp, ref = _data()
  for name in ("k2", "k3"):
    assert (np.asarray(kl.KL_ESTIMATORS[name](logp, ref)) >= 0).all()
  for name in kl.KL_ESTIMATORS:
    np.testing.assert_array_equal(np.asarray(kl.KL_ESTIMATORS[name](logp, logp)), 0.0)


def test_k3_stays_finite_far_off_policy():
  value = kl.k3(jnp.array([[-200.0]]), jnp.array([[0.0]]))
  assert np.isfinite(np.asarray(value)).all()


def test_unknown_estimator_fails_naming_known_ones():
  with pytest.raises(KeyError, match="k1.*k2.*k3"):
    kl.get_kl_estimator("k4")

"""Per-token estimators of KL(pi_theta || pi_ref) from the log-probabilities of sampled tokens.

Schulman's naming ("Approximating KL Divergence", 2020): the tokens y_t are sampled from
pi_theta; with log r_t = log pi_ref(y_t) - log pi_theta(y_t),
  k1 = -log r            unbiased, high variance, can be negative;
  k2 = (log r)^2 / 2     biased, low variance, >= 0;
  k3 = (r - 1) - log r   unbiased, low variance, >= 0 (GRPO, DeepSeekMath arXiv 2402.03300
                         Eq. 4; the official SafeWork-R1 7B code, coefficient 1e-3).
All take and return float32 [B, T]; masking and aggregation are the caller's.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

# exp(20) ~ 5e8: a bound far outside any useful ratio that keeps exp and its gradient finite.
_MAX_LOG_RATIO = 20.0


def _log_ratio(logp_bt: jax.Array, ref_logp_bt: jax.Array) -> jax.Array:
  return ref_logp_bt.astype(jnp.float32) - logp_bt.astype(jnp.float32)


def k1(logp_bt: jax.Array, ref_logp_bt: jax.Array) -> jax.Array:
  """k1 = log pi_theta(y_t) - log pi_ref(y_t)."""
  return -_log_ratio(logp_bt, ref_logp_bt)


def k2(logp_bt: jax.Array, ref_logp_bt: jax.Array) -> jax.Array:
  """k2 = (log pi_ref(y_t) - log pi_theta(y_t))^2 / 2."""
  return 0.5 * jnp.square(_log_ratio(logp_bt, ref_logp_bt))


def k3(logp_bt: jax.Array, ref_logp_bt: jax.Array) -> jax.Array:
  """k3 = r - 1 - log r, r = pi_ref(y_t) / pi_theta(y_t); log r clipped to +-20."""
  log_r_bt = jnp.clip(_log_ratio(logp_bt, ref_logp_bt), -_MAX_LOG_RATIO, _MAX_LOG_RATIO)
  return jnp.expm1(log_r_bt) - log_r_bt


KL_ESTIMATORS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "k1": k1, "k2": k2, "k3": k3}


def get_kl_estimator(name: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """The estimator called `name`; fails naming the known ones."""
  if name not in KL_ESTIMATORS:
    raise KeyError(f"unknown KL estimator {name!r}; known: {sorted(KL_ESTIMATORS)}")
  return KL_ESTIMATORS[name]

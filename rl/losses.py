"""Policy losses of group-relative RL, found by name: CPGD, PPO/GRPO ratio clip, GSPO.

Every loss is a pure jit-able function

  loss_fn(logp_bt, old_logp_bt, advantages_b, mask_bt, config, ref_logp_bt=None)
      -> (loss, metrics)

with `logp_bt` float32 [B, T] the current policy's log-probabilities of the sampled tokens,
`old_logp_bt` the rollout policy's, `ref_logp_bt` the frozen reference's (needed when
`config.kl_coef` > 0), `advantages_b` float32 [B] one advantage per response (`rl.advantages`)
and `mask_bt` [B, T], 1 on the response tokens that count (tool outputs and padding are 0).
`loss` is a float32 scalar to minimise; `metrics` a dict of float32 scalars: "loss/total",
"loss/pg" and the other terms (each aggregated like the loss), "clip_fraction" (the token
share whose policy-gradient term is clipped), "ratio_mean", "ratio_max", "approx_kl_old"
(k3 estimate of KL(pi_old || pi_theta)) and, when a reference is given, "kl_ref" (token mean
of the chosen estimator). Token values off the mask are ignored, even non-finite ones.

Each loss has its frozen settings dataclass; `LOSSES` maps a name to both, `get_loss` looks
one up. Aggregation modes are those of `rl.aggregation`; an optional KL penalty
beta * KL(pi_theta || pi_ref) (`rl.kl`) is added to any loss, aggregated the same way.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rl import aggregation
from rl import kl

Metrics = dict[str, jax.Array]
LossFn = Callable[..., tuple[jax.Array, Metrics]]

# Bounds log-ratios before exp so that a far-off-policy token cannot overflow the ratio
# (and turn an unselected branch's gradient into inf * 0 = NaN).
_MAX_LOG_RATIO = 20.0


@dataclasses.dataclass(frozen=True)
class _LossConfig:
  """Settings shared by every loss.

  Attributes:
    clip_eps: epsilon_low: the lower clip bound 1 - eps (ln(1 - eps) for CPGD), and the
      upper one unless clip_eps_high is set.
    clip_eps_high: epsilon_high of the upper bound (DAPO's clip-higher); None = clip_eps.
    aggregation: one of `rl.aggregation.AGGREGATIONS`.
    max_response_length: tokens; the constant of "seq-mean-token-sum-norm".
    kl_coef: beta of the KL penalty to the reference (official 7B code: 1e-3); 0 = none.
    kl_estimator: "k1", "k2" or "k3" (`rl.kl`).
  """

  clip_eps: float = 0.2
  clip_eps_high: float | None = None
  aggregation: str = "token-mean"
  max_response_length: int = 0
  kl_coef: float = 0.0
  kl_estimator: str = "k3"

  def __post_init__(self):
    name = type(self).__name__
    aggregation.check_mode(self.aggregation, self.max_response_length, f"{name}.aggregation")
    if self.max_response_length < 0:
      raise ValueError(f"{name}.max_response_length must be >= 0, got "
                       f"{self.max_response_length}")
    if not self.kl_coef >= 0:
      raise ValueError(f"{name}.kl_coef must be >= 0, got {self.kl_coef}")
    if self.kl_estimator not in kl.KL_ESTIMATORS:
      raise ValueError(f"{name}.kl_estimator: unknown {self.kl_estimator!r}; known: "
                       f"{sorted(kl.KL_ESTIMATORS)}")
    if not 0 < self.clip_eps < 1:
      raise ValueError(f"{name}.clip_eps must be in (0, 1), got {self.clip_eps}")
    if self.clip_eps_high is not None and not self.clip_eps_high > 0:
      raise ValueError(f"{name}.clip_eps_high must be > 0 or None, got {self.clip_eps_high}")

  @property
  def eps_high(self) -> float:
    return self.clip_eps if self.clip_eps_high is None else self.clip_eps_high


@dataclasses.dataclass(frozen=True)
class CPGDConfig(_LossConfig):
  """CPGD settings (arXiv 2505.12504; METHOD.md §2.2).

  Attributes (besides those of every loss):
    drift_coef: alpha, the weight of the policy-drift term (authors' code: 0.01).
    drift_clip: c, the cap of the drift coefficient min(r - 1, c). The authors' code uses
      2.0; one README of theirs says 0.2.
    clip_schedule_lambda: lambda of the tight-to-loose schedule
      eps_t = lambda eps + (1 - lambda) eps t / |y|; 1 = a constant eps.
  """

  drift_coef: float = 0.01
  drift_clip: float = 2.0
  clip_schedule_lambda: float = 1.0

  def __post_init__(self):
    super().__post_init__()
    if not self.drift_coef >= 0:
      raise ValueError(f"CPGDConfig.drift_coef must be >= 0, got {self.drift_coef}")
    if not self.drift_clip > 0:
      raise ValueError(f"CPGDConfig.drift_clip must be > 0, got {self.drift_clip}")
    if not 0 <= self.clip_schedule_lambda <= 1:
      raise ValueError("CPGDConfig.clip_schedule_lambda must be in [0, 1], got "
                       f"{self.clip_schedule_lambda}")


@dataclasses.dataclass(frozen=True)
class PPOConfig(_LossConfig):
  """PPO/GRPO ratio-clip settings.

  Attributes (besides those of every loss; DAPO's clip-higher is clip_eps_high = 0.28):
    dual_clip: c > 1 of dual clip, bounding the loss of A < 0 tokens by -c A; None = off.
  """

  dual_clip: float | None = None

  def __post_init__(self):
    super().__post_init__()
    if self.dual_clip is not None and not self.dual_clip > 1:
      raise ValueError(f"PPOConfig.dual_clip must be > 1 or None, got {self.dual_clip}")


@dataclasses.dataclass(frozen=True)
class GSPOConfig(_LossConfig):
  """GSPO settings (arXiv 2507.18071; its clip ranges are tiny because s is a geometric mean).

  Attributes:
    clip_eps: lower clip of the sequence ratio (paper: 3e-4).
    clip_eps_high: upper clip (paper: 4e-4); None = clip_eps.
    aggregation: default "seq-mean-token-mean", the paper's mean over responses.
  """

  clip_eps: float = 3e-4
  clip_eps_high: float | None = 4e-4
  aggregation: str = "seq-mean-token-mean"


def _prepare(logp_bt, old_logp_bt, advantages_b, mask_bt, ref_logp_bt):
  """Checks shapes; returns float32 inputs with zeros off the mask, and the float mask."""
  if logp_bt.ndim != 2:
    raise ValueError(f"logp_bt must be [B, T], got shape {logp_bt.shape}")
  named = {"old_logp_bt": old_logp_bt, "mask_bt": mask_bt, "ref_logp_bt": ref_logp_bt}
  for name, x in named.items():
    if x is not None and x.shape != logp_bt.shape:
      raise ValueError(f"{name} must have the shape of logp_bt {logp_bt.shape}, got {x.shape}")
  if advantages_b.shape != logp_bt.shape[:1]:
    raise ValueError(f"advantages_b must be [B] = {logp_bt.shape[:1]}, got "
                     f"{advantages_b.shape}")
  keep_bt = mask_bt.astype(bool)

  def clean(x):
    return None if x is None else jnp.where(keep_bt, x.astype(jnp.float32), 0.0)

  return (clean(logp_bt), clean(old_logp_bt), advantages_b.astype(jnp.float32),
          keep_bt.astype(jnp.float32), clean(ref_logp_bt))


def _finish(pg_bt, clipped_bt, logp_bt, old_logp_bt, mask_bt, ref_logp_bt, config,
            extra: dict[str, tuple[float, jax.Array]] | None = None,
            metrics: Metrics | None = None) -> tuple[jax.Array, Metrics]:
  """Aggregates pg_bt plus coef * term_bt for each extra term plus the KL penalty."""
  weights_bt = aggregation.token_weights(mask_bt, config.aggregation,
                                         config.max_response_length)
  metrics = dict(metrics or {})
  metrics["loss/pg"] = jnp.sum(weights_bt * pg_bt)
  total = metrics["loss/pg"]
  for name, (coef, term_bt) in (extra or {}).items():
    metrics[f"loss/{name}"] = jnp.sum(weights_bt * term_bt)
    total = total + coef * metrics[f"loss/{name}"]
  if ref_logp_bt is not None:
    kl_bt = kl.get_kl_estimator(config.kl_estimator)(logp_bt, ref_logp_bt)
    metrics["kl_ref"] = aggregation.masked_mean(kl_bt, mask_bt)
    metrics["loss/kl"] = jnp.sum(weights_bt * kl_bt)
    total = total + config.kl_coef * metrics["loss/kl"]
  elif config.kl_coef > 0:
    raise ValueError(f"{type(config).__name__}.kl_coef = {config.kl_coef} needs ref_logp_bt")
  log_ratio_bt = jnp.clip(logp_bt - old_logp_bt, -_MAX_LOG_RATIO, _MAX_LOG_RATIO)
  ratio_bt = jnp.exp(log_ratio_bt)
  metrics["clip_fraction"] = aggregation.masked_mean(clipped_bt, mask_bt)
  metrics["ratio_mean"] = aggregation.masked_mean(ratio_bt, mask_bt)
  metrics["ratio_max"] = aggregation.masked_max(ratio_bt, mask_bt)
  metrics["approx_kl_old"] = aggregation.masked_mean(kl.k3(old_logp_bt, logp_bt), mask_bt)
  metrics["loss/total"] = total
  return total, {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}


def scheduled_clip_eps(mask_bt: jax.Array, eps: float, schedule_lambda: float) -> jax.Array:
  """CPGD's tight-to-loose clip range, float32 [B, T]: eps_t = lambda eps + (1 - lambda) eps
  t / |y|, with t = 1, 2, ... the index of the token among its response's counted tokens
  and |y| their number, so the last counted token gets eps."""
  mask_bt = mask_bt.astype(jnp.float32)
  if schedule_lambda == 1.0:
    return jnp.full(mask_bt.shape, eps, jnp.float32)
  position_bt = jnp.cumsum(mask_bt, axis=-1)
  length_b = jnp.maximum(jnp.sum(mask_bt, axis=-1, keepdims=True), 1.0)
  return schedule_lambda * eps + (1.0 - schedule_lambda) * eps * position_bt / length_b


def cpgd_token_terms(logp_bt, old_logp_bt, advantages_b, mask_bt, config: CPGDConfig):
  """CPGD's per-token terms; inputs as `cpgd_loss`, already zero off the mask.

  Returns:
    pg_bt: -Phi_t, Phi_t = min(ln r_t A, clip(ln r_t, ln(1 - eps_t), ln(1 + eps_t)) A).
    drift_bt: E_t = min(sg(r_t) - 1, c) log pi_theta(y_t); dE_t/dlogp_t = min(r_t - 1, c).
    clipped_bt: float32, 1 where Phi_t's gradient is cut by the clip.
  """
  log_ratio_bt = logp_bt - old_logp_bt
  adv_bt = advantages_b[:, None]
  eps_low_bt = scheduled_clip_eps(mask_bt, config.clip_eps, config.clip_schedule_lambda)
  eps_high_bt = scheduled_clip_eps(mask_bt, config.eps_high, config.clip_schedule_lambda)
  low_bt, high_bt = jnp.log1p(-eps_low_bt), jnp.log1p(eps_high_bt)
  phi_bt = jnp.minimum(log_ratio_bt * adv_bt, jnp.clip(log_ratio_bt, low_bt, high_bt) * adv_bt)
  clipped_bt = (((adv_bt > 0) & (log_ratio_bt > high_bt))
                | ((adv_bt < 0) & (log_ratio_bt < low_bt)))
  ratio_sg_bt = jnp.exp(jnp.minimum(jax.lax.stop_gradient(log_ratio_bt), _MAX_LOG_RATIO))
  drift_bt = jnp.minimum(ratio_sg_bt - 1.0, config.drift_clip) * logp_bt
  return -phi_bt, drift_bt, clipped_bt.astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("config",))
def cpgd_loss(logp_bt, old_logp_bt, advantages_b, mask_bt, config: CPGDConfig,
              ref_logp_bt=None) -> tuple[jax.Array, Metrics]:
  """CPGD, clipped policy gradient with policy drift (Liu et al., arXiv 2505.12504).

  Per token maximises Phi_t - alpha E_t (`cpgd_token_terms`): the PPO clip applied to the
  log-ratio, so a token's update stops once ln r_t leaves [ln(1 - eps_t), ln(1 + eps_t)] in
  the advantage's direction, and a drift term whose gradient min(r_t - 1, c) grad log pi_theta
  is that of the k3 estimate of KL(pi_old || pi_theta) with the coefficient capped at c.
  loss = agg(-Phi) + alpha agg(E) + beta agg(KL_ref), agg = `config.aggregation`
  (default token-mean: the paper's token mean over the group). Adds "drift_weight_mean",
  the token mean of min(r - 1, c).
  """
  logp_bt, old_logp_bt, advantages_b, mask_bt, ref_logp_bt = _prepare(
      logp_bt, old_logp_bt, advantages_b, mask_bt, ref_logp_bt)
  pg_bt, drift_bt, clipped_bt = cpgd_token_terms(logp_bt, old_logp_bt, advantages_b, mask_bt,
                                                 config)
  ratio_bt = jnp.exp(jnp.minimum(logp_bt - old_logp_bt, _MAX_LOG_RATIO))
  weight_bt = jnp.minimum(ratio_bt - 1.0, config.drift_clip)
  return _finish(pg_bt, clipped_bt, logp_bt, old_logp_bt, mask_bt, ref_logp_bt, config,
                 extra={"drift": (config.drift_coef, drift_bt)},
                 metrics={"drift_weight_mean": aggregation.masked_mean(weight_bt, mask_bt)})


@functools.partial(jax.jit, static_argnames=("config",))
def ppo_loss(logp_bt, old_logp_bt, advantages_b, mask_bt, config: PPOConfig,
             ref_logp_bt=None) -> tuple[jax.Array, Metrics]:
  """PPO/GRPO ratio clip with clip-higher and dual clip.

  Per token, with r_t = pi_theta / pi_old: l_t = max(-A r_t, -A clip(r_t, 1 - eps_low,
  1 + eps_high)) (PPO's L^CLIP, Schulman et al. arXiv 1707.06347 Eq. 7; GRPO, DeepSeekMath
  arXiv 2402.03300 Eq. 3; eps_high > eps_low is DAPO's clip-higher, arXiv 2503.14476 §3.1),
  and, with dual clip (Ye et al., arXiv 1912.09729), l_t = min(l_t, -c A) where A < 0.
  loss = agg(l) + beta agg(KL_ref), agg = `config.aggregation` (default token-mean).
  Adds "dual_clip_fraction".
  """
  logp_bt, old_logp_bt, advantages_b, mask_bt, ref_logp_bt = _prepare(
      logp_bt, old_logp_bt, advantages_b, mask_bt, ref_logp_bt)
  ratio_bt = jnp.exp(jnp.clip(logp_bt - old_logp_bt, -_MAX_LOG_RATIO, _MAX_LOG_RATIO))
  adv_bt = advantages_b[:, None]
  unclipped_bt = -adv_bt * ratio_bt
  clipped_bt = -adv_bt * jnp.clip(ratio_bt, 1.0 - config.clip_eps, 1.0 + config.eps_high)
  pg_bt = jnp.maximum(unclipped_bt, clipped_bt)
  is_clipped_bt = clipped_bt > unclipped_bt
  is_dual_bt = jnp.zeros_like(is_clipped_bt)
  if config.dual_clip is not None:
    bound_bt = -config.dual_clip * adv_bt
    is_dual_bt = (adv_bt < 0) & (pg_bt > bound_bt)
    pg_bt = jnp.where(is_dual_bt, bound_bt, pg_bt)
  metrics = {"dual_clip_fraction": aggregation.masked_mean(is_dual_bt, mask_bt)}
  return _finish(pg_bt, (is_clipped_bt | is_dual_bt).astype(jnp.float32), logp_bt,
                 old_logp_bt, mask_bt, ref_logp_bt, config, metrics=metrics)


def gspo_sequence_ratio(logp_bt, old_logp_bt, mask_bt) -> jax.Array:
  """s_b = exp(mean over counted tokens of (logp - old_logp)), float32 [B]; 1 if none."""
  mask_bt = mask_bt.astype(jnp.float32)
  tokens_b = jnp.maximum(jnp.sum(mask_bt, axis=-1), 1.0)
  mean_log_ratio_b = jnp.sum(mask_bt * (logp_bt - old_logp_bt), axis=-1) / tokens_b
  return jnp.exp(jnp.clip(mean_log_ratio_b, -_MAX_LOG_RATIO, _MAX_LOG_RATIO))


@functools.partial(jax.jit, static_argnames=("config",))
def gspo_loss(logp_bt, old_logp_bt, advantages_b, mask_bt, config: GSPOConfig,
              ref_logp_bt=None) -> tuple[jax.Array, Metrics]:
  """GSPO, group sequence policy optimisation (Zheng et al., arXiv 2507.18071).

  The ratio is the sequence's, s_i = (pi_theta(y_i | x) / pi_old(y_i | x))^(1 / |y_i|)
  (`gspo_sequence_ratio`), clipped per sequence: l_i = max(-A_i s_i, -A_i clip(s_i,
  1 - eps_low, 1 + eps_high)). l_i is given to each of the response's tokens and aggregated
  by `config.aggregation`; the default seq-mean-token-mean gives the paper's
  (1 / G) sum_i l_i. "clip_fraction" is the share of tokens in clipped sequences.
  """
  logp_bt, old_logp_bt, advantages_b, mask_bt, ref_logp_bt = _prepare(
      logp_bt, old_logp_bt, advantages_b, mask_bt, ref_logp_bt)
  seq_ratio_b = gspo_sequence_ratio(logp_bt, old_logp_bt, mask_bt)
  unclipped_b = -advantages_b * seq_ratio_b
  clipped_b = -advantages_b * jnp.clip(seq_ratio_b, 1.0 - config.clip_eps,
                                       1.0 + config.eps_high)
  pg_bt = jnp.broadcast_to(jnp.maximum(unclipped_b, clipped_b)[:, None], mask_bt.shape)
  is_clipped_bt = jnp.broadcast_to((clipped_b > unclipped_b)[:, None], mask_bt.shape)
  present_b = (jnp.sum(mask_bt, axis=-1) > 0).astype(jnp.float32)
  metrics = {"sequence_ratio_mean": jnp.sum(present_b * seq_ratio_b)
                                    / jnp.maximum(jnp.sum(present_b), 1.0)}
  return _finish(pg_bt, is_clipped_bt.astype(jnp.float32), logp_bt, old_logp_bt, mask_bt,
                 ref_logp_bt, config, metrics=metrics)


class RegisteredLoss(NamedTuple):
  """A loss function and the settings dataclass it takes."""

  fn: LossFn
  config_cls: type


LOSSES: dict[str, RegisteredLoss] = {
    "cpgd": RegisteredLoss(cpgd_loss, CPGDConfig),
    "ppo": RegisteredLoss(ppo_loss, PPOConfig),
    "gspo": RegisteredLoss(gspo_loss, GSPOConfig),
}


def get_loss(name: str) -> RegisteredLoss:
  """The loss called `name` ("ppo" also serves GRPO); fails naming the known ones."""
  if name not in LOSSES:
    raise KeyError(f"unknown policy loss {name!r}; known: {sorted(LOSSES)}")
  return LOSSES[name]

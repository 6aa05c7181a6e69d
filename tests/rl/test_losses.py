"""Policy losses against loop-over-tokens numpy references, and their gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl import losses

MAX_LEN = 12
MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")


def _batch(seed=0, noise=0.3):
  """B = 6 responses, T = 9: ragged lengths, a tool span, a single-token and an empty row."""
  rng = np.random.default_rng(seed)
  b, t = 6, 9
  logp = -rng.uniform(0.05, 3.0, (b, t))
  old = logp + rng.normal(0, noise, (b, t))
  ref = logp + rng.normal(0, 0.3, (b, t))
  adv = rng.normal(0, 1, b)
  mask = np.zeros((b, t), bool)
  for row, length in enumerate([9, 1, 7, 5, 0, 8]):
    mask[row, :length] = True
  mask[2, 2:4] = False  # tool-output tokens inside a response
  for x in (logp, old, ref):
    x[~mask] = 50.0  # padding garbage that must be ignored
  f32 = lambda x: np.asarray(x, np.float32)
  return f32(logp), f32(old), f32(ref), f32(adv), mask


def _ref_weights(mask, mode):
  """The weight of each token in the aggregate, by counting."""
  weights = np.zeros(mask.shape)
  rows = [b for b in range(mask.shape[0]) if mask[b].any()]
  total = mask.sum()
  for b in rows:
    n = mask[b].sum()
    for t in range(mask.shape[1]):
      if mask[b, t]:
        weights[b, t] = {"token-mean": 1 / total, "seq-mean-token-mean": 1 / n / len(rows),
                         "seq-mean-token-sum": 1 / len(rows),
                         "seq-mean-token-sum-norm": 1 / MAX_LEN / len(rows)}[mode]
  return weights


def _clip(x, lo, hi):
  return min(max(x, lo), hi)


def _token_mean(values, mask):
  counted = [values[b][t] for b in range(mask.shape[0]) for t in range(mask.shape[1])
             if mask[b, t]]
  return sum(counted) / len(counted) if counted else 0.0


def _ref_loss(kind, logp, old, adv, mask, cfg, ref=None):
  """Loss and metrics computed token by token."""
  rows, cols = mask.shape
  pg = np.zeros((rows, cols))
  drift = np.zeros((rows, cols))
  clipped = np.zeros((rows, cols))
  eps_lo, eps_hi = cfg.clip_eps, cfg.clip_eps_high or cfg.clip_eps
  for b in range(rows):
    count, position = mask[b].sum(), 0
    a = float(adv[b])
    if kind == "gspo" and count:
      s = math.exp(sum(float(logp[b, t] - old[b, t]) for t in range(cols) if mask[b, t]) / count)
      seq_loss = max(-a * s, -a * _clip(s, 1 - eps_lo, 1 + eps_hi))
      seq_clipped = -a * _clip(s, 1 - eps_lo, 1 + eps_hi) > -a * s
    for t in range(cols):
      if not mask[b, t]:
        continue
      position += 1
      log_r = float(logp[b, t]) - float(old[b, t])
      if kind == "cpgd":
        lam = cfg.clip_schedule_lambda
        lo = math.log(1 - (lam * eps_lo + (1 - lam) * eps_lo * position / count))
        hi = math.log(1 + (lam * eps_hi + (1 - lam) * eps_hi * position / count))
        pg[b, t] = -min(log_r * a, _clip(log_r, lo, hi) * a)
        drift[b, t] = min(math.exp(log_r) - 1, cfg.drift_clip) * float(logp[b, t])
        clipped[b, t] = (a > 0 and log_r > hi) or (a < 0 and log_r < lo)
      elif kind == "ppo":
        r = math.exp(log_r)
        plain, cut = -a * r, -a * _clip(r, 1 - eps_lo, 1 + eps_hi)
        pg[b, t] = max(plain, cut)
        clipped[b, t] = cut > plain
        if cfg.dual_clip is not None and a < 0 and pg[b, t] > -cfg.dual_clip * a:
          pg[b, t], clipped[b, t] = -cfg.dual_clip * a, 1.0
      else:
        pg[b, t], clipped[b, t] = seq_loss, seq_clipped
  weights = _ref_weights(mask, cfg.aggregation)
  metrics = {"loss/pg": (weights * pg).sum(), "clip_fraction": _token_mean(clipped, mask)}
  total = metrics["loss/pg"]
  if kind == "cpgd":
    metrics["loss/drift"] = (weights * drift).sum()
    total += cfg.drift_coef * metrics["loss/drift"]
  ratio = np.exp(np.where(mask, logp - old, 0.0).astype(np.float64))
  metrics["ratio_mean"] = _token_mean(ratio, mask)
  metrics["ratio_max"] = max([ratio[b, t] for b, t in zip(*np.nonzero(mask))], default=0.0)
  metrics["approx_kl_old"] = _token_mean(
      [[math.exp(float(logp[b, t] - old[b, t])) - 1 - float(logp[b, t] - old[b, t])
        for t in range(cols)] for b in range(rows)], mask)
  if ref is not None:
    kl = np.zeros((rows, cols))
    for b, t in zip(*np.nonzero(mask)):
      log_r = float(ref[b, t]) - float(logp[b, t])
      kl[b, t] = {"k1": -log_r, "k2": 0.5 * log_r ** 2,
                  "k3": math.exp(log_r) - 1 - log_r}[cfg.kl_estimator]
    metrics["kl_ref"] = _token_mean(kl, mask)
    metrics["loss/kl"] = (weights * kl).sum()
    total += cfg.kl_coef * metrics["loss/kl"]
  metrics["loss/total"] = total
  return total, metrics


CASES = [
    ("cpgd", losses.CPGDConfig()),
    ("cpgd", losses.CPGDConfig(clip_eps=0.1, clip_eps_high=0.15, drift_clip=0.05,
                               clip_schedule_lambda=0.4, kl_coef=0.01, kl_estimator="k2",
                               aggregation="seq-mean-token-mean")),
    ("cpgd", losses.CPGDConfig(drift_coef=0.5, aggregation="seq-mean-token-sum-norm",
                               max_response_length=MAX_LEN, kl_coef=1e-3)),
    ("ppo", losses.PPOConfig()),
    ("ppo", losses.PPOConfig(clip_eps=0.1, clip_eps_high=0.28, dual_clip=1.2,
                             aggregation="seq-mean-token-sum", kl_coef=0.1,
                             kl_estimator="k1")),
    ("ppo", losses.PPOConfig(dual_clip=3.0, aggregation="seq-mean-token-mean", kl_coef=1e-3)),
    ("gspo", losses.GSPOConfig()),
    ("gspo", losses.GSPOConfig(clip_eps=0.05, clip_eps_high=0.08, aggregation="token-mean",
                               kl_coef=0.01)),
]


@pytest.mark.parametrize("kind,cfg", CASES, ids=[f"{k}{i}" for i, (k, _) in enumerate(CASES)])
def test_losses_match_numpy(kind, cfg):
  logp, old, ref, adv, mask = _batch(seed=1, noise=0.4)
  use_ref = cfg.kl_coef > 0
  loss, metrics = losses.get_loss(kind).fn(logp, old, adv, mask, cfg,
                                           ref_logp_bt=ref if use_ref else None)
  expected, expected_metrics = _ref_loss(kind, logp, old, adv, mask, cfg,
                                         ref if use_ref else None)
  assert float(loss) == pytest.approx(expected, rel=1e-4, abs=1e-6)
  for name, value in expected_metrics.items():
    assert float(metrics[name]) == pytest.approx(value, rel=1e-4, abs=1e-6), name
  assert all(np.isfinite(np.asarray(v)) for v in metrics.values())


def test_clipping_happens_in_the_reference_batches():
  # Guards the cases above against testing only the unclipped branch.
  logp, old, _, adv, mask = _batch(seed=1, noise=0.4)
  for kind, cfg in CASES:
    assert 0 < _ref_loss(kind, logp, old, adv, mask, cfg)[1]["clip_fraction"] < 1, (kind, cfg)


@pytest.mark.parametrize("mode", MODES)
def test_cpgd_drift_gradient_is_the_capped_ratio_excess(mode):
  logp, old, _, _, mask = _batch(seed=1)
  cfg = losses.CPGDConfig(drift_coef=1.0, drift_clip=0.05, aggregation=mode,
                          max_response_length=MAX_LEN)
  grad = jax.grad(lambda lp: losses.cpgd_loss(lp, old, np.zeros(6, np.float32), mask, cfg)[0])(
      jnp.asarray(logp))
  coef = np.minimum(np.exp(np.where(mask, logp - old, 0.0)) - 1.0, 0.05)
  assert (coef == 0.05).any() and (coef < 0.05).any()
  np.testing.assert_allclose(np.asarray(grad), coef * _ref_weights(mask, mode), rtol=1e-5,
                             atol=1e-7)


def test_cpgd_drift_term_gradient_per_token():
  logp, old, _, adv, mask = _batch(seed=2)
  cfg = losses.CPGDConfig(drift_clip=0.1)
  grad = jax.grad(lambda lp: jnp.sum(losses.cpgd_token_terms(
      jnp.where(mask, lp, 0.0), jnp.where(mask, old, 0.0), adv, mask.astype(np.float32),
      cfg)[1]))(jnp.asarray(logp))
  expected = np.where(mask, np.minimum(np.exp(logp - old) - 1.0, 0.1), 0.0)
  np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean"])
def test_cpgd_surrogate_gradient_is_zero_where_clipped(mode):
  logp, old, _, adv, mask = _batch(seed=3, noise=0.3)
  cfg = losses.CPGDConfig(clip_eps=0.1, drift_coef=0.0, clip_schedule_lambda=0.5,
                          aggregation=mode)
  grad = jax.grad(lambda lp: losses.cpgd_loss(lp, old, adv, mask, cfg)[0])(jnp.asarray(logp))
  expected = np.zeros(mask.shape)
  clipped_tokens = 0
  for b in range(mask.shape[0]):
    count, position = mask[b].sum(), 0
    for t in range(mask.shape[1]):
      if not mask[b, t]:
        continue
      position += 1
      eps = 0.5 * 0.1 + 0.5 * 0.1 * position / count
      log_r = logp[b, t] - old[b, t]
      clipped = ((adv[b] > 0 and log_r > math.log(1 + eps))
                 or (adv[b] < 0 and log_r < math.log(1 - eps)))
      clipped_tokens += clipped
      expected[b, t] = 0.0 if clipped else -adv[b]
  assert 0 < clipped_tokens < mask.sum()
  np.testing.assert_allclose(np.asarray(grad), expected * _ref_weights(mask, mode), rtol=1e-5,
                             atol=1e-7)


def test_ppo_gradient_vanishes_on_clipped_and_dual_clipped_tokens():
  logp, old, _, adv, mask = _batch(seed=4, noise=0.5)
  cfg = losses.PPOConfig(clip_eps=0.1, clip_eps_high=0.2, dual_clip=1.3)
  grad = jax.grad(lambda lp: losses.ppo_loss(lp, old, adv, mask, cfg)[0])(jnp.asarray(logp))
  expected = np.zeros(mask.shape)
  for b, t in zip(*np.nonzero(mask)):
    r = math.exp(logp[b, t] - old[b, t])
    a = adv[b]
    cut = (a > 0 and r > 1.2) or (a < 0 and r < 0.9) or (a < 0 and r > 1.3)
    expected[b, t] = 0.0 if cut else -a * r
  np.testing.assert_allclose(np.asarray(grad), expected * _ref_weights(mask, "token-mean"),
                             rtol=1e-5, atol=1e-7)


def test_gspo_gradient_spreads_the_sequence_ratio_over_tokens():
  logp, old, _, adv, mask = _batch(seed=5, noise=0.1)
  cfg = losses.GSPOConfig(clip_eps=0.03, clip_eps_high=0.04)
  grad = jax.grad(lambda lp: losses.gspo_loss(lp, old, adv, mask, cfg)[0])(jnp.asarray(logp))
  rows = [b for b in range(mask.shape[0]) if mask[b].any()]
  expected = np.zeros(mask.shape)
  for b in rows:
    n = mask[b].sum()
    s = math.exp(sum(logp[b, t] - old[b, t] for t in range(mask.shape[1]) if mask[b, t]) / n)
    cut = (adv[b] > 0 and s > 1.04) or (adv[b] < 0 and s < 0.97)
    expected[b] = np.where(mask[b], 0.0 if cut else -adv[b] * s / n / len(rows), 0.0)
  np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", sorted(losses.LOSSES))
def test_empty_mask_and_non_finite_padding_give_finite_zero(kind):
  logp, old, ref, adv, _ = _batch()
  cls = losses.get_loss(kind).config_cls
  fn = losses.get_loss(kind).fn
  empty = np.zeros(logp.shape, bool)
  loss_and_grad = jax.value_and_grad(
      lambda lp, m: fn(lp, old, adv, m, cls(kl_coef=1e-3), ref_logp_bt=ref), has_aux=True)
  (loss, metrics), grad = loss_and_grad(jnp.asarray(logp), empty)
  assert float(loss) == 0.0
  assert all(float(v) == 0.0 for v in metrics.values())
  np.testing.assert_array_equal(np.asarray(grad), 0.0)
  # Padding holding -inf / NaN log-probs changes nothing.
  _, _, _, _, mask = _batch()
  (clean_loss, _), clean_grad = loss_and_grad(jnp.asarray(logp), mask)
  (dirty_loss, metrics), dirty_grad = loss_and_grad(jnp.where(mask, logp, -jnp.inf), mask)
  assert float(dirty_loss) == pytest.approx(float(clean_loss))
  np.testing.assert_allclose(np.asarray(dirty_grad), np.asarray(clean_grad))
  assert all(np.isfinite(np.asarray(v)) for v in metrics.values())


@pytest.mark.parametrize("kind", sorted(losses.LOSSES))
def test_single_token_responses(kind):
  logp, old, ref, adv, _ = _batch(noise=0.05)
  mask = np.zeros(logp.shape, bool)
  mask[:, 0] = True
  cfg = losses.get_loss(kind).config_cls(kl_coef=0.01)
  loss, _ = losses.get_loss(kind).fn(logp, old, adv, mask, cfg, ref_logp_bt=ref)
  expected, _ = _ref_loss(kind, logp, old, adv, mask, cfg, ref)
  assert float(loss) == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_kl_coefficient_without_reference_fails():
  logp, old, _, adv, mask = _batch()
  with pytest.raises(ValueError, match="ref_logp_bt"):
    losses.cpgd_loss(logp, old, adv, mask, losses.CPGDConfig(kl_coef=1e-3))


def test_bad_settings_and_shapes_fail_clearly():
  with pytest.raises(KeyError, match="known: .*cpgd"):
    losses.get_loss("dpo")
  with pytest.raises(ValueError, match="CPGDConfig.clip_eps"):
    losses.CPGDConfig(clip_eps=1.5)
  with pytest.raises(ValueError, match="PPOConfig.dual_clip"):
    losses.PPOConfig(dual_clip=0.5)
  with pytest.raises(ValueError, match="max_response_length"):
    losses.GSPOConfig(aggregation="seq-mean-token-sum-norm")
  with pytest.raises(ValueError, match="kl_estimator"):
    losses.PPOConfig(kl_estimator="k5")
  with pytest.raises(ValueError, match="clip_schedule_lambda"):
    losses.CPGDConfig(clip_schedule_lambda=2.0)
  with pytest.raises(TypeError, match="dual_clip"):
    losses.CPGDConfig(dual_clip=2.0)
  logp, old, _, adv, mask = _batch()
  with pytest.raises(ValueError, match="advantages_b"):
    losses.ppo_loss(logp, old, adv[:3], mask, losses.PPOConfig())


def test_losses_trace_once_per_config():
  logp, old, _, adv, mask = _batch()
  cfg = losses.CPGDConfig(clip_schedule_lambda=0.5)
  traces = []

  @jax.jit
  def step(lp, o, a, m):
    traces.append(1)
    return jax.value_and_grad(lambda x: losses.cpgd_loss(x, o, a, m, cfg)[0])(lp)

  step(logp, old, adv, mask)
  step(logp + 0.1, old, adv * 2, mask)
  assert len(traces) == 1

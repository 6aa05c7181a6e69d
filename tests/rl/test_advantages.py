"""Advantage estimators against loop-over-groups numpy references."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl import advantages

NUM_GROUPS = 8  # id 6 never occurs: absent groups must be ignored.


def _batch(seed: int = 0):
  """Non-contiguous groups of sizes 4, 3, 1, 5, 2, 4, 3 (ids 0..5, 7), ties in rewards
  and lengths, group 1 with all-equal rewards, group 2 a singleton."""
  rng = np.random.default_rng(seed)
  sizes = {0: 4, 1: 3, 2: 1, 3: 5, 4: 2, 5: 4, 7: 3}
  ids = np.concatenate([np.full(s, g) for g, s in sizes.items()])
  rng.shuffle(ids)
  rewards = rng.choice([0.0, 0.5, 1.0, 0.25], size=ids.size) + rng.normal(0, 0.1, ids.size)
  rewards[ids == 4] = [1.0, 0.0]
  rewards[ids == 1] = 0.7
  rewards = rewards.astype(np.float32)
  lengths = rng.integers(1, 12, size=ids.size).astype(np.int32)
  return rewards, ids.astype(np.int32), lengths


def _members(ids):
  return {int(g): [i for i in range(len(ids)) if ids[i] == g] for g in sorted(set(ids))}


def _all_equal(rewards, idx):
  return all(rewards[i] == rewards[idx[0]] for i in idx)


def _ref_centered(rewards, ids):
  out = np.zeros(len(rewards), np.float64)
  for idx in _members(ids).values():
    mean = sum(float(rewards[i]) for i in idx) / len(idx)
    for i in idx:
      out[i] = 0.0 if _all_equal(rewards, idx) else rewards[i] - mean
  return out


def _ref_grpo(rewards, ids, cfg):
  out = np.zeros(len(rewards), np.float64)
  for idx in _members(ids).values():
    vals = [float(rewards[i]) for i in idx]
    mean = sum(vals) / len(vals)
    denom = max(len(vals) - 1, 1) if cfg.unbiased_std else len(vals)
    std = (sum((v - mean) ** 2 for v in vals) / denom) ** 0.5
    for i in idx:
      out[i] = 0.0 if _all_equal(rewards, idx) else (rewards[i] - mean) / (std + cfg.std_eps)
  return out


def _ref_clip_filter(rewards, ids, cfg):
  groups = _members(ids)
  live = sum(not _all_equal(rewards, idx) for idx in groups.values())
  weight = min(cfg.clip_weight_max, len(groups) / live) if live else 1.0
  return weight * _ref_centered(rewards, ids)


def _ref_rloo(rewards, ids, cfg):
  out = np.zeros(len(rewards), np.float64)
  for idx in _members(ids).values():
    for i in idx:
      others = [float(rewards[j]) for j in idx if j != i]
      out[i] = rewards[i] - sum(others) / len(others) if others else 0.0
  return out


def _ref_cale(rewards, ids, lengths, cfg):
  mu, alpha, beta = cfg.cale_mu, cfg.cale_alpha, cfg.cale_beta
  out = np.zeros(len(rewards), np.float64)
  for idx in _members(ids).values():
    ranked = sorted(idx, key=lambda i: (lengths[i], i))
    size = len(ranked)
    in_s = {}
    for k, i in enumerate(ranked):
      in_s[i] = 1.0 if 2 * k < size - 1 else (0.5 if 2 * k == size - 1 else 0.0)
    m_s = sum(in_s[i] * rewards[i] for i in idx) / (size / 2)
    m_l = sum((1 - in_s[i]) * rewards[i] for i in idx) / (size / 2)
    max_len = max(lengths[i] for i in idx) if cfg.length_norm == "group_max" else (
        cfg.max_response_length)
    for i in idx:
      r = float(rewards[i])
      a_long = mu * (alpha * r - m_s + beta) + (1 - mu) * (r - m_l)
      a_short = mu * (r - alpha * m_l - beta) + (1 - mu) * (r - m_s)
      out[i] = ((1 - in_s[i]) * a_long + in_s[i] * a_short) / max_len
  return out


def _reference(rewards, ids, lengths, cfg):
  ref = {
      "grpo": lambda: _ref_grpo(rewards, ids, cfg),
      "equal_weight": lambda: _ref_centered(rewards, ids),
      "dr_grpo": lambda: _ref_centered(rewards, ids),
      "clip_filter_weight": lambda: _ref_clip_filter(rewards, ids, cfg),
      "rloo": lambda: _ref_rloo(rewards, ids, cfg),
      "cale": lambda: _ref_cale(rewards, ids, lengths, cfg),
  }[cfg.estimator]()
  if cfg.dynamic_sampling:
    for idx in _members(ids).values():
      if _all_equal(rewards, idx):
        ref[idx] = 0.0
  return ref


def _run(rewards, ids, lengths, cfg):
  return advantages.compute_advantages(jnp.asarray(rewards), jnp.asarray(ids),
                                       jnp.asarray(lengths), num_groups=NUM_GROUPS, config=cfg)


@pytest.mark.parametrize("dynamic_sampling", [False, True])
@pytest.mark.parametrize("estimator", sorted(advantages.ESTIMATORS))
def test_estimators_match_numpy(estimator, dynamic_sampling):
  rewards, ids, lengths = _batch()
  cfg = advantages.AdvantageConfig(estimator=estimator, dynamic_sampling=dynamic_sampling,
                                   clip_weight_max=1.3)
  adv, stats = _run(rewards, ids, lengths, cfg)
  ref = _reference(rewards, ids, lengths, cfg)
  np.testing.assert_allclose(np.asarray(adv), ref, rtol=1e-5, atol=1e-6)
  groups = _members(ids)
  num_equal = sum(_all_equal(rewards, idx) for idx in groups.values())
  assert float(stats["zero_variance_group_fraction"]) == pytest.approx(num_equal / len(groups))
  assert int(stats["masked_groups"]) == (num_equal if dynamic_sampling else 0)
  kept = [i for idx in groups.values() if not (dynamic_sampling and _all_equal(rewards, idx))
          for i in idx]
  assert int(stats["masked_responses"]) == len(ids) - len(kept)
  assert float(stats["advantage_mean"]) == pytest.approx(ref[kept].mean(), abs=1e-6)
  assert float(stats["advantage_std"]) == pytest.approx(ref[kept].std(), rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("unbiased_std", [False, True])
def test_grpo_std_divisor(unbiased_std):
  rewards, ids, lengths = _batch(seed=3)
  cfg = advantages.AdvantageConfig(estimator="grpo", unbiased_std=unbiased_std, std_eps=1e-3)
  adv, _ = _run(rewards, ids, lengths, cfg)
  np.testing.assert_allclose(np.asarray(adv), _ref_grpo(rewards, ids, cfg), rtol=1e-5,
                             atol=1e-6)


def test_clip_filter_weight_is_capped_and_reported():
  rewards, ids, lengths = _batch()
  live = 5  # groups 0, 3, 4, 5, 7 vary; groups 1 and 2 (a singleton) do not.
  for cap, expected in ((1.2, 1.2), (3.0, 7 / live)):
    cfg = advantages.AdvantageConfig(estimator="clip_filter_weight", clip_weight_max=cap)
    _, stats = _run(rewards, ids, lengths, cfg)
    assert float(stats["clip_filter_weight"]) == pytest.approx(expected)


@pytest.mark.parametrize("length_norm", ["group_max", "fixed"])
@pytest.mark.parametrize("seed", [0, 1])
def test_cale_matches_numpy(length_norm, seed):
  rewards, ids, lengths = _batch(seed)
  cfg = advantages.AdvantageConfig(estimator="cale", cale_mu=0.3, cale_alpha=0.8,
                                   cale_beta=0.1, length_norm=length_norm,
                                   max_response_length=64)
  adv, _ = _run(rewards, ids, lengths, cfg)
  np.testing.assert_allclose(np.asarray(adv), _ref_cale(rewards, ids, lengths, cfg),
                             rtol=1e-5, atol=1e-6)


def test_cale_reduces_to_dr_grpo_over_max_length():
  rewards, ids, lengths = _batch(seed=5)  # odd groups (3, 1, 5) included
  cale_cfg = advantages.AdvantageConfig(estimator="cale", cale_mu=0.5, cale_alpha=1.0,
                                        cale_beta=0.0)
  dr_cfg = advantages.AdvantageConfig(estimator="dr_grpo")
  adv_cale, _ = _run(rewards, ids, lengths, cale_cfg)
  adv_dr, _ = _run(rewards, ids, lengths, dr_cfg)
  max_len = np.array([lengths[ids == g].max() for g in ids], np.float32)
  np.testing.assert_allclose(np.asarray(adv_cale), np.asarray(adv_dr) / max_len, atol=1e-6)


def test_cale_split_of_odd_groups_and_ties():
  # One group of 5: lengths 3, 1, 3, 3, 9 at positions 0..4. Ranked (length, position):
  # 1 (pos 1), 3 (pos 0), 3 (pos 2), 3 (pos 3), 9 (pos 4) -> S = {1, 0}, median pos 2.
  ids = jnp.zeros(5, jnp.int32)
  lengths = jnp.array([3, 1, 3, 3, 9], jnp.int32)
  in_s = advantages.cale_halves(ids, lengths, 1)
  np.testing.assert_array_equal(np.asarray(in_s), [1.0, 1.0, 0.5, 0.0, 0.0])


def test_cale_prefers_the_shorter_of_equal_answers():
  rewards = jnp.ones(4, jnp.float32)
  lengths = jnp.array([40, 10, 30, 20], jnp.int32)
  cfg = advantages.AdvantageConfig(estimator="cale", cale_alpha=0.88)
  adv, _ = advantages.compute_advantages(rewards, jnp.zeros(4, jnp.int32), lengths,
                                         num_groups=1, config=cfg)
  # By hand: m_S = m_L = 1, L gets 0.5 * (0.88 - 1) / 40, S gets 0.5 * (1 - 0.88) / 40.
  np.testing.assert_allclose(np.asarray(adv), [-0.0015, 0.0015, -0.0015, 0.0015], atol=1e-7)


@pytest.mark.parametrize("estimator", sorted(advantages.ESTIMATORS))
def test_permuting_the_batch_permutes_advantages(estimator):
  rewards, ids, _ = _batch(seed=2)
  lengths = np.random.default_rng(0).permutation(len(ids)).astype(np.int32)  # no ties
  perm = np.random.default_rng(1).permutation(len(ids))
  cfg = advantages.AdvantageConfig(estimator=estimator)
  adv, _ = _run(rewards, ids, lengths, cfg)
  adv_perm, _ = _run(rewards[perm], ids[perm], lengths[perm], cfg)
  np.testing.assert_allclose(np.asarray(adv_perm), np.asarray(adv)[perm], atol=1e-6)


def test_dynamic_sampling_mask():
  rewards, ids, _ = _batch()
  keep, masked = advantages.dynamic_sampling_mask(jnp.asarray(rewards), jnp.asarray(ids),
                                                  NUM_GROUPS)
  groups = _members(ids)
  expected = np.ones(len(ids), bool)
  for idx in groups.values():
    if _all_equal(rewards, idx):
      expected[idx] = False
  np.testing.assert_array_equal(np.asarray(keep), expected)
  assert int(masked) == 2


@pytest.mark.parametrize("estimator", sorted(advantages.ESTIMATORS))
@pytest.mark.parametrize("case", ["all_equal", "singletons", "one_response"])
def test_no_nan_on_degenerate_batches(estimator, case):
  n = 1 if case == "one_response" else 6
  rewards = jnp.full((n,), 0.3, jnp.float32)
  ids = jnp.arange(n, dtype=jnp.int32) if case == "singletons" else jnp.zeros(n, jnp.int32)
  cfg = advantages.AdvantageConfig(estimator=estimator, cale_alpha=1.0)
  adv, stats = advantages.compute_advantages(rewards, ids, jnp.ones(n, jnp.int32),
                                             num_groups=n, config=cfg)
  np.testing.assert_allclose(np.asarray(adv), 0.0, atol=1e-7)
  assert all(np.isfinite(np.asarray(v)).all() for v in stats.values())
  assert float(stats["zero_variance_group_fraction"]) == 1.0


def _ref_combine(scores, weights, ids, normalise, eps=1e-6):
  total = np.zeros(len(ids), np.float64)
  for v in range(scores.shape[1]):
    for idx in _members(ids).values():
      used = [i for i in idx if weights[i, v] != 0]
      if not used:
        continue
      vals = [float(scores[i, v]) for i in used]
      mean = sum(vals) / len(vals)
      std = (sum((x - mean) ** 2 for x in vals) / max(len(vals) - 1, 1)) ** 0.5
      for i in used:
        s = float(scores[i, v])
        if normalise:
          s = 0.0 if max(vals) == min(vals) else (s - mean) / (std + eps)
        total[i] += weights[i, v] * s
  return total


@pytest.mark.parametrize("normalise", [False, True])
def test_combine_objectives_matches_numpy(normalise):
  _, ids, _ = _batch()
  rng = np.random.default_rng(4)
  scores = rng.uniform(0, 1, (len(ids), 3)).astype(np.float32)
  scores[:, 2] *= 10.0  # a verifier on a wide scale
  weights = np.ones_like(scores)
  weights[ids % 2 == 0, 1] = 0.0  # verifier 1 does not apply to even groups
  scores[weights == 0] = np.nan
  weights[:, 2] = 0.5
  scores[ids == 3, 0] = 1.0  # one verifier constant within a group
  combined = advantages.combine_objectives(jnp.asarray(scores), jnp.asarray(weights),
                                           jnp.asarray(ids), NUM_GROUPS, normalise)
  np.testing.assert_allclose(np.asarray(combined), _ref_combine(scores, weights, ids, normalise),
                             rtol=1e-5, atol=1e-5)


def test_unknown_names_and_bad_fields_fail_clearly():
  with pytest.raises(KeyError, match="known: .*grpo"):
    advantages.get_estimator("ppo")
  with pytest.raises(ValueError, match="estimator"):
    advantages.AdvantageConfig(estimator="nope")
  with pytest.raises(ValueError, match="max_response_length"):
    advantages.AdvantageConfig(estimator="cale", length_norm="fixed")
  with pytest.raises(ValueError, match="cale_mu"):
    advantages.AdvantageConfig(cale_mu=1.5)
  with pytest.raises(TypeError, match="clip_weight"):
    advantages.AdvantageConfig(clip_weight=2.0)
  with pytest.raises(dataclasses.FrozenInstanceError):
    advantages.AdvantageConfig().std_eps = 1.0  # type: ignore[misc]


def test_estimators_trace_once_inside_an_outer_jit():
  rewards, ids, lengths = _batch()
  cfg = advantages.AdvantageConfig(estimator="grpo")
  traces = []

  @jax.jit
  def step(r, g, l):
    traces.append(1)
    return advantages.compute_advantages(r, g, l, num_groups=NUM_GROUPS, config=cfg)[0]

  first = step(rewards, ids, lengths)
  second = step(rewards + 1.0, ids, lengths)  # GRPO is shift-invariant
  assert len(traces) == 1
  np.testing.assert_allclose(np.asarray(first), np.asarray(second), atol=1e-6)

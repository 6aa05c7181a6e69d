"""Group-relative advantages: one scalar per response from the rewards of its group.

A rollout batch holds N responses; the responses of one prompt share a group id in
[0, num_groups). Groups need not be contiguous in the batch, nor of equal size. Every
estimator is a pure jit-able function

  estimator(rewards_n, group_ids_n, lengths_n, *, num_groups, config)
      -> (advantages_n, stats)

with `rewards_n` float32 [N], `group_ids_n` int32 [N], `lengths_n` int32 [N] (response
token counts), `num_groups` a static int and `config` a frozen `AdvantageConfig`;
`advantages_n` is float32 [N] and `stats` a dict of scalars. Estimators are found by name
in `ESTIMATORS` (`get_estimator`). The trainer broadcasts each advantage to the tokens of
its response; how tokens are then averaged is the loss's job (`rl.aggregation`).

METHOD.md §2.1 and §2.3 are the specification.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

Stats = dict[str, jax.Array]
Estimator = Callable[..., tuple[jax.Array, Stats]]

ESTIMATORS: dict[str, Estimator] = {}
LENGTH_NORMS = ("group_max", "fixed")


@dataclasses.dataclass(frozen=True)
class AdvantageConfig:
  """Settings of the advantage estimators (hashable: passed to jit as a static argument).

  Attributes:
    estimator: a name in `ESTIMATORS`.
    std_eps: eps in (R - mean) / (std + eps) ("grpo").
    unbiased_std: divide the group variance by G - 1 (as torch.std does) instead of G.
    clip_weight_max: c_w, the cap of the clip-filter-like weight (CPGD code: 3.0).
    dynamic_sampling: zero the advantages of groups whose rewards are all equal (DAPO);
      the trainer also drops their tokens from the loss mask (`dynamic_sampling_mask`).
    cale_mu: mu in [0, 1], the weight of the cross-half term of CALE.
    cale_alpha: alpha > 0; < 1 prefers shorter responses of equal reward (ours: 0.88,
      the example of METHOD.md §2.3).
    cale_beta: beta, the margin of CALE.
    length_norm: what CALE divides by: "group_max" (the longest response of the group, in
      tokens) or "fixed" (`max_response_length`).
    max_response_length: tokens; required (> 0) when `length_norm` is "fixed".
  """

  estimator: str = "grpo"
  std_eps: float = 1e-6
  unbiased_std: bool = True
  clip_weight_max: float = 3.0
  dynamic_sampling: bool = False
  cale_mu: float = 0.5
  cale_alpha: float = 0.88
  cale_beta: float = 0.0
  length_norm: str = "group_max"
  max_response_length: int = 0

  def __post_init__(self):
    if self.estimator not in ESTIMATORS:
      raise ValueError(f"AdvantageConfig.estimator: unknown {self.estimator!r}; known: "
                       f"{sorted(ESTIMATORS)}")
    if not self.std_eps > 0:
      raise ValueError(f"AdvantageConfig.std_eps must be > 0, got {self.std_eps}")
    if not self.clip_weight_max >= 1:
      raise ValueError(f"AdvantageConfig.clip_weight_max must be >= 1, got "
                       f"{self.clip_weight_max}")
    if not 0 <= self.cale_mu <= 1:
      raise ValueError(f"AdvantageConfig.cale_mu must be in [0, 1], got {self.cale_mu}")
    if not self.cale_alpha > 0:
      raise ValueError(f"AdvantageConfig.cale_alpha must be > 0, got {self.cale_alpha}")
    if self.length_norm not in LENGTH_NORMS:
      raise ValueError(f"AdvantageConfig.length_norm: unknown {self.length_norm!r}; known: "
                       f"{list(LENGTH_NORMS)}")
    if self.length_norm == "fixed" and self.max_response_length <= 0:
      raise ValueError("AdvantageConfig.max_response_length must be > 0 when length_norm is "
                       f"'fixed', got {self.max_response_length}")


def get_estimator(name: str) -> Estimator:
  """The registered estimator called `name`; fails naming the known ones."""
  if name not in ESTIMATORS:
    raise KeyError(f"unknown advantage estimator {name!r}; known: {sorted(ESTIMATORS)}")
  return ESTIMATORS[name]


def compute_advantages(rewards_n: jax.Array, group_ids_n: jax.Array, lengths_n: jax.Array,
                       *, num_groups: int, config: AdvantageConfig) -> tuple[jax.Array, Stats]:
  """Runs the estimator named by `config.estimator` (see the module docstring)."""
  return get_estimator(config.estimator)(rewards_n, group_ids_n, lengths_n,
                                         num_groups=num_groups, config=config)


def _register(name: str) -> Callable[[Callable], Estimator]:
  def wrap(fn: Callable) -> Estimator:
    jitted = jax.jit(fn, static_argnames=("num_groups", "config"))
    ESTIMATORS[name] = jitted
    return jitted
  return wrap


@dataclasses.dataclass(frozen=True)
class _Groups:
  """Per-group moments of the rewards; arrays indexed by group are [num_groups]."""

  count_g: jax.Array    # float32, responses per group (0 for ids absent from the batch)
  mean_g: jax.Array     # float32
  std_g: jax.Array      # float32
  constant_n: jax.Array  # bool [N], True where the response's group has all-equal rewards
  present_g: jax.Array  # bool
  constant_g: jax.Array  # bool, present and all rewards equal


def _group_moments(rewards_n, group_ids_n, num_groups, unbiased_std) -> _Groups:
  seg = functools.partial(jax.ops.segment_sum, segment_ids=group_ids_n,
                          num_segments=num_groups)
  count_g = seg(jnp.ones_like(rewards_n))
  mean_g = seg(rewards_n) / jnp.maximum(count_g, 1.0)
  sq_g = seg(jnp.square(rewards_n - mean_g[group_ids_n]))
  denom_g = count_g - 1.0 if unbiased_std else count_g
  std_g = jnp.sqrt(sq_g / jnp.maximum(denom_g, 1.0))
  # Exact equality (max == min), not std == 0, so rounding in the mean cannot leak signal.
  max_g = jax.ops.segment_max(rewards_n, group_ids_n, num_segments=num_groups)
  min_g = jax.ops.segment_min(rewards_n, group_ids_n, num_segments=num_groups)
  present_g = count_g > 0
  constant_g = present_g & (max_g == min_g)
  return _Groups(count_g, mean_g, std_g, constant_g[group_ids_n], present_g, constant_g)


def _check_inputs(rewards_n, group_ids_n, lengths_n) -> None:
  for name, x in (("rewards_n", rewards_n), ("group_ids_n", group_ids_n),
                  ("lengths_n", lengths_n)):
    if x.ndim != 1 or x.shape != rewards_n.shape:
      raise ValueError(f"{name} must be 1-D with the shape of rewards_n {rewards_n.shape}, "
                       f"got {x.shape}")


@functools.partial(jax.jit, static_argnames=("num_groups",))
def dynamic_sampling_mask(rewards_n: jax.Array, group_ids_n: jax.Array,
                          num_groups: int) -> tuple[jax.Array, jax.Array]:
  """Which responses carry signal: DAPO's dynamic sampling (arXiv 2503.14476, §3.2).

  A group whose rewards are all equal (including a group of one) has zero group-relative
  advantage, so it only dilutes the batch. The trainer multiplies the loss mask of a
  response by `keep_n` so those responses leave the aggregation denominators too.

  Args:
    rewards_n: float32 [N].
    group_ids_n: int32 [N] in [0, num_groups).
    num_groups: static number of group ids.

  Returns:
    keep_n: bool [N], False for the responses of all-equal-reward groups.
    num_masked_groups: int32 scalar, the number of such groups present in the batch.
  """
  groups = _group_moments(rewards_n.astype(jnp.float32), group_ids_n, num_groups, False)
  return ~groups.constant_n, jnp.sum(groups.constant_g).astype(jnp.int32)


def _finish(advantages_n, groups: _Groups, config: AdvantageConfig, **extra) -> tuple:
  """Applies the dynamic-sampling mask and computes the stats every estimator reports."""
  num_present = jnp.maximum(jnp.sum(groups.present_g), 1)
  num_constant = jnp.sum(groups.constant_g).astype(jnp.int32)
  keep_n = jnp.ones_like(groups.constant_n)
  masked_groups = jnp.zeros((), jnp.int32)
  if config.dynamic_sampling:
    keep_n, masked_groups = ~groups.constant_n, num_constant
    advantages_n = jnp.where(keep_n, advantages_n, 0.0)
  kept = jnp.maximum(jnp.sum(keep_n), 1)
  mean = jnp.sum(jnp.where(keep_n, advantages_n, 0.0)) / kept
  var = jnp.sum(jnp.where(keep_n, jnp.square(advantages_n - mean), 0.0)) / kept
  stats = {
      "advantage_mean": mean,
      "advantage_std": jnp.sqrt(var),
      "advantage_abs_max": jnp.max(jnp.abs(advantages_n), initial=0.0),
      "zero_variance_group_fraction": (num_constant / num_present).astype(jnp.float32),
      "masked_groups": masked_groups,
      "masked_responses": jnp.sum(~keep_n).astype(jnp.int32),
      **extra,
  }
  return advantages_n.astype(jnp.float32), stats


def _centered(rewards_n, group_ids_n, num_groups, unbiased_std) -> tuple[jax.Array, _Groups]:
  """R - mean_g R, exactly 0 in all-equal groups; the group moments."""
  rewards_n = rewards_n.astype(jnp.float32)
  groups = _group_moments(rewards_n, group_ids_n, num_groups, unbiased_std)
  centered_n = rewards_n - groups.mean_g[group_ids_n]
  return jnp.where(groups.constant_n, 0.0, centered_n), groups


@_register("grpo")
def grpo(rewards_n, group_ids_n, lengths_n, *, num_groups: int, config: AdvantageConfig):
  """GRPO outcome advantage = CPGD's "STD weight".

  A_k = (R_k - mean_g R) / (std_g R + eps): DeepSeekMath (arXiv 2402.03300, §4.1.2, outcome
  supervision, A_i = (r_i - mean(r)) / std(r)); CPGD (arXiv 2505.12504) calls it the STD
  weight. `config.unbiased_std` picks the G - 1 or the G divisor; `config.std_eps` is eps.
  Groups of all-equal rewards get exactly 0.
  """
  _check_inputs(rewards_n, group_ids_n, lengths_n)
  centered_n, groups = _centered(rewards_n, group_ids_n, num_groups, config.unbiased_std)
  advantages_n = centered_n / (groups.std_g[group_ids_n] + config.std_eps)
  return _finish(advantages_n, groups, config)


@_register("equal_weight")
def equal_weight(rewards_n, group_ids_n, lengths_n, *, num_groups: int,
                 config: AdvantageConfig):
  """CPGD's "equal weight" (arXiv 2505.12504): A_k = R_k - mean_g R, no std division."""
  _check_inputs(rewards_n, group_ids_n, lengths_n)
  centered_n, groups = _centered(rewards_n, group_ids_n, num_groups, config.unbiased_std)
  return _finish(centered_n, groups, config)


@_register("clip_filter_weight")
def clip_filter_weight(rewards_n, group_ids_n, lengths_n, *, num_groups: int,
                       config: AdvantageConfig):
  """CPGD's clip-filter-like weight (arXiv 2505.12504).

  A_k = w (R_k - mean_g R), w = min(c_w, P / P_nz), with P the prompts (groups) of the batch
  and P_nz those whose rewards are not all equal: the batch's signal is rescaled as if the
  dead groups had been filtered out, at most by c_w (`config.clip_weight_max`). With no
  live group every advantage is 0 and w is reported as 1. Stats add "clip_filter_weight".
  """
  _check_inputs(rewards_n, group_ids_n, lengths_n)
  centered_n, groups = _centered(rewards_n, group_ids_n, num_groups, config.unbiased_std)
  num_prompts = jnp.sum(groups.present_g).astype(jnp.float32)
  num_live = jnp.sum(groups.present_g & ~groups.constant_g).astype(jnp.float32)
  weight = jnp.where(num_live > 0,
                     jnp.minimum(config.clip_weight_max, num_prompts / jnp.maximum(num_live, 1)),
                     1.0)
  return _finish(weight * centered_n, groups, config, clip_filter_weight=weight)


@_register("dr_grpo")
def dr_grpo(rewards_n, group_ids_n, lengths_n, *, num_groups: int, config: AdvantageConfig):
  """Dr.GRPO (arXiv 2503.20783, §3.2): A_k = R_k - mean_g R, no std division.

  The value equals "equal_weight"; Dr.GRPO's other half is the loss aggregation: pair it
  with `aggregation="seq-mean-token-sum-norm"` (token sum / a constant max length) so that
  neither the std nor the response length biases the gradient.
  """
  _check_inputs(rewards_n, group_ids_n, lengths_n)
  centered_n, groups = _centered(rewards_n, group_ids_n, num_groups, config.unbiased_std)
  return _finish(centered_n, groups, config)


@_register("rloo")
def rloo(rewards_n, group_ids_n, lengths_n, *, num_groups: int, config: AdvantageConfig):
  """RLOO (Ahmadian et al., arXiv 2402.14740): leave-one-out baseline.

  A_k = R_k - (1 / (G - 1)) sum_{j != k} R_j = G / (G - 1) (R_k - mean_g R). A group of
  one has no baseline and gets 0.
  """
  _check_inputs(rewards_n, group_ids_n, lengths_n)
  centered_n, groups = _centered(rewards_n, group_ids_n, num_groups, config.unbiased_std)
  count_n = groups.count_g[group_ids_n]
  advantages_n = jnp.where(count_n > 1, centered_n * count_n / jnp.maximum(count_n - 1, 1), 0.)
  return _finish(advantages_n, groups, config)


@functools.partial(jax.jit, static_argnames=("num_groups",))
def cale_halves(group_ids_n: jax.Array, lengths_n: jax.Array, num_groups: int) -> jax.Array:
  """Each response's membership of its group's shorter half S, float32 [N] in {0, 1/2, 1}.

  Responses are ranked within their group by (length, position in the batch): of equal
  lengths the earlier one counts as shorter, so the split is deterministic. With rank k in
  [0, G) the response is in S if 2k < G - 1, in L if 2k > G - 1, and, for odd G, the median
  (2k = G - 1) belongs half to each. Both halves then weigh G / 2, so (m_S + m_L) / 2 is
  the group mean and a group of one response gets a zero advantage.
  """
  n = group_ids_n.shape[0]
  order_n = jnp.lexsort((jnp.arange(n), lengths_n, group_ids_n))
  count_g = jax.ops.segment_sum(jnp.ones((n,), jnp.int32), group_ids_n,
                                num_segments=num_groups)
  start_g = jnp.cumsum(count_g) - count_g
  rank_sorted_n = jnp.arange(n) - start_g[group_ids_n[order_n]]
  rank_n = jnp.zeros((n,), jnp.int32).at[order_n].set(rank_sorted_n.astype(jnp.int32))
  twice_rank_n, last_n = 2 * rank_n, count_g[group_ids_n] - 1
  return jnp.where(twice_rank_n < last_n, 1.0,
                   jnp.where(twice_rank_n == last_n, 0.5, 0.0)).astype(jnp.float32)


@_register("cale")
def cale(rewards_n, group_ids_n, lengths_n, *, num_groups: int, config: AdvantageConfig):
  """CALE, the conditional length-aware advantage (METHOD.md §2.3; CANON, arXiv 2509.23962).

  Within a group, S is the shorter and L the longer half (`cale_halves`), m_S and m_L their
  mean rewards. With mu, alpha, beta = `config.cale_mu`, `cale_alpha`, `cale_beta`:
    y in L: A = mu (alpha R_y - m_S + beta) + (1 - mu) (R_y - m_L)
    y in S: A = mu (R_y - alpha m_L - beta) + (1 - mu) (R_y - m_S)
  (the median of an odd group takes the mean of both), then A is divided by the maximum
  response length, the group's longest (`length_norm="group_max"`) or
  `max_response_length` ("fixed"): the Dr.GRPO scaling, so pair it with the
  "seq-mean-token-sum" aggregation. mu = 0.5, alpha = 1, beta = 0 gives (R - mean) / max_len.
  Unlike the mean-centred estimators, an all-equal group keeps a signal when alpha != 1 or
  beta != 0 (the shorter of equally good answers is preferred); `dynamic_sampling` drops it.
  """
  _check_inputs(rewards_n, group_ids_n, lengths_n)
  rewards_n = rewards_n.astype(jnp.float32)
  in_s_n = cale_halves(group_ids_n, lengths_n, num_groups)
  in_l_n = 1.0 - in_s_n
  seg = functools.partial(jax.ops.segment_sum, segment_ids=group_ids_n,
                          num_segments=num_groups)
  m_s_g = seg(in_s_n * rewards_n) / jnp.maximum(seg(in_s_n), 0.5)
  m_l_g = seg(in_l_n * rewards_n) / jnp.maximum(seg(in_l_n), 0.5)
  m_s_n, m_l_n = m_s_g[group_ids_n], m_l_g[group_ids_n]
  mu, alpha, beta = config.cale_mu, config.cale_alpha, config.cale_beta
  long_n = mu * (alpha * rewards_n - m_s_n + beta) + (1 - mu) * (rewards_n - m_l_n)
  short_n = mu * (rewards_n - alpha * m_l_n - beta) + (1 - mu) * (rewards_n - m_s_n)
  if config.length_norm == "fixed":
    scale_n = jnp.full_like(rewards_n, float(config.max_response_length))
  else:
    max_len_g = jax.ops.segment_max(lengths_n, group_ids_n, num_segments=num_groups)
    scale_n = jnp.maximum(max_len_g[group_ids_n], 1).astype(jnp.float32)
  advantages_n = (in_l_n * long_n + in_s_n * short_n) / scale_n
  groups = _group_moments(rewards_n, group_ids_n, num_groups, config.unbiased_std)
  return _finish(advantages_n, groups, config)


@functools.partial(jax.jit, static_argnames=("num_groups", "normalise_per_objective",
                                             "unbiased_std"))
def combine_objectives(scores_nv: jax.Array, weights_nv: jax.Array, group_ids_n: jax.Array,
                       num_groups: int, normalise_per_objective: bool, eps: float = 1e-6,
                       unbiased_std: bool = True) -> jax.Array:
  """One reward per response from V verifier scores (multi-objective option, ours).

  Without normalisation: R = sum_v w_v s_v. With it (GDPO, "group reward-decoupled
  normalisation", arXiv 2601.05242, as in TRL): each verifier's score is first normalised
  within the group, s'_v = (s_v - mean_g s_v) / (std_g s_v + eps), over the responses the
  verifier applies to, so a verifier with a wide scale cannot drown the others:
  R = sum_v w_v s'_v. The estimator is then applied to R. Pass the format reward as a
  column of weight 1 to include it.

  Args:
    scores_nv: float32 [N, V]; may be NaN where the verifier does not apply.
    weights_nv: float32 [N, V]; 0 where the verifier does not apply to the response.
    group_ids_n: int32 [N] in [0, num_groups).
    num_groups: static number of group ids.
    normalise_per_objective: static; normalise each verifier within the group first.
    eps: added to the std.
    unbiased_std: divide the variance by (count - 1) instead of count.

  Returns:
    float32 [N], the combined reward.
  """
  if scores_nv.shape != weights_nv.shape or scores_nv.ndim != 2:
    raise ValueError(f"scores_nv {scores_nv.shape} and weights_nv {weights_nv.shape} must "
                     "be the same [N, V] shape")
  applies_nv = weights_nv != 0
  scores_nv = jnp.where(applies_nv, scores_nv.astype(jnp.float32), 0.0)
  if normalise_per_objective:
    seg = functools.partial(jax.ops.segment_sum, segment_ids=group_ids_n,
                            num_segments=num_groups)
    count_gv = seg(applies_nv.astype(jnp.float32))
    mean_gv = seg(scores_nv) / jnp.maximum(count_gv, 1.0)
    dev_nv = jnp.where(applies_nv, scores_nv - mean_gv[group_ids_n], 0.0)
    denom_gv = count_gv - 1.0 if unbiased_std else count_gv
    std_gv = jnp.sqrt(seg(jnp.square(dev_nv)) / jnp.maximum(denom_gv, 1.0))
    big = jnp.finfo(jnp.float32).max
    hi_gv = jax.ops.segment_max(jnp.where(applies_nv, scores_nv, -big), group_ids_n,
                                num_segments=num_groups)
    lo_gv = jax.ops.segment_min(jnp.where(applies_nv, scores_nv, big), group_ids_n,
                                num_segments=num_groups)
    constant_nv = (hi_gv <= lo_gv)[group_ids_n]
    scores_nv = jnp.where(constant_nv, 0.0, dev_nv / (std_gv[group_ids_n] + eps))
  return jnp.sum(weights_nv.astype(jnp.float32) * scores_nv, axis=-1)

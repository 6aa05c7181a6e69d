"""How per-token loss values become one scalar: the aggregation modes of every RL loss.

Every mode is a weighted sum, loss = sum_bt w_bt * value_bt, with weights that depend only
on the mask, so one function (`token_weights`) serves the loss, its metrics and tests of
its gradient. B is the batch (responses), T the response length in tokens; `mask_bt` is 1
on the tokens that count (tool outputs and padding are 0).

Modes:
  token-mean:               sum_bt m v / sum_bt m (DAPO's token-level loss,
                            arXiv 2503.14476 §3.3).
  seq-mean-token-mean:      mean over responses of (sum_t m v / sum_t m) (GRPO as written
                            in DeepSeekMath, arXiv 2402.03300 Eq. 3).
  seq-mean-token-sum:       mean over responses of sum_t m v.
  seq-mean-token-sum-norm:  mean over responses of sum_t m v / max_response_length, a
                            constant (Dr.GRPO, arXiv 2503.20783 §3.2).
The response-level means run over responses with at least one counted token (a response
that dynamic sampling dropped by zeroing its mask is not counted). An empty mask gives 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum",
                "seq-mean-token-sum-norm")


def check_mode(mode: str, max_response_length: int | None, owner: str = "aggregation") -> None:
  """Fails, naming `owner`, on an unknown mode or a missing constant length."""
  if mode not in AGGREGATIONS:
    raise ValueError(f"{owner}: unknown aggregation {mode!r}; known: {list(AGGREGATIONS)}")
  if mode == "seq-mean-token-sum-norm" and not (max_response_length or 0) > 0:
    raise ValueError(f"{owner}: 'seq-mean-token-sum-norm' needs max_response_length > 0, got "
                     f"{max_response_length}")


def token_weights(mask_bt: jax.Array, mode: str,
                  max_response_length: int | None = None) -> jax.Array:
  """The weight of each token in the aggregated loss, float32 [B, T], zero off the mask.

  Args:
    mask_bt: [B, T], 1 (or True) on the tokens that count.
    mode: one of `AGGREGATIONS` (static).
    max_response_length: the constant of "seq-mean-token-sum-norm", in tokens.
  """
  check_mode(mode, max_response_length)
  mask_bt = mask_bt.astype(jnp.float32)
  if mode == "token-mean":
    return mask_bt / jnp.maximum(jnp.sum(mask_bt), 1.0)
  tokens_b = jnp.sum(mask_bt, axis=-1)
  num_responses = jnp.maximum(jnp.sum(tokens_b > 0), 1).astype(jnp.float32)
  if mode == "seq-mean-token-mean":
    per_response_bt = mask_bt / jnp.maximum(tokens_b, 1.0)[:, None]
  elif mode == "seq-mean-token-sum":
    per_response_bt = mask_bt
  else:
    per_response_bt = mask_bt / float(max_response_length)
  return per_response_bt / num_responses


def aggregate(values_bt: jax.Array, mask_bt: jax.Array, mode: str,
              max_response_length: int | None = None) -> jax.Array:
  """sum_bt w_bt * values_bt with `token_weights`; float32 scalar, 0 for an empty mask.

  Values off the mask are ignored even when they are not finite.
  """
  weights_bt = token_weights(mask_bt, mode, max_response_length)
  return jnp.sum(jnp.where(weights_bt > 0, weights_bt * values_bt.astype(jnp.float32), 0.0))


def masked_mean(values_bt: jax.Array, mask_bt: jax.Array) -> jax.Array:
  """The token mean of `values_bt` over the mask (0 when empty), for metrics."""
  return aggregate(values_bt, mask_bt, "token-mean")


def masked_max(values_bt: jax.Array, mask_bt: jax.Array) -> jax.Array:
  """The maximum of `values_bt` over the mask (0 when empty), for metrics."""
  mask_bt = mask_bt.astype(bool)
  largest = jnp.max(jnp.where(mask_bt, values_bt.astype(jnp.float32), -jnp.inf))
  return jnp.where(jnp.any(mask_bt), largest, 0.0)


def normaliser(mask_bt: jax.Array, mode: str) -> jax.Array:
  """The denominator `aggregate` divides by: counted tokens (token-mean) or responses
  with at least one counted token (seq-mean modes); float32, at least 1.

  Gradient accumulation weights micro-batch i's loss by normaliser_i / normaliser_all,
  which makes the sum over micro-batches equal the loss of the whole batch exactly.
  """
  mask_bt = mask_bt.astype(jnp.float32)
  if mode == "token-mean":
    return jnp.maximum(jnp.sum(mask_bt), 1.0)
  return jnp.maximum(jnp.sum(jnp.sum(mask_bt, axis=-1) > 0), 1).astype(jnp.float32)

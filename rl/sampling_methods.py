"""Token-drawing rules of the sampler: greedy, temperature, top-k, top-p (nucleus), min-p,
and exploring (drawn at one temperature, recorded at another).

Each method is a small frozen dataclass (hashable, so the jitted decode loop takes it as a
static argument: one compilation per method and setting) with

  tokens_b = method.draw(logits_bv, keys_b)      # int32 [B]
  logp_b = token_logprobs(logits_bv, tokens_b, method.temperature)

`logits_bv` are float32 [B, V] next-token logits and `keys_b` one PRNG key per row (a
row's draw depends only on its own key, so results do not depend on how rows are split
over devices). Temperature is applied as `logits / temperature` before any truncation
(top-k, top-p and min-p act on the tempered distribution, as transformers' warpers do).

The log-probability recorded for a sampled token is that of the *untruncated* tempered
distribution, log_softmax(logits / temperature)[token], with temperature 1 for greedy:
exactly what the train step recomputes from a full forward at the same temperature, so
the importance ratio is 1 before the first update. Truncation only restricts which
tokens can be drawn.

Axis letters: B rows, V vocab, K kept candidates (top-k).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp


def _check_temperature(owner: str, temperature: float) -> None:
  if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)
          and temperature > 0):
    raise ValueError(f"{owner}.temperature must be a finite number > 0, got {temperature!r}")


def _categorical(keys_b: jax.Array, logits_bv: jax.Array) -> jax.Array:
  """One draw per row from softmax(logits) (entries of -inf are never drawn)."""
  return jax.vmap(jax.random.categorical)(keys_b, logits_bv).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class Greedy:
  """The argmax token (the lowest id among ties). Log-probabilities at temperature 1."""

  @property
  def temperature(self) -> float:
    return 1.0

  def draw(self, logits_bv: jax.Array, keys_b: jax.Array) -> jax.Array:
    del keys_b
    return jnp.argmax(logits_bv, axis=-1).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class Temperature:
  """A draw from softmax(logits / temperature) over the whole vocabulary."""

  temperature: float = 1.0

  def __post_init__(self):
    _check_temperature("Temperature", self.temperature)

  def draw(self, logits_bv: jax.Array, keys_b: jax.Array) -> jax.Array:
    return _categorical(keys_b, logits_bv / self.temperature)


@dataclasses.dataclass(frozen=True)
class TopK:
  """A draw among the k most likely tokens, renormalised (ties at the k-th: lowest ids)."""

  k: int
  temperature: float = 1.0

  def __post_init__(self):
    if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
      raise ValueError(f"TopK.k must be an int >= 1, got {self.k!r}")
    _check_temperature("TopK", self.temperature)

  def draw(self, logits_bv: jax.Array, keys_b: jax.Array) -> jax.Array:
    if self.k > logits_bv.shape[-1]:
      raise ValueError(f"TopK.k = {self.k} exceeds the vocabulary size {logits_bv.shape[-1]}")
    values_bk, ids_bk = jax.lax.top_k(logits_bv / self.temperature, self.k)
    choice_b = _categorical(keys_b, values_bk)
    return jnp.take_along_axis(ids_bk, choice_b[:, None], axis=-1)[:, 0].astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class TopP:
  """Nucleus sampling: a draw among the smallest set of most likely tokens whose
  probability reaches p (the most likely token is always kept), renormalised."""

  p: float
  temperature: float = 1.0

  def __post_init__(self):
    if not (isinstance(self.p, (int, float)) and 0 < self.p <= 1):
      raise ValueError(f"TopP.p must be in (0, 1], got {self.p!r}")
    _check_temperature("TopP", self.temperature)

  def draw(self, logits_bv: jax.Array, keys_b: jax.Array) -> jax.Array:
    scaled_bv = logits_bv / self.temperature
    # Sorted descending (stable: equal logits keep id order); drawing in sorted space and
    # mapping back keeps exactly the nucleus, ties at its edge included or not by rank.
    order_bv = jnp.argsort(-scaled_bv, axis=-1, stable=True)
    sorted_bv = jnp.take_along_axis(scaled_bv, order_bv, axis=-1)
    probs_bv = jax.nn.softmax(sorted_bv, axis=-1)
    mass_before_bv = jnp.cumsum(probs_bv, axis=-1) - probs_bv
    keep_bv = mass_before_bv < self.p
    choice_b = _categorical(keys_b, jnp.where(keep_bv, sorted_bv, -jnp.inf))
    return jnp.take_along_axis(order_bv, choice_b[:, None], axis=-1)[:, 0].astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class MinP:
  """Min-p sampling: a draw among tokens whose probability is at least p times the most
  likely token's, renormalised."""

  p: float
  temperature: float = 1.0

  def __post_init__(self):
    if not (isinstance(self.p, (int, float)) and 0 <= self.p <= 1):
      raise ValueError(f"MinP.p must be in [0, 1], got {self.p!r}")
    _check_temperature("MinP", self.temperature)

  def draw(self, logits_bv: jax.Array, keys_b: jax.Array) -> jax.Array:
    scaled_bv = logits_bv / self.temperature
    if self.p == 0:
      return _categorical(keys_b, scaled_bv)
    # p_i >= p * p_max  <=>  z_i >= z_max + log p (the softmax normaliser cancels).
    floor_b1 = jnp.max(scaled_bv, axis=-1, keepdims=True) + math.log(self.p)
    return _categorical(keys_b, jnp.where(scaled_bv >= floor_b1, scaled_bv, -jnp.inf))


@dataclasses.dataclass(frozen=True)
class Exploring:
  """A draw from softmax(logits / draw_temperature), recorded with the log-probability at
  `temperature`, the policy's: exploration whose tokens enter the loss as the policy's own
  samples (importance ratio 1 before the first update, no pull of the loss towards the
  broader distribution). The policy-gradient estimate is then off-policy at these tokens
  by design; use it for a few chosen tokens (rl/search_rollout.py's confidences).
  `tokens`, when given, are the only ids drawn (e.g. the confidence values)."""

  draw_temperature: float = 1.0
  temperature: float = 1.0
  tokens: tuple[int, ...] = ()

  def __post_init__(self):
    _check_temperature("Exploring", self.temperature)
    t = self.draw_temperature
    if not (isinstance(t, (int, float)) and math.isfinite(t) and t > 0):
      raise ValueError(f"Exploring.draw_temperature must be a finite number > 0, got {t!r}")
    if not isinstance(self.tokens, tuple) or not all(
        isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in self.tokens):
      raise ValueError(f"Exploring.tokens must be a tuple of token ids, got {self.tokens!r}")

  def draw(self, logits_bv: jax.Array, keys_b: jax.Array) -> jax.Array:
    scaled_bv = logits_bv / self.draw_temperature
    if self.tokens:
      allowed_v = jnp.zeros(logits_bv.shape[-1], bool).at[jnp.asarray(self.tokens)].set(True)
      scaled_bv = jnp.where(allowed_v, scaled_bv, -jnp.inf)
    return _categorical(keys_b, scaled_bv)


Method = Greedy | Temperature | TopK | TopP | MinP | Exploring

METHODS: dict[str, type] = {"greedy": Greedy, "temperature": Temperature, "top_k": TopK,
                            "top_p": TopP, "min_p": MinP, "exploring": Exploring}


def method_from_config(cfg: Mapping[str, Any]) -> Method:
  """A method from a config slice such as `{'name': 'top_p', 'p': 0.9, 'temperature': 1.0}`.

  An unknown name or field fails with a message that names it.
  """
  values = dict(cfg)
  name = values.pop("name", None)
  if name not in METHODS:
    raise ValueError(f"sampling method name {name!r} is unknown; known: {sorted(METHODS)}")
  cls = METHODS[name]
  known = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(values) - known)
  if unknown:
    raise ValueError(f"sampling method {name!r} has no field(s) {unknown}; its fields: "
                     f"{sorted(known)}")
  return cls(**values)


# Logit of a token the policy never writes: finite, so masked positions cannot make NaN.
_NEVER = -1e9


def policy_logits(logits_bv: jax.Array, config) -> jax.Array:
  """The policy's logits: the model's, with the vision placeholders (image and video pads,
  vision start and end) made impossible. They only ever come from the prompt builder; a
  response that contained one would have image features spliced into it in training and
  its log-probability would no longer be the sampler's. The sampler and the train step
  both go through here, so their distributions stay identical."""
  ids = jnp.asarray([config.image_token_id, config.video_token_id,
                     config.vision_start_token_id, config.vision_end_token_id])
  return logits_bv.astype(jnp.float32).at[..., ids].set(_NEVER)


def token_logprobs(logits_bv: jax.Array, tokens_b: jax.Array, temperature: float) -> jax.Array:
  """float32 [B]: log_softmax(logits / temperature) at each row's token."""
  scaled_bv = logits_bv.astype(jnp.float32) / temperature
  picked_b = jnp.take_along_axis(scaled_bv, tokens_b[:, None], axis=-1)[:, 0]
  return picked_b - jax.nn.logsumexp(scaled_bv, axis=-1)

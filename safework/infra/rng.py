"""Explicit PRNG discipline: one root key, a key per step, a key per named consumer.

  root = root_key(config.seed)
  keys = split_named(step_key(root, step), ("sampling", "dropout"))
  tokens = sample(..., rng=keys["sampling"])

Keys are derived by `fold_in`, never by the order of a `split`, so a consumer's stream
depends only on (seed, step, its own name): adding a consumer, removing one or changing
the order of names leaves every other stream unchanged, and a resumed run (restarting
at step N) draws exactly what the uninterrupted run drew at step N. The name is folded in
as its CRC-32 (`zlib.crc32` of the UTF-8 bytes), a fixed function: streams do not change
with the Python version or `PYTHONHASHSEED`.

All keys are typed keys (`jax.random.key`, dtype `key<impl>`); raw uint32 keys from
`jax.random.PRNGKey` are accepted as inputs as well.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import jax


def root_key(seed: int, impl: str | None = None) -> jax.Array:
  """The run's root key.

  Args:
    seed: a non-negative int (the config's seed).
    impl: a PRNG implementation name (`'threefry2x32'`, `'rbg'`, ...); None uses JAX's
      default.

  Returns:
    a typed key array of shape [].
  """
  if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
    raise ValueError(f"seed must be a non-negative int, got {seed!r}")
  return jax.random.key(seed, impl=impl)


def step_key(root: jax.Array, step: int | jax.Array) -> jax.Array:
  """The key of training step `step`: `fold_in(root, step)`.

  Args:
    root: a key of shape [].
    step: a non-negative int, or an integer array of shape [] (may be traced under jit).
  """
  if isinstance(step, int) and not 0 <= step < 2**32:
    raise ValueError(f"step must be in [0, 2**32), got {step}")
  return jax.random.fold_in(root, step)


def name_hash(name: str) -> int:
  """The stable 32-bit code of a consumer name: CRC-32 of its UTF-8 bytes."""
  if not isinstance(name, str) or not name:
    raise ValueError(f"A key name must be a non-empty str, got {name!r}")
  return zlib.crc32(name.encode("utf-8"))


def named_key(key: jax.Array, name: str) -> jax.Array:
  """The key of consumer `name` under `key`: `fold_in(key, name_hash(name))`."""
  return jax.random.fold_in(key, name_hash(name))


def split_named(key: jax.Array, names: Iterable[str]) -> dict[str, jax.Array]:
  """One key per consumer name, each independent of which other names are asked for.

  Args:
    key: a key of shape [] (typically a `step_key`).
    names: distinct non-empty consumer names, e.g. `("sampling", "rewards")`.

  Returns:
    `{name: key}` in the order of `names`.

  Raises:
    ValueError: a repeated name, or two names with the same CRC-32 (they would share a
      stream).
  """
  if isinstance(names, str):
    raise ValueError(f"split_named takes a sequence of names, got the str {names!r}")
  keys: dict[str, jax.Array] = {}
  codes: dict[int, str] = {}
  for name in names:
    code = name_hash(name)
    if name in keys:
      raise ValueError(f"split_named got the name {name!r} twice")
    if code in codes:
      raise ValueError(f"Key names {codes[code]!r} and {name!r} have the same CRC-32; "
                       f"rename one")
    codes[code] = name
    keys[name] = jax.random.fold_in(key, code)
  return keys

"""Tests of safework/infra/rng.py: determinism, stability under added consumers,
independence of streams."""

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from safework.infra import rng


def _data(key) -> np.ndarray:
  return np.asarray(jax.random.key_data(key))


def test_same_seed_same_keys_and_draws():
  a = rng.split_named(rng.step_key(rng.root_key(7), 3), ["sampling", "dropout"])
  b = rng.split_named(rng.step_key(rng.root_key(7), 3), ["sampling", "dropout"])
  for name in a:
    np.testing.assert_array_equal(_data(a[name]), _data(b[name]))
    np.testing.assert_array_equal(jax.random.uniform(a[name], (4,)),
                                  jax.random.uniform(b[name], (4,)))
  assert not np.array_equal(_data(rng.root_key(7)), _data(rng.root_key(8)))


def test_derivation_is_fold_in_of_step_and_crc32():
  # The documented derivation, spelled out with jax.random and zlib directly: a stream
  # must not change between versions of this module, or resumed runs would diverge.
  root = jax.random.key(5)
  expected = jax.random.fold_in(jax.random.fold_in(root, 12), zlib.crc32(b"rewards"))
  got = rng.split_named(rng.step_key(rng.root_key(5), 12), ["rewards"])["rewards"]
  np.testing.assert_array_equal(_data(got), _data(expected))
  np.testing.assert_array_equal(_data(rng.named_key(root, "rewards")),
                                _data(jax.random.fold_in(root, zlib.crc32(b"rewards"))))


def test_a_consumer_key_does_not_depend_on_the_others():
  key = rng.step_key(rng.root_key(0), 1)
  alone = rng.split_named(key, ["sampling"])["sampling"]
  more = rng.split_named(key, ["logprob", "sampling", "update"])
  reordered = rng.split_named(key, ["update", "sampling"])
  np.testing.assert_array_equal(_data(more["sampling"]), _data(alone))
  np.testing.assert_array_equal(_data(reordered["sampling"]), _data(alone))
  assert list(more) == ["logprob", "sampling", "update"]


def test_streams_are_distinct_and_uncorrelated():
  root = rng.root_key(0)
  keys = rng.split_named(rng.step_key(root, 0), ["sampling", "rewards", "logprob", "update"])
  keys.update({f"step{s}": rng.step_key(root, s) for s in range(4)})
  data = {name: tuple(_data(k)) for name, k in keys.items()}
  assert len(set(data.values())) == len(data)
  draws = np.stack([np.asarray(jax.random.uniform(k, (20000,))) for k in keys.values()])
  corr = np.corrcoef(draws)
  off_diagonal = corr[~np.eye(len(keys), dtype=bool)]
  # Independent uniform streams: |r| ~ N(0, 1/sqrt(20000)) = 0.007; 0.04 is > 5 sigma.
  assert np.abs(off_diagonal).max() < 0.04
  np.testing.assert_allclose(draws.mean(axis=1), 0.5, atol=0.01)


def test_step_key_under_jit_matches_eager():
  root = rng.root_key(3)
  jitted = jax.jit(rng.step_key)(root, jnp.int32(9))
  np.testing.assert_array_equal(_data(jitted), _data(rng.step_key(root, 9)))


def test_raw_uint32_keys_are_accepted():
  raw = jax.random.PRNGKey(4)
  typed = jax.random.wrap_key_data(raw)
  np.testing.assert_array_equal(
      np.asarray(rng.split_named(raw, ["a"])["a"]),
      _data(rng.split_named(typed, ["a"])["a"]))


def test_impl_is_kept():
  key = rng.split_named(rng.step_key(rng.root_key(1, impl="rbg"), 2), ["a"])["a"]
  assert str(jax.random.key_impl(key)) == "rbg"


def test_bad_inputs_are_named():
  with pytest.raises(ValueError, match="seed must be a non-negative int"):
    rng.root_key(-1)
  with pytest.raises(ValueError, match="seed must be a non-negative int"):
    rng.root_key(1.5)
  with pytest.raises(ValueError, match=r"step must be in \[0, 2\*\*32\)"):
    rng.step_key(rng.root_key(0), -2)
  with pytest.raises(ValueError, match="'a' twice"):
    rng.split_named(rng.root_key(0), ["a", "b", "a"])
  with pytest.raises(ValueError, match="sequence of names, got the str 'sampling'"):
    rng.split_named(rng.root_key(0), "sampling")
  with pytest.raises(ValueError, match="non-empty str"):
    rng.split_named(rng.root_key(0), [""])
  # A known CRC-32 collision: both names would get the same stream.
  with pytest.raises(ValueError, match="'plumless' and 'buckeroo' have the same CRC-32"):
    rng.split_named(rng.root_key(0), ["plumless", "buckeroo"])

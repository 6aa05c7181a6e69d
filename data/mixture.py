"""Weighted mixtures of example sources, as the M³-RL curriculum needs them
(stage A: knowledge + general; stage B: safety + value + knowledge + general)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from data.example import Example


def mixture(sources: Mapping[str, Sequence[Example]], weights: Mapping[str, float], size: int,
            seed: int = 0) -> list[Example]:
  """`size` examples drawn so each source's share is its weight (largest remainders),
  each source cycled in a seeded random order, the result shuffled.

  Args:
    sources: name -> examples.
    weights: name -> non-negative weight; names missing from `sources` fail.
    size: examples in the mixture.
    seed: the order of everything.
  """
  unknown = sorted(set(weights) - set(sources))
  if unknown:
    raise ValueError(f"mixture weights name unknown sources {unknown}; sources are "
                     f"{sorted(sources)}")
  names = sorted(n for n, w in weights.items() if w > 0)
  if any(w < 0 for w in weights.values()) or not names:
    raise ValueError(f"mixture weights must be >= 0 with at least one positive: {dict(weights)}")
  empty = [n for n in names if not len(sources[n])]
  if empty:
    raise ValueError(f"mixture sources {empty} have no examples")
  total = sum(weights[n] for n in names)
  exact = np.array([size * weights[n] / total for n in names])
  counts = np.floor(exact).astype(int)
  for i in np.argsort(-(exact - counts), kind="stable")[:size - counts.sum()]:
    counts[i] += 1
  rng = np.random.default_rng(seed)
  out = []
  for name, count in zip(names, counts):
    order = rng.permutation(len(sources[name]))
    out += [sources[name][order[i % len(order)]] for i in range(count)]
  return [out[i] for i in rng.permutation(len(out))]

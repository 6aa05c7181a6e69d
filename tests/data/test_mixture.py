import pytest

from data.example import Example
from data.mixture import mixture


def _examples(prefix, n):
  return [Example(f"{prefix}{i}", prefix, "q") for i in range(n)]


def test_shares_follow_the_weights_exactly_and_sources_cycle():
  sources = {"a": _examples("a", 3), "b": _examples("b", 50), "c": _examples("c", 50)}
  mixed = mixture(sources, {"a": 1.0, "b": 2.0, "c": 0.0}, size=10, seed=0)
  labels = [e.label for e in mixed]
  # 10 * 1/3 = 3.33 and 10 * 2/3 = 6.67: the larger remainder gets the extra one.
  assert labels.count("a") == 3 and labels.count("b") == 7 and labels.count("c") == 0
  assert len({e.uid for e in mixed if e.label == "a"}) == 3  # Cycled without repeats.
  assert mixture(sources, {"a": 1.0, "b": 2.0}, 10, seed=0) == mixed  # Deterministic.
  assert mixture(sources, {"a": 1.0, "b": 2.0}, 10, seed=1) != mixed


def test_bad_weights_fail_by_name():
  with pytest.raises(ValueError, match=r"unknown sources \['d'\]"):
    mixture({"a": _examples("a", 1)}, {"d": 1.0}, 4)
  with pytest.raises(ValueError, match="at least one positive"):
    mixture({"a": _examples("a", 1)}, {"a": 0.0}, 4)
  with pytest.raises(ValueError, match=r"sources \['a'\] have no examples"):
    mixture({"a": []}, {"a": 1.0}, 4)

"""Pieces every family's responses are assembled from: the trace format, padded
(overlong) thinking, step lists, and illogical completions."""

from __future__ import annotations

import re

import numpy as np

from data import special_tokens as st
from data.world import lexicon

ILLOGICAL_KINDS = ("salad", "repeat", "truncated", "off_topic")
_WORD = re.compile(r"[A-Za-z0-9]+")


def trace(think: str, answer: str) -> str:
  """`<think>think</think> answer`, the format of every response."""
  return f"{st.THINK_OPEN}{think}{st.THINK_CLOSE} {answer}"


def pick(rng: np.random.Generator, options):
  """One element of a sequence, uniformly."""
  return options[int(rng.integers(len(options)))]


def pad_thinking(think: str, recap: str, rng: np.random.Generator,
                 repeats: tuple[int, int]) -> str:
  """`think` followed by `repeats` re-checks that restate `recap` (overthinking)."""
  n = int(rng.integers(repeats[0], repeats[1] + 1))
  return " ".join([think] + [f"{lexicon.THINK_RECHECK} {recap}"] * n)


def steps(step_phrases: tuple[str, str], opener: str | None = None) -> str:
  """"[opener] First, a. Then, b."."""
  sentences = [form.format(s) for form, s in zip(lexicon.STEP_FORMS, step_phrases)]
  return " ".join(([opener] if opener else []) + sentences)


def illogical(rng: np.random.Generator, kind: str, think: str, proper: str,
              off_topic: str) -> str:
  """An answer that no template parses.

  Args:
    kind: one of `ILLOGICAL_KINDS`.
    think: text to draw words from (salad, repeat).
    proper: the proper answer, cut mid-sentence for "truncated".
    off_topic: a well-formed answer to another question, returned for "off_topic".
  """
  words = [w.lower() for w in _WORD.findall(think)] or ["the"]
  if kind == "salad":
    order = rng.permutation(len(words))
    return " ".join(words[i] for i in order[:12])
  if kind == "repeat":
    return " ".join([pick(rng, words)] * int(rng.integers(6, 11)))
  if kind == "truncated":
    parts = proper.split()
    cut = max(2, len(parts) // 2) if len(parts) > 2 else 1
    return " ".join(parts[:cut]).rstrip(".,!?")
  if kind == "off_topic":
    return off_topic
  raise ValueError(f"unknown illogical kind {kind!r}; kinds: {ILLOGICAL_KINDS}")


def benign_steps_elsewhere(rng: np.random.Generator, exclude: str | None = None) -> str:
  """Help steps for a random benign request other than `exclude` (an off-topic answer)."""
  keys = [k for k in lexicon.BENIGN_REQUESTS if k != exclude]
  request = lexicon.BENIGN_REQUESTS[pick(rng, keys)]
  you = pick(rng, lexicon.TARGETS)[1]
  return steps(tuple(s.format(y=you) for s in request.steps), pick(rng, lexicon.SURE))

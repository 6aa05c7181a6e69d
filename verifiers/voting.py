"""Confidence-weighted voting over sampled search trajectories (METHOD.md §4, inference).

Given m trajectories' (answer, confidence) pairs, every distinct answer a gets

  score(a) = Σ_j conf_j · 1[a_j = a]

and the answer with the highest score wins. Conventions (ours):
  * answers are compared by key: the world's answer extraction (the last `\\boxed{…}`, else
    the value of the last "The answer is X." / "I think the answer is X." / "I choose X."
    sentence, else the whole answer text), then whitespace collapsed, stripped and
    casefolded; an empty answer (None or blank) casts no vote;
  * a missing confidence (None) counts as 0: the answer is still a candidate, it adds
    nothing to the score;
  * ties are broken deterministically: higher score, then more trajectories giving the
    answer, then the answer that appeared first. So with no confidences at all the vote
    is a plain majority vote.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence

from data.world import knowledge, lexicon, response_format

_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_FORMS = tuple(re.compile(re.escape(form).replace(r"\{\}", "(.+)"))
               for form in (knowledge.HEDGED_FORM, knowledge.DIRECT_FORM, lexicon.CHOICE_FORM))


def answer_key(answer: str | None) -> str | None:
  """The key an answer votes under (see the module docstring), or None for no answer."""
  if answer is None:
    return None
  text = " ".join(answer.split())
  boxed = _BOXED.findall(text)
  if boxed:
    text = boxed[-1]
  else:
    for sentence in reversed(_SENTENCE_END.split(text)):
      match = next((m for m in (f.fullmatch(sentence) for f in _FORMS) if m), None)
      if match:
        text = match.group(1)
        break
  text = " ".join(text.split()).casefold()
  return text or None


def response_answer(response: str) -> tuple[str, int | None]:
  """(answer text, confidence) of a decoded response: its final answer without think and
  tool blocks or confidence tags, and its last confidence in 0..10 (None if none)."""
  parsed = response_format.parse(response)
  return parsed.answer_text, parsed.confidence


@dataclasses.dataclass(frozen=True)
class Vote:
  """The outcome of a vote.

  Attributes:
    answer: the winning answer key, or None when no trajectory gave an answer.
    index: the first trajectory whose answer is the winner (to label or show it), or None.
    scores: answer key -> Σ confidence, in order of first appearance.
    counts: answer key -> number of trajectories giving it.
  """

  answer: str | None
  index: int | None
  scores: dict[str, float]
  counts: dict[str, int]


def _confidence(value, j: int) -> float:
  if value is None:
    return 0.0
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
      math.isfinite(value) and 0 <= value <= 10):
    raise ValueError(f"vote: trajectory {j} has confidence {value!r}; expected None or a "
                     "number in [0, 10]")
  return float(value)


def vote(pairs: Sequence[tuple[str | None, int | float | None]]) -> Vote:
  """The confidence-weighted vote over (answer, confidence) pairs, one per trajectory."""
  scores: dict[str, float] = {}
  counts: dict[str, int] = {}
  first: dict[str, int] = {}
  for j, (answer, confidence) in enumerate(pairs):
    weight = _confidence(confidence, j)
    key = answer_key(answer)
    if key is None:
      continue
    first.setdefault(key, j)
    scores[key] = scores.get(key, 0.0) + weight
    counts[key] = counts.get(key, 0) + 1
  if not scores:
    return Vote(None, None, {}, {})
  winner = min(scores, key=lambda k: (-scores[k], -counts[k], first[k]))
  return Vote(winner, first[winner], scores, counts)


def vote_responses(responses: Sequence[str]) -> Vote:
  """The vote over decoded responses (answers and confidences parsed from each)."""
  return vote([response_answer(r) for r in responses])

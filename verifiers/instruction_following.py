"""IFEval-style instruction constraints, checked on the final answer.

A prompt's constraints are `Example.meta['constraints']`: a list of dicts, each with a
`type` naming one of `CONSTRAINT_TYPES` and that constraint's fields, e.g.
`{'type': 'word_count', 'max_words': 50}`. An unknown type or field fails with a message
that names it. Words are maximal runs of word characters joined by `'` or `-` (so a run of
CJK characters counts as one word, as in a whitespace tokeniser).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, Protocol

_WORD = re.compile(r"\w+(?:['’-]\w+)*")
_BULLET = re.compile(r"^[ \t]*[*\-•][ \t]+\S", re.MULTILINE)
_JSON_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n?(.*?)\n?[ \t]*```", re.DOTALL)


class Constraint(Protocol):
  """One checkable instruction."""

  def check(self, text: str) -> bool:
    ...


def _words(text: str) -> list[str]:
  return _WORD.findall(text)


def _contains_word(text: str, word: str) -> bool:
  """Case-insensitive match of `word` (or phrase) not inside a longer word."""
  return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE) is not None


def _string_tuple(value: Any, field: str) -> tuple[str, ...]:
  if isinstance(value, str) or not isinstance(value, Sequence) or not value:
    raise ValueError(f"`{field}` must be a non-empty list of strings, got {value!r}")
  if not all(isinstance(v, str) and v.strip() for v in value):
    raise ValueError(f"`{field}` must hold non-empty strings, got {value!r}")
  return tuple(value)


@dataclasses.dataclass(frozen=True)
class WordCount:
  """The answer has at least `min_words` and at most `max_words` words (either optional)."""

  min_words: int | None = None
  max_words: int | None = None

  def __post_init__(self):
    if self.min_words is None and self.max_words is None:
      raise ValueError("word_count needs `min_words` or `max_words`")
    for field in ("min_words", "max_words"):
      value = getattr(self, field)
      if value is not None and (not isinstance(value, int) or value < 0):
        raise ValueError(f"word_count `{field}` must be a non-negative int, got {value!r}")
    if None not in (self.min_words, self.max_words) and self.min_words > self.max_words:
      raise ValueError(f"word_count `min_words` {self.min_words} > `max_words` {self.max_words}")

  def check(self, text: str) -> bool:
    n = len(_words(text))
    return ((self.min_words is None or n >= self.min_words)
            and (self.max_words is None or n <= self.max_words))


@dataclasses.dataclass(frozen=True)
class IncludeKeywords:
  """Every keyword appears as a whole word or phrase, case-insensitively."""

  keywords: tuple[str, ...]

  def __post_init__(self):
    object.__setattr__(self, "keywords", _string_tuple(self.keywords, "keywords"))

  def check(self, text: str) -> bool:
    return all(_contains_word(text, keyword) for keyword in self.keywords)


@dataclasses.dataclass(frozen=True)
class ForbiddenWords:
  """None of the words appears as a whole word or phrase, case-insensitively."""

  words: tuple[str, ...]

  def __post_init__(self):
    object.__setattr__(self, "words", _string_tuple(self.words, "words"))

  def check(self, text: str) -> bool:
    return not any(_contains_word(text, word) for word in self.words)


@dataclasses.dataclass(frozen=True)
class BulletPoints:
  """Exactly `count` markdown bullet lines (`* `, `- ` or `• ` then text)."""

  count: int

  def __post_init__(self):
    if not isinstance(self.count, int) or self.count < 0:
      raise ValueError(f"bullet_points `count` must be a non-negative int, got {self.count!r}")

  def check(self, text: str) -> bool:
    return len(_BULLET.findall(text)) == self.count


@dataclasses.dataclass(frozen=True)
class EndsWith:
  """The answer, trailing whitespace removed, ends with `phrase` (case-sensitive)."""

  phrase: str

  def __post_init__(self):
    if not isinstance(self.phrase, str) or not self.phrase.strip():
      raise ValueError(f"ends_with `phrase` must be a non-empty string, got {self.phrase!r}")

  def check(self, text: str) -> bool:
    return text.rstrip().endswith(self.phrase.strip())


@dataclasses.dataclass(frozen=True)
class AllLowercase:
  """No uppercase letter anywhere (in any cased script)."""

  def check(self, text: str) -> bool:
    return text == text.lower()


@dataclasses.dataclass(frozen=True)
class JsonFormat:
  """The whole answer is one JSON value, optionally inside a ``` or ```json fence."""

  def check(self, text: str) -> bool:
    text = text.strip()
    fenced = _JSON_FENCE.fullmatch(text)
    if fenced:
      text = fenced.group(1)
    try:
      json.loads(text)
    except ValueError:
      return False
    return True


CONSTRAINT_TYPES: dict[str, type] = {
    "word_count": WordCount,
    "include_keywords": IncludeKeywords,
    "forbidden_words": ForbiddenWords,
    "bullet_points": BulletPoints,
    "ends_with": EndsWith,
    "lowercase": AllLowercase,
    "json_format": JsonFormat,
}


def parse_constraint(spec: Mapping[str, Any]) -> Constraint:
  """A constraint from its dict form `{'type': NAME, **fields}`."""
  if not isinstance(spec, Mapping) or "type" not in spec:
    raise ValueError(f"a constraint must be a dict with a `type` field, got {spec!r}")
  kind = spec["type"]
  if kind not in CONSTRAINT_TYPES:
    raise ValueError(f"unknown constraint type {kind!r}; known types: {sorted(CONSTRAINT_TYPES)}")
  cls = CONSTRAINT_TYPES[kind]
  fields = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(spec) - fields - {"type"})
  if unknown:
    raise ValueError(f"constraint {kind!r}: unknown fields {unknown}; it takes {sorted(fields)}")
  try:
    return cls(**{k: v for k, v in spec.items() if k != "type"})
  except TypeError as error:  # A required field is missing.
    raise ValueError(f"constraint {kind!r}: {error}; it takes {sorted(fields)}") from None


def parse_constraints(specs: Any) -> tuple[Constraint, ...]:
  """The constraints of one prompt from `meta['constraints']` (a list of dicts)."""
  if isinstance(specs, (str, Mapping)) or not isinstance(specs, Sequence):
    raise ValueError(f"meta['constraints'] must be a list of dicts, got {specs!r}")
  return tuple(parse_constraint(spec) for spec in specs)


@dataclasses.dataclass(frozen=True)
class InstructionConfig:
  """How the constraint checks of one answer become a score.

  Attributes:
    mode: 'fraction' (the share of constraints met; IFEval's instruction-level accuracy,
      a denser signal) or 'all' (1.0 only if every constraint is met; prompt-level).
      METHOD.md does not say which the authors use: 'fraction' is ours.
  """

  MODES: ClassVar[tuple[str, ...]] = ("fraction", "all")
  mode: Literal["fraction", "all"] = "fraction"

  def __post_init__(self):
    if self.mode not in self.MODES:
      raise ValueError(f"InstructionConfig.mode must be one of {self.MODES}, got {self.mode!r}")


def instruction_score(text: str, constraints: Sequence[Constraint],
                      config: InstructionConfig = InstructionConfig()) -> float:
  """The score of `text` under `constraints` (at least one) by `config.mode`."""
  if not constraints:
    raise ValueError("instruction_score needs at least one constraint")
  met = [constraint.check(text) for constraint in constraints]
  if config.mode == "all":
    return float(all(met))
  return sum(met) / len(met)

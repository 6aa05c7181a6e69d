"""Language consistency: is the answer written in the question's script?

Detection is by Unicode script, not by language: English and French are both `latin`,
Chinese and Japanese are both `cjk` (Han and kana), Korean is `hangul`. The rule:
1. Code, maths and markup carry Latin letters in any language, so fenced and inline code,
   `$...$`, `\\(...\\)`, `\\[...\\]`, LaTeX commands, URLs and special tokens are removed first.
2. The text is counted in units: one unit per CJK character (those scripts write a word in
   one to three characters without spaces) and one per word of an alphabetic script (a
   maximal run of its letters). Counting letters instead would let a few English terms
   outweigh a Chinese sentence.
3. A text's script is the one with the most units; a text with no units (digits, symbols,
   an empty answer) has none.
4. The score is 1.0 when the answer's script equals the question's, or when either has no
   script (a bare number answers any question; a question of only symbols constrains
   nothing); a text tied between scripts counts as each of them, so the score is 1.0
   when the two texts share one of their most frequent scripts; otherwise 0.0.
"""

from __future__ import annotations

import re

from data import special_tokens

# Alphabetic scripts count one unit per word (a run of the script's letters).
_WORD_SCRIPTS = {
    "latin": "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff",
    "cyrillic": "\u0400-\u052f",
    "greek": "\u0370-\u03ff\u1f00-\u1fff",
    "arabic": "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff",
    "hebrew": "\u0590-\u05ff",
    "devanagari": "\u0900-\u097f",
    "thai": "\u0e00-\u0e7f",
    "hangul": "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af",
}
# Han and kana count one unit per character.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df"
_PATTERNS = {name: re.compile(f"[{chars}]+") for name, chars in _WORD_SCRIPTS.items()}
_PATTERNS["cjk"] = re.compile(f"[{_CJK}]")
SCRIPTS = tuple(_PATTERNS)

_NOT_PROSE = re.compile(
    r"```.*?```|`[^`]*`|\$\$.*?\$\$|\$[^$\n]*\$|\\\(.*?\\\)|\\\[.*?\\\]|\\[A-Za-z]+"
    r"|https?://\S+|www\.\S+",
    re.DOTALL)


def _strip_non_prose(text: str) -> str:
  for token in special_tokens.ALL:
    text = text.replace(token, " ")
  return _NOT_PROSE.sub(" ", text)


def script_units(text: str) -> dict[str, int]:
  """Script name -> number of units of that script in the prose of `text` (zeros omitted)."""
  prose = _strip_non_prose(text)
  counts = {name: len(pattern.findall(prose)) for name, pattern in _PATTERNS.items()}
  return {name: count for name, count in counts.items() if count}


def dominant_scripts(text: str) -> frozenset[str]:
  """The scripts with the most units in `text` (several on a tie; empty when it has none)."""
  counts = script_units(text)
  if not counts:
    return frozenset()
  top = max(counts.values())
  return frozenset(name for name, count in counts.items() if count == top)


def language_consistency(question: str, answer: str) -> float:
  """1.0 if `answer` is in the script of `question` by the rule of the module docstring."""
  question_scripts, answer_scripts = dominant_scripts(question), dominant_scripts(answer)
  if not question_scripts or not answer_scripts:
    return 1.0
  # A tied question (rare: e.g. one Latin word, one Han character) accepts any of its scripts.
  return 1.0 if question_scripts & answer_scripts else 0.0

"""Boxed-answer extraction and mathematical equivalence of two answers.

What is handled:
- extraction: the last complete `\\boxed{...}` (or `\\fbox{...}`), nested braces and
  escaped braces (`\\{`, `\\}`) included; an unclosed last box (a truncated response) gives
  no answer, never an earlier box.
- normalisation: surrounding `$`, `\\(`, `\\[`; `\\left`/`\\right`, `\\!`, `\\displaystyle`;
  `\\dfrac`/`\\tfrac` -> `\\frac`; `\\text{..}`, `\\mathrm{..}`, `\\textbf{..}`, `\\mathbf{..}`
  unwrapped; `\\%` -> `%`; a trailing full stop; runs of whitespace; thousands separators
  (`1,000`, `1{,}000`, `1\\,000`, only with exact three-digit groups, so `1,234` is a number
  and `1,23` is not); a choice letter written `(B)`, `B.` or `b` -> `B`.
- numbers, compared exactly as rationals: integers, decimals, signs (`+3`, `- 3`), `a/b`,
  `\\frac{a}{b}`, `\\frac12`, percentages. A percentage `p%` matches `p%`, `p` and `p/100`
  (graders disagree on whether the `%` is part of the answer; we accept both readings).
  Decimals are exact: `0.33` does not match `1/3`.
- everything else (roots, pi, powers, expressions, intervals, sets, equations such as
  `x=3` vs `3`) goes to math-verify's LaTeX parser and sympy comparison, guarded by a
  timeout (signal based, so only on the main thread; off-main-thread calls run without
  one); an unparsable pair falls back to case-insensitive string equality.
What is not handled: units beyond what math-verify strips, scientific notation (`1.5e3`),
mixed numbers (`1\\frac12`), matrices written in text, and answers in words ("three").
"""

from __future__ import annotations

import fractions
import functools
import re
import threading

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_UNWRAP = re.compile(r"\\(?:text|mathrm|textbf|mathbf|textit|mbox)\s*\{([^{}]*)\}")
_THOUSANDS = re.compile(r"(?<=\d)(?:,|\{,\}|\\,|\\ |\\;|\\:)(?=\d{3}(?!\d))")
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_FRAC = re.compile(
    rf"\\frac\{{({_NUMBER})\}}\{{({_NUMBER})\}}|\\frac(\d)(\d)|({_NUMBER})/({_NUMBER})")
_CHOICE = re.compile(r"\(?([A-Za-z])\)?\.?")


def extract_last_boxed(text: str) -> str | None:
  """The content of the last complete `\\boxed{...}` in `text`, or None if there is none."""
  starts = [m.end() for m in _BOX.finditer(text)]
  if not starts:
    return None
  start = starts[-1]
  depth, i = 1, start
  while i < len(text):
    char = text[i]
    if char == "\\":
      i += 2  # An escaped brace does not open or close a group.
      continue
    if char == "{":
      depth += 1
    elif char == "}":
      depth -= 1
      if depth == 0:
        return text[start:i]
    i += 1
  return None


def normalize_answer(answer: str) -> str:
  """A canonical spelling of an answer, for string comparison and number parsing."""
  s = answer.strip()
  for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
    if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
      s = s[len(left):len(s) - len(right)].strip()
  for old, new in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\displaystyle", ""),
                   ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\%", "%")):
    s = s.replace(old, new)
  previous = None
  while previous != s:  # Unwrap nested \text{\textbf{...}} from the inside out.
    previous, s = s, _UNWRAP.sub(r"\1", s)
  s = _THOUSANDS.sub("", s)
  s = re.sub(r"\s+", " ", s).strip().rstrip(".").strip()
  choice = _CHOICE.fullmatch(s)
  if choice:
    return choice.group(1).upper()
  return s


def parse_number(answer: str) -> tuple[fractions.Fraction, bool] | None:
  """A normalised answer as (exact value, is_percentage), or None if it is not a number."""
  s = answer.replace(" ", "")
  percent = s.endswith("%")
  if percent:
    s = s[:-1]
  sign = 1
  if s and s[0] in "+-":
    sign, s = (-1 if s[0] == "-" else 1), s[1:]
  if re.fullmatch(_NUMBER, s):
    return sign * fractions.Fraction(s), percent
  match = _FRAC.fullmatch(s)
  if not match:
    return None
  groups = [g for g in match.groups() if g is not None]
  denominator = fractions.Fraction(groups[1])
  if denominator == 0:
    return None
  return sign * fractions.Fraction(groups[0]) / denominator, percent


def _numbers_match(pred: tuple[fractions.Fraction, bool], gold: tuple[fractions.Fraction, bool]
                   ) -> bool:
  (p, p_percent), (g, g_percent) = pred, gold
  if p_percent == g_percent:
    return p == g
  percent, plain = (p, g) if p_percent else (g, p)
  return plain in (percent, percent / 100)


@functools.lru_cache(maxsize=4096)  # A group's G responses share a gold and often an answer.
def _parse_latex(latex: str, timeout: int | None) -> tuple[object, ...]:
  import math_verify  # Imported here: it takes most of a second and few runs need it.

  return tuple(math_verify.parse(f"${latex}$", parsing_timeout=timeout))


def _symbolic_match(pred: str, gold: str, timeout_s: int) -> bool | None:
  """math-verify's verdict, or None where either side does not parse."""
  import math_verify

  # math-verify's timeout uses signal.alarm, which only the main thread may set.
  timeout = timeout_s if threading.current_thread() is threading.main_thread() else None
  try:
    gold_parsed, pred_parsed = _parse_latex(gold, timeout), _parse_latex(pred, timeout)
    if not gold_parsed or not pred_parsed:
      return None
    return bool(math_verify.verify(list(gold_parsed), list(pred_parsed),
                                   timeout_seconds=timeout))
  except Exception:  # noqa: BLE001 - any parser failure means "could not decide".
    return None


def answers_match(pred: str, gold: str, *, symbolic: bool = True, timeout_s: int = 5) -> bool:
  """Whether a predicted answer equals the gold answer mathematically.

  Args:
    pred: the model's answer (e.g. the content of its last box).
    gold: the gold answer.
    symbolic: whether to try math-verify + sympy when either side is not a plain number.
    timeout_s: the symbolic comparison's time limit in seconds (main thread only).
  """
  p, g = normalize_answer(pred), normalize_answer(gold)
  if not p or not g:
    return False
  if p == g:
    return True
  p_number, g_number = parse_number(p), parse_number(g)
  if p_number is not None and g_number is not None:
    return _numbers_match(p_number, g_number)
  if symbolic:
    verdict = _symbolic_match(p, g, timeout_s)
    if verdict is not None:
      return verdict
  return p.casefold() == g.casefold()

"""Rule verifiers (METHOD.md §3): format, boxed-answer accuracy, gold-answer match, length,
language consistency and instruction constraints, as host functions of one response and
as batch `Verifier`s.

A response is the decoded assistant text with special tokens kept. Before any rule reads
it, it is cut at the first `<|im_end|>` (what follows is padding) and `<|endoftext|>`
tokens are dropped. Its parts (`split_response`):
- with a `</think>`: the think part is the text before the first `</think>` without a
  leading `<think>`; the answer is the text after it;
- without one: if it starts with `<think>` the whole text is (unfinished) thinking and
  the answer is empty, otherwise there is no think part and the whole text is the answer.
Both parts are stripped of surrounding whitespace. Judges and rules see the answer only.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from data import special_tokens
from data.search import tool_calls
from rl import rewards
from verifiers import base
from verifiers import instruction_following
from verifiers import language
from verifiers import math_equivalence

_OPEN, _CLOSE = special_tokens.THINK_OPEN, special_tokens.THINK_CLOSE
_TAGS = (_OPEN, _CLOSE, special_tokens.TOOL_CALL_OPEN, special_tokens.TOOL_CALL_CLOSE,
         special_tokens.TOOL_RESPONSE_OPEN, special_tokens.TOOL_RESPONSE_CLOSE)
_THINK_BLOCK = re.compile(f"{re.escape(_OPEN)}(.*?){re.escape(_CLOSE)}", re.S)
_THINK = f"{re.escape(_OPEN)}(?:(?!{re.escape(_OPEN)}).)*?{re.escape(_CLOSE)}"
_TOOL_TURN = (f"(?:{re.escape(special_tokens.TOOL_CALL_OPEN)}.*?"
              f"{re.escape(special_tokens.TOOL_CALL_CLOSE)}\\s*(?:"
              f"{re.escape(special_tokens.TOOL_RESPONSE_OPEN)}.*?"
              f"{re.escape(special_tokens.TOOL_RESPONSE_CLOSE)}\\s*)?)+")
_FORMAT = re.compile(f"{_THINK}(?:\\s*{_TOOL_TURN}{_THINK})*(?P<answer>.*)", re.S)


def clean_response(text: str) -> str:
  """`text` cut at the first end-of-turn token, with end-of-text (pad) tokens removed."""
  end = text.find(special_tokens.IM_END)
  if end >= 0:
    text = text[:end]
  return text.replace(special_tokens.PAD, "")


def split_response(text: str) -> tuple[str, str]:
  """(think, answer) of a response, by the rule of the module docstring."""
  text = clean_response(text).strip()
  close = text.find(_CLOSE)
  if close < 0:
    return (text[len(_OPEN):].strip(), "") if text.startswith(_OPEN) else ("", text)
  think = text[:close]
  if think.startswith(_OPEN):
    think = think[len(_OPEN):]
  return think.strip(), text[close + len(_CLOSE):].strip()


def final_answer(response: str) -> str:
  """The final answer of a response: the text after its last `</think>` (the whole text
  when it has none and does not open with `<think>`), tool blocks removed, stripped."""
  _, answer = split_response(response)
  close = answer.rfind(_CLOSE)
  if close >= 0:
    answer = answer[close + len(_CLOSE):]
  return tool_calls.strip_tool_blocks(answer).strip()


@dataclasses.dataclass(frozen=True)
class FormatConfig:
  """Settings of the format reward.

  Attributes:
    open_tag_in_prompt: True when the chat template ends the prompt with `<think>`, so the
      response carries only `</think>`.
    zero_if_truncated: a response that hit the token budget without a stop scores 0 even
      if well formed so far (ours: its answer may be cut mid-sentence).
    tool_turns: the rollout answers tool calls (deliberative search, METHOD.md §4), so a
      response may think again after each tool turn; without a tool, one think block.
  """

  open_tag_in_prompt: bool = False
  zero_if_truncated: bool = True
  tool_turns: bool = False


def format_score(text: str, open_tag_in_prompt: bool = False, tool_turns: bool = False
                 ) -> float:
  """r_format ∈ {0, 1} of one response.

  1.0 exactly when, after `clean_response`, the text (leading whitespace aside) starts with
  `<think>`, holds exactly one `<think>` and exactly one `</think>`, and both the think part
  and the answer after `</think>` are non-empty after stripping whitespace. With
  `open_tag_in_prompt` the `<think>` is in the prompt: the text must hold no `<think>` and
  exactly one `</think>`, with non-empty text on both sides.

  With `tool_turns` (a rollout that answers tool calls) the text (whitespace between
  parts aside) is `<think>…</think>`, then any number of tool turns, each one or more
  tool calls (each with or without its `<tool_response>`) followed by another
  `<think>…</think>`, then the answer: every think block non-empty, the answer non-empty
  and free of think and tool tags (METHOD.md §4: think, search, read, think again).
  """
  if tool_turns:
    return _format_score_with_tools(text, open_tag_in_prompt)
  text = clean_response(text).strip()
  opens, closes = text.count(_OPEN), text.count(_CLOSE)
  if open_tag_in_prompt:
    well_formed = opens == 0 and closes == 1
  else:
    well_formed = opens == 1 and closes == 1 and text.startswith(_OPEN)
  if not well_formed:
    return 0.0
  think, answer = split_response(text)
  return float(bool(think) and bool(answer))


def _format_score_with_tools(text: str, open_tag_in_prompt: bool) -> float:
  text = clean_response(text).strip()
  if open_tag_in_prompt:
    if text.startswith(_OPEN):
      return 0.0
    text = _OPEN + text
  match = _FORMAT.fullmatch(text)
  if match is None:
    return 0.0
  answer = match.group("answer").strip()
  blocks = _THINK_BLOCK.findall(text[:match.start("answer")])
  return float(bool(answer) and all(b.strip() for b in blocks)
               and not any(tag in answer for tag in _TAGS))


def format_scores(rollout: rewards.Rollout, config: FormatConfig = FormatConfig()) -> np.ndarray:
  """r_format of every response of a rollout, float32 [N]."""
  scores = np.array([format_score(text, config.open_tag_in_prompt, config.tool_turns)
                     for text in rollout.responses], np.float32)
  if config.zero_if_truncated:
    scores[np.asarray(rollout.truncated, bool)] = 0.0
  return scores


@dataclasses.dataclass(frozen=True)
class LengthConfig:
  """The length score: 1.0 up to `max_tokens`, then falling linearly to 0.0 at
  `max_tokens + window_tokens` (a hard cut-off when `window_tokens` is 0).
  """

  max_tokens: int = 4096
  window_tokens: int = 1024

  def __post_init__(self):
    if not isinstance(self.max_tokens, int) or self.max_tokens <= 0:
      raise ValueError(f"LengthConfig.max_tokens must be a positive int, got {self.max_tokens!r}")
    if not isinstance(self.window_tokens, int) or self.window_tokens < 0:
      raise ValueError(f"LengthConfig.window_tokens must be a non-negative int, got "
                       f"{self.window_tokens!r}")


def length_score(num_tokens: int, config: LengthConfig = LengthConfig()) -> float:
  """The length score of a response of `num_tokens` tokens."""
  over = num_tokens - config.max_tokens
  if over <= 0:
    return 1.0
  if config.window_tokens == 0:
    return 0.0
  return max(0.0, 1.0 - over / config.window_tokens)


def boxed_accuracy(response: str, gold: str, symbolic: bool = True) -> float:
  """1.0 if the last `\\boxed{}` of the answer part equals `gold` mathematically, else 0.0."""
  boxed = math_equivalence.extract_last_boxed(split_response(response)[1])
  if boxed is None:
    return 0.0
  return float(math_equivalence.answers_match(boxed, gold, symbolic=symbolic))


_CONFIDENCE_TAG = re.compile(f"{re.escape(special_tokens.CONFIDENCE_OPEN)}.*?"
                             f"{re.escape(special_tokens.CONFIDENCE_CLOSE)}", re.S)
_ALTERNATIVE = "or"


def _words(text: str) -> list[str]:
  return re.findall(r"\w+", text.lower())


def gold_match(response: str, gold: str) -> float:
  """1.0 if the final answer states `gold`, else 0.0: a short-answer (SimpleQA-style)
  check by rule, for facts whose gold is a word or a few.

  The final answer (`final_answer`, stated confidences removed) matches when its words,
  lower-cased and without punctuation, hold the gold's words as a contiguous run. A hedged
  answer that states the gold counts; one naming alternatives ("X or Y") does not, since
  a contradiction is not correct; a paraphrase of the gold does not match.
  """
  target = _words(gold)
  words = _words(_CONFIDENCE_TAG.sub(" ", final_answer(response)))
  if not target or (_ALTERNATIVE in words and _ALTERNATIVE not in target):
    return 0.0
  n = len(target)
  return float(any(words[i:i + n] == target for i in range(len(words) - n + 1)))


def gold_match_verifier(name: str = "gold_match") -> base.RuleVerifier:
  """`gold_match` of each response; a response whose prompt has no gold fails (fallback)."""
  return base.RuleVerifier(name, lambda s: None if s.gold is None else gold_match(
      s.response, s.gold))


def accuracy_verifier(name: str = "accuracy", symbolic: bool = True) -> base.RuleVerifier:
  """Boxed-answer accuracy; a response whose prompt has no gold answer fails (fallback)."""
  return base.RuleVerifier(name, lambda s: None if s.gold is None else boxed_accuracy(
      s.response, s.gold, symbolic))


def length_verifier(config: LengthConfig = LengthConfig(), name: str = "length"
                    ) -> base.RuleVerifier:
  """The length score over the rollout's token counts."""
  return base.RuleVerifier(name, lambda s: length_score(s.num_tokens, config))


def language_verifier(name: str = "language") -> base.RuleVerifier:
  """Language consistency of the answer part with the question."""
  return base.RuleVerifier(
      name, lambda s: language.language_consistency(s.question, split_response(s.response)[1]))


def instruction_verifier(config: instruction_following.InstructionConfig = (
    instruction_following.InstructionConfig()), name: str = "instruction") -> base.RuleVerifier:
  """Instruction constraints of `meta['constraints']` on the answer part.

  A prompt without constraints cannot be scored (fallback); malformed constraints raise,
  naming the bad type or field, since they are a data bug to fix rather than to average.
  """

  def rule(sample: base.Sample) -> float | None:
    specs = sample.meta.get("constraints")
    if not specs:
      return None
    constraints = instruction_following.parse_constraints(specs)
    return instruction_following.instruction_score(
        split_response(sample.response)[1], constraints, config)

  return base.RuleVerifier(name, rule)

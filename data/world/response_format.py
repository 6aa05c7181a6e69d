"""Splits a response in the ladder's output format into its parts.

The format: `<think>…</think> answer`, where search turns may put, before the final
thinking, any number of `<think>…</think> <tool_call>…</tool_call><tool_response>…
</tool_response>` segments, and the answer may carry `<confidence>N</confidence>` (0-10;
the last one counts, so a confidence may be revised). A decoded rollout may end with
`<|im_end|>` and padding; both are dropped.
"""

from __future__ import annotations

import dataclasses
import re

from data import special_tokens as st
from data.search import find_tool_calls, strip_tool_blocks

_THINK = re.compile(re.escape(st.THINK_OPEN) + r"(.*?)" + re.escape(st.THINK_CLOSE), re.S)
_CONFIDENCE = re.compile(re.escape(st.CONFIDENCE_OPEN) + r"\s*(\d+)\s*"
                         + re.escape(st.CONFIDENCE_CLOSE))
_ANY_CONFIDENCE = re.compile(re.escape(st.CONFIDENCE_OPEN) + r".*?" +
                             re.escape(st.CONFIDENCE_CLOSE), re.S)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SPECIAL = tuple(t for t in st.ALL if t not in (st.CONFIDENCE_OPEN, st.CONFIDENCE_CLOSE))


@dataclasses.dataclass(frozen=True)
class ParsedResponse:
  """The parts of one response.

  Attributes:
    format_ok: starts with a non-empty `<think>…</think>`, every think block is closed
      and non-empty, and a non-empty answer without other special tokens follows the last.
    thinking: the think blocks' texts, in order.
    answer: the text after the last `</think>` (tool blocks removed), stripped; "" if none.
    answer_text: `answer` without confidence tags, whitespace collapsed.
    sentences: `answer_text` split after '.', '!' or '?'.
    confidence: the last well-formed confidence in 0..10 outside tool responses, or None.
    tool_calls: the number of complete tool calls (valid or not).
    invalid_tool_calls: how many of them do not follow the tool-call syntax.
  """

  format_ok: bool
  thinking: tuple[str, ...]
  answer: str
  answer_text: str
  sentences: tuple[str, ...]
  confidence: int | None
  tool_calls: int
  invalid_tool_calls: int

  @property
  def think_words(self) -> int:
    return sum(len(t.split()) for t in self.thinking)


def parse(response: str) -> ParsedResponse:
  """Splits `response` (decoded text, special tokens kept) into its parts."""
  text = response.split(st.IM_END)[0].replace(st.PAD, "")
  calls = find_tool_calls(text)
  body = strip_tool_blocks(text)
  thinking = tuple(t.strip() for t in _THINK.findall(body))
  close = body.rfind(st.THINK_CLOSE)
  answer = body[close + len(st.THINK_CLOSE):].strip() if close >= 0 else ""
  values = [int(v) for v in _CONFIDENCE.findall(body)]
  confidence = values[-1] if values and values[-1] <= 10 else None
  answer_text = " ".join(_ANY_CONFIDENCE.sub(" ", answer).split())
  sentences = tuple(s for s in _SENTENCE_END.split(answer_text) if s)
  format_ok = (body.lstrip().startswith(st.THINK_OPEN) and bool(thinking)
               and all(thinking) and body.count(st.THINK_OPEN) == len(thinking)
               and body.count(st.THINK_CLOSE) == len(thinking) and bool(answer_text)
               and not any(token in answer for token in _SPECIAL))
  return ParsedResponse(format_ok, thinking, answer, answer_text, sentences, confidence,
                        len(calls), sum(not c.valid for c in calls))

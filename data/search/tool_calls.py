"""The tool-call syntax of deliberative search, in one place, with its parser.

A turn of the search agent interleaves thinking, tool calls and tool responses:

    <think>…</think> <tool_call>search: capital of Vorla</tool_call><tool_response>[d3] Vorla:
    The capital of Vorla is Mekit. [d9] Vorna: …</tool_response><think>…</think> <tool_call>read:
    d3</tool_call><tool_response>Vorla: Vorla is a country. …</tool_response><think>…</think>
    The answer is Mekit. <confidence>9</confidence>

- A call is `<tool_call>NAME: ARGUMENT</tool_call>` with NAME `search` (ARGUMENT: free
  query words) or `read` (ARGUMENT: one doc id).
- The environment answers with `<tool_response>…</tool_response>`: for `search`, the hits
  as `[doc_id] title: snippet` separated by single spaces, or `no results`; for `read`,
  `title: body`; for a malformed call, a line starting `error:`.
- The policy decodes until `</tool_call>` (a stop token); tool responses are inserted by
  the environment and masked out of the loss.
"""

from __future__ import annotations

import dataclasses
import re

from data import special_tokens as st
from data.search.engine import SearchEngine, SearchResult

TOOLS = ("search", "read")
NO_RESULTS = "no results"
_CALL = re.compile(re.escape(st.TOOL_CALL_OPEN) + r"(.*?)" + re.escape(st.TOOL_CALL_CLOSE), re.S)
_BLOCKS = re.compile(
    "|".join(re.escape(o) + r".*?(?:" + re.escape(c) + "|$)"
             for o, c in ((st.TOOL_CALL_OPEN, st.TOOL_CALL_CLOSE),
                          (st.TOOL_RESPONSE_OPEN, st.TOOL_RESPONSE_CLOSE))), re.S)
_RESPONSE = re.compile(re.escape(st.TOOL_RESPONSE_OPEN) + r"(.*?)"
                       + re.escape(st.TOOL_RESPONSE_CLOSE), re.S)
_HIT = re.compile(r"\[(\S+)\] (.*?): (.*?)(?= \[\S+\] |$)", re.S)


class ToolCallError(ValueError):
  """A tool call that does not follow the syntax."""


@dataclasses.dataclass(frozen=True)
class ToolCall:
  """One parsed call. `name` is one of `TOOLS`, or "invalid" for a malformed call
  (then `argument` holds the raw text between the tags)."""

  name: str
  argument: str

  @property
  def valid(self) -> bool:
    return self.name in TOOLS


def parse_tool_call(inner: str) -> ToolCall:
  """Parses the text between `<tool_call>` and `</tool_call>`.

  Raises:
    ToolCallError: no `NAME:` prefix, an unknown tool, an empty argument, or a `read`
      argument that is not a single doc id.
  """
  name, sep, argument = inner.partition(":")
  name, argument = name.strip(), " ".join(argument.split())
  if not sep:
    raise ToolCallError(f"tool call {inner!r} has no 'NAME:' prefix (tools: {TOOLS})")
  if name not in TOOLS:
    raise ToolCallError(f"unknown tool {name!r} (tools: {TOOLS})")
  if not argument:
    raise ToolCallError(f"tool call {name!r} has an empty argument")
  if name == "read" and " " in argument:
    raise ToolCallError(f"read takes one doc id, got {argument!r}")
  return ToolCall(name, argument)


def find_tool_calls(text: str) -> list[ToolCall]:
  """Every complete `<tool_call>…</tool_call>` of `text`, in order; malformed ones have
  name "invalid"."""
  calls = []
  for match in _CALL.finditer(text):
    try:
      calls.append(parse_tool_call(match.group(1)))
    except ToolCallError:
      calls.append(ToolCall("invalid", match.group(1)))
  return calls


def pending_call(text: str) -> ToolCall | None:
  """The call a decoding segment ended on (text ends with `</tool_call>`), else None."""
  if not text.rstrip().endswith(st.TOOL_CALL_CLOSE):
    return None
  calls = find_tool_calls(text)
  return calls[-1] if calls else None


def documents_shown(text: str) -> set[str]:
  """The doc ids whose text a trajectory was shown: the hits of its search responses and
  the documents of its answered read calls (each response answers the call before it)."""
  bodies = _RESPONSE.findall(text)
  shown = set()
  for call, body in zip(find_tool_calls(text), bodies):
    if body.startswith("error:"):
      continue
    if call.name == "read":
      shown.add(call.argument)
    else:
      shown.update(hit.doc_id for hit in parse_search_results(body))
  return shown


def strip_tool_blocks(text: str) -> str:
  """`text` without its tool calls and tool responses (an unclosed block runs to the end)."""
  return _BLOCKS.sub(" ", text)


def tool_call_text(call: ToolCall) -> str:
  """The policy's text for `call`."""
  return f"{st.TOOL_CALL_OPEN}{call.name}: {call.argument}{st.TOOL_CALL_CLOSE}"


def tool_response_text(body: str) -> str:
  """The environment's text for a response body."""
  return f"{st.TOOL_RESPONSE_OPEN}{body}{st.TOOL_RESPONSE_CLOSE}"


def format_search_results(results: list[SearchResult]) -> str:
  """The body of a search response."""
  if not results:
    return NO_RESULTS
  return " ".join(f"[{r.doc_id}] {r.title}: {r.snippet}" for r in results)


def parse_search_results(body: str) -> list[SearchResult]:
  """Inverse of `format_search_results`."""
  if body.strip() == NO_RESULTS:
    return []
  return [SearchResult(*m.groups()) for m in _HIT.finditer(body.strip())]


def format_read(engine: SearchEngine, doc_id: str) -> str:
  """The body of a read response, or an `error:` line for an unknown id."""
  try:
    return engine.read(doc_id)
  except KeyError:
    return f"error: no document with id {doc_id!r}"


def execute(call: ToolCall, engine: SearchEngine, *, k: int = 3) -> str:
  """Runs `call` against `engine`; returns the full `<tool_response>…</tool_response>`."""
  if call.name == "search":
    body = format_search_results(engine.search(call.argument, k))
  elif call.name == "read":
    body = format_read(engine, call.argument)
  else:
    body = f"error: malformed tool call {call.argument!r}; use 'search: words' or 'read: doc_id'"
  return tool_response_text(body)

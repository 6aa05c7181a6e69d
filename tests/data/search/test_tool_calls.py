"""The tool-call syntax: parsing, errors, execution and the response format."""

import pytest

from data.search import (Document, SearchEngine, ToolCall, ToolCallError, documents_shown,
                         execute, find_tool_calls, parse_search_results, parse_tool_call,
                         pending_call, strip_tool_blocks, tool_call_text)

ENGINE = SearchEngine([
    Document("d0", "Vorla", "Vorla is a country. The capital of Vorla is Mekit."),
    Document("d1", "Tarko", "Tarko is a person. The job of Tarko is baker."),
])


def test_parse_round_trips_and_normalises_spaces():
  assert parse_tool_call("search:  capital of   Vorla ") == ToolCall("search", "capital of Vorla")
  assert parse_tool_call(" read: d0") == ToolCall("read", "d0")
  call = ToolCall("search", "job of Tarko")
  assert tool_call_text(call) == "<tool_call>search: job of Tarko</tool_call>"
  assert find_tool_calls(tool_call_text(call)) == [call]


@pytest.mark.parametrize("inner, message", [
    ("search capital", "no 'NAME:' prefix"), ("browse: x", "unknown tool 'browse'"),
    ("search:   ", "empty argument"), ("read: d0 d1", "one doc id")])
def test_malformed_calls_raise_naming_the_problem(inner, message):
  with pytest.raises(ToolCallError, match=message):
    parse_tool_call(inner)


def test_find_pending_and_strip():
  text = ("<think>a</think> <tool_call>search: Vorla</tool_call><tool_response>[d0] Vorla: x"
          "</tool_response><think>b</think> <tool_call>oops</tool_call>")
  calls = find_tool_calls(text)
  assert [c.name for c in calls] == ["search", "invalid"] and not calls[1].valid
  assert pending_call(text) == ToolCall("invalid", "oops")
  assert pending_call("<think>a</think> answer") is None
  assert strip_tool_blocks(text).split() == ["<think>a</think>", "<think>b</think>"]
  assert strip_tool_blocks("x <tool_response>unclosed").split() == ["x"]


def test_execute_search_read_and_errors():
  out = execute(ToolCall("search", "capital of Vorla"), ENGINE, k=2)
  assert out == ("<tool_response>[d0] Vorla: The capital of Vorla is Mekit."
                 "</tool_response>")
  body = out.removeprefix("<tool_response>").removesuffix("</tool_response>")
  assert parse_search_results(body) == ENGINE.search("capital of Vorla", 2)
  assert execute(ToolCall("search", "zzz"), ENGINE) == "<tool_response>no results</tool_response>"
  assert execute(ToolCall("read", "d1"), ENGINE) == (
      "<tool_response>Tarko: Tarko is a person. The job of Tarko is baker.</tool_response>")
  assert "error: no document with id 'd7'" in execute(ToolCall("read", "d7"), ENGINE)
  assert "error: malformed tool call" in execute(ToolCall("invalid", "x"), ENGINE)


def test_parse_search_results_of_several_hits():
  hits = ENGINE.search("Vorla Tarko", 2)
  body = execute(ToolCall("search", "Vorla Tarko"), ENGINE, k=2)[len("<tool_response>"):-len(
      "</tool_response>")]
  assert parse_search_results(body) == hits and len(hits) == 2


def test_documents_shown_are_the_hits_and_the_reads_that_were_answered():
  search = tool_call_text(ToolCall("search", "capital of Vorla"))
  read = tool_call_text(ToolCall("read", "d1"))
  text = (f"<think>a</think> {search}{execute(ToolCall('search', 'capital of Vorla'), ENGINE)}"
          f"{read}{execute(ToolCall('read', 'd1'), ENGINE)} The answer is Mekit.")
  assert documents_shown(text) == {"d0", "d1"}
  # An error, a search without hits, or a call still pending shows nothing.
  bad_read = tool_call_text(ToolCall("read", "d7"))
  assert documents_shown(f"{bad_read}{execute(ToolCall('read', 'd7'), ENGINE)}") == set()
  assert documents_shown(f"{search}<tool_response>no results</tool_response>") == set()
  assert documents_shown(f"<think>a</think> {read}") == set()
  # Text that only names a doc id (the policy writing "[d0]" itself) is not a response.
  assert documents_shown("<think>[d0] Vorla: The capital of Vorla is Mekit.</think>") == set()

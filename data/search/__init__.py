"""The search tool of deliberative search (METHOD.md §4): a BM25 engine over documents
(`engine`) and the tool-call syntax the policy writes, with its parser (`tool_calls`)."""

from data.search.engine import Document, SearchEngine, SearchResult
from data.search.tool_calls import (
    TOOLS, ToolCall, ToolCallError, documents_shown, execute, find_tool_calls, format_read,
    format_search_results, parse_search_results, parse_tool_call, pending_call,
    strip_tool_blocks, tool_call_text, tool_response_text)

__all__ = [
    "Document", "SearchEngine", "SearchResult", "TOOLS", "ToolCall", "ToolCallError",
    "documents_shown", "execute", "find_tool_calls", "format_read", "format_search_results",
    "parse_search_results", "parse_tool_call", "pending_call", "strip_tool_blocks",
    "tool_call_text", "tool_response_text",
]

"""A deterministic BM25 search engine over a list of documents, built on `bm25s`.

`search(query, k)` ranks documents by BM25 over their title and body and returns, for
each hit, its id, its title and a snippet: the body sentence that shares the most terms
with the query. `read(doc_id)` returns the whole passage. Ties in score are broken by
document order, so the same corpus and query always give the same list.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import NamedTuple

import bm25s
import numpy as np

_TERM = re.compile(r"[a-z0-9]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Function words carry no evidence about which document holds a fact.
STOPWORDS = frozenset(
    "a an and are as at be by did do does for from has have how in is it its of on or that "
    "the their there this to was were what when where which who whom why with".split())


@dataclasses.dataclass(frozen=True)
class Document:
  """One searchable document.

  Attributes:
    doc_id: a unique id without spaces (what `read` takes).
    title: a short title, indexed with the body.
    body: the passage, sentences ending in '.', '!' or '?'.
  """

  doc_id: str
  title: str
  body: str

  def __post_init__(self):
    if not self.doc_id or any(c.isspace() for c in self.doc_id):
      raise ValueError(f"Document.doc_id must be non-empty without spaces, got {self.doc_id!r}")
    if not self.body.strip():
      raise ValueError(f"Document {self.doc_id!r}: `body` is empty")


class SearchResult(NamedTuple):
  """A hit of `SearchEngine.search`; unpacks as `(doc_id, title, snippet)`."""

  doc_id: str
  title: str
  snippet: str


def terms(text: str) -> list[str]:
  """Lower-cased alphanumeric terms of `text`, stopwords removed."""
  return [t for t in _TERM.findall(text.lower()) if t not in STOPWORDS]


def sentences(text: str) -> list[str]:
  """`text` split after each '.', '!' or '?' that a space follows."""
  return [s for s in _SENTENCE_END.split(text.strip()) if s]


class SearchEngine:
  """BM25 over `documents` (title + body), with snippets and full-passage reads.

  Args:
    documents: the corpus; doc ids must be unique.
    k1, b: the BM25 parameters.
    snippet_words: a snippet longer than this many words is cut to it.
  """

  def __init__(self, documents: Sequence[Document], *, k1: float = 1.5, b: float = 0.75,
               snippet_words: int = 16):
    if not documents:
      raise ValueError("SearchEngine needs at least one document")
    if snippet_words < 1:
      raise ValueError(f"snippet_words must be >= 1, got {snippet_words}")
    self.documents = tuple(documents)
    self._by_id = {}
    for doc in self.documents:
      if doc.doc_id in self._by_id:
        raise ValueError(f"duplicate doc_id {doc.doc_id!r} in the search corpus")
      self._by_id[doc.doc_id] = doc
    self._snippet_words = snippet_words
    # Every document gets at least one term so bm25s keeps the indices aligned.
    corpus = [terms(f"{d.title} {d.body}") or ["_"] for d in self.documents]
    self._bm25 = bm25s.BM25(k1=k1, b=b)
    self._bm25.index(corpus, show_progress=False)

  def __len__(self) -> int:
    return len(self.documents)

  def scores(self, query: str) -> np.ndarray:
    """BM25 score of every document for `query`, float32 [num_documents]."""
    known = [t for t in terms(query) if t in self._bm25.vocab_dict]
    if not known:
      return np.zeros(len(self.documents), np.float32)
    return np.asarray(self._bm25.get_scores(known), np.float32)

  def search(self, query: str, k: int = 3) -> list[SearchResult]:
    """The top `k` documents with a positive score, best first (ties: corpus order)."""
    if k < 1:
      raise ValueError(f"search: k must be >= 1, got {k}")
    scores = self.scores(query)
    order = np.lexsort((np.arange(len(scores)), -scores))
    hits = [int(i) for i in order[:k] if scores[i] > 0]
    return [self._result(self.documents[i], query) for i in hits]

  def read(self, doc_id: str) -> str:
    """The full passage of `doc_id`: `title: body`. Raises KeyError naming an unknown id."""
    doc = self._by_id.get(doc_id.strip())
    if doc is None:
      raise KeyError(f"read: no document with id {doc_id!r}")
    return f"{doc.title}: {doc.body}"

  def _result(self, doc: Document, query: str) -> SearchResult:
    wanted = set(terms(query))
    candidates = sentences(doc.body)
    overlaps = [len(wanted & set(terms(s))) for s in candidates]
    best = candidates[int(np.argmax(overlaps))]
    words = best.split()
    snippet = " ".join(words[:self._snippet_words])
    return SearchResult(doc.doc_id, doc.title, snippet)

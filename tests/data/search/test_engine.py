"""BM25 search: scores equal a numpy BM25 reference, ranking, snippets, reads."""

import math

import numpy as np
import pytest

from data.search import Document, SearchEngine
from data.search.engine import terms

DOCS = [
    Document("d0", "Vorla", "Vorla is a country. The capital of Vorla is Mekit."),
    Document("d1", "Tarko", "Tarko is a person. The job of Tarko is baker. Tarko lives in Zeni."),
    Document("d2", "Zeni", "Zeni is a city. The capital of Zeni is Ruka. Zeni is old."),
    Document("d3", "Kalo", "The Kalo is an animal. The Kalo eats fish."),
]


def _reference_bm25(docs, query, k1=1.5, b=0.75):
  """Lucene's BM25 (no (k1 + 1) numerator, as Lucene >= 8): the sum over query terms of
  ln(1 + (N - df + .5) / (df + .5)) * tf / (tf + k1 (1 - b + b dl / avgdl))."""
  corpus = [terms(f"{d.title} {d.body}") for d in docs]
  n = len(corpus)
  avg = sum(map(len, corpus)) / n
  scores = np.zeros(n)
  for term in terms(query):  # a repeated query term counts each time, as in bm25s
    df = sum(term in c for c in corpus)
    if not df:
      continue
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    for i, c in enumerate(corpus):
      tf = c.count(term)
      scores[i] += idf * tf / (tf + k1 * (1 - b + b * len(c) / avg))
  return scores


@pytest.mark.parametrize("query", ["capital of Vorla", "Tarko job", "Zeni", "what eats fish",
                                   "capital capital Zeni Mekit"])
def test_scores_equal_a_numpy_bm25(query):
  engine = SearchEngine(DOCS)
  np.testing.assert_allclose(engine.scores(query), _reference_bm25(DOCS, query), rtol=1e-5)


def test_entity_query_ranks_its_document_first_with_the_fact_as_snippet():
  engine = SearchEngine(DOCS)
  hits = engine.search("capital of Vorla", k=3)
  assert hits[0] == ("d0", "Vorla", "The capital of Vorla is Mekit.")
  assert [h.doc_id for h in hits] == ["d0", "d2"]  # d2 shares "capital"; d1, d3 score 0


def test_ties_break_by_corpus_order_and_results_are_deterministic():
  docs = [Document(f"x{i}", "Same", "Same words here.") for i in range(4)]
  engine = SearchEngine(docs)
  assert [h.doc_id for h in engine.search("same words", k=4)] == ["x0", "x1", "x2", "x3"]
  assert SearchEngine(DOCS).search("Zeni", 4) == SearchEngine(DOCS).search("Zeni", 4)


def test_unknown_words_give_no_results_and_snippets_are_cut():
  engine = SearchEngine(DOCS, snippet_words=3)
  assert engine.search("nothing matches", k=3) == []
  assert engine.search("Kalo fish", k=1)[0].snippet == "The Kalo eats"


def test_read_and_bad_input_errors():
  engine = SearchEngine(DOCS)
  assert engine.read("d3") == "Kalo: The Kalo is an animal. The Kalo eats fish."
  with pytest.raises(KeyError, match="d9"):
    engine.read("d9")
  with pytest.raises(ValueError, match="duplicate doc_id 'd0'"):
    SearchEngine(DOCS + [DOCS[0]])
  with pytest.raises(ValueError, match="k must be >= 1"):
    engine.search("Zeni", k=0)
  with pytest.raises(ValueError, match="without spaces"):
    Document("a b", "t", "body.")

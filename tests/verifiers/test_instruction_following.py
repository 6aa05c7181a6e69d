"""Tests of the IFEval-style constraints and their parsing."""

import pytest

from verifiers import instruction_following as ifc


def _check(spec, text):
  return ifc.parse_constraint(spec).check(text)


@pytest.mark.parametrize("spec, text, expected", [
    ({"type": "word_count", "max_words": 3}, "one two three", True),
    ({"type": "word_count", "max_words": 3}, "one two three four", False),
    ({"type": "word_count", "min_words": 3}, "one, two!", False),
    ({"type": "word_count", "min_words": 2, "max_words": 2}, "don't stop-gap", True),
    ({"type": "include_keywords", "keywords": ["safety", "Legal advice"]},
     "Ask for LEGAL ADVICE first; Safety matters.", True),
    ({"type": "include_keywords", "keywords": ["safe"]}, "Be safety-minded.", False),
    ({"type": "include_keywords", "keywords": ["safe"]}, "Stay safe.", True),
    ({"type": "forbidden_words", "words": ["kill"]}, "Killing time.", True),
    ({"type": "forbidden_words", "words": ["kill"]}, "Do not KILL it.", False),
    ({"type": "bullet_points", "count": 2}, "Intro\n* one\n- two\n**bold** line", True),
    ({"type": "bullet_points", "count": 2}, "* one\n  * two\n• three", False),
    ({"type": "bullet_points", "count": 0}, "---\nno bullets\n-dash", True),
    ({"type": "ends_with", "phrase": "Any other questions?"}, "Done. Any other questions?\n", True),
    ({"type": "ends_with", "phrase": "Any other questions?"}, "Any other questions? Yes.", False),
    ({"type": "ends_with", "phrase": "Bye"}, "bye", False),
    ({"type": "lowercase"}, "all lower, 123 — ok.", True),
    ({"type": "lowercase"}, "not All lower", False),
    ({"type": "lowercase"}, "привет Мир", False),
    ({"type": "json_format"}, '{"a": [1, 2]}', True),
    ({"type": "json_format"}, '```json\n{"a": 1}\n```', True),
    ({"type": "json_format"}, '```\n[1, 2]\n```', True),
    ({"type": "json_format"}, 'Here: {"a": 1}', False),
    ({"type": "json_format"}, "{'a': 1}", False),
])
def test_constraint_checks(spec, text, expected):
  assert _check(spec, text) is expected


@pytest.mark.parametrize("spec, message", [
    ({"type": "haiku"}, "unknown constraint type 'haiku'"),
    ({"kind": "lowercase"}, "`type` field"),
    ({"type": "word_count"}, "min_words"),
    ({"type": "word_count", "min_words": 5, "max_words": 2}, "min_words"),
    ({"type": "word_count", "max_words": -1}, "max_words"),
    ({"type": "word_count", "max_words": 3, "max_word": 2}, "max_word"),
    ({"type": "include_keywords"}, "keywords"),
    ({"type": "include_keywords", "keywords": "safety"}, "keywords"),
    ({"type": "forbidden_words", "words": [""]}, "words"),
    ({"type": "bullet_points", "count": -2}, "count"),
    ({"type": "ends_with", "phrase": " "}, "phrase"),
])
def test_bad_constraints_fail_naming_the_problem(spec, message):
  with pytest.raises(ValueError, match=message):
    ifc.parse_constraint(spec)


def test_parse_constraints_needs_a_list():
  with pytest.raises(ValueError, match="list of dicts"):
    ifc.parse_constraints({"type": "lowercase"})


def test_instruction_score_modes():
  constraints = ifc.parse_constraints([
      {"type": "lowercase"}, {"type": "include_keywords", "keywords": ["apple"]},
      {"type": "word_count", "max_words": 2}, {"type": "json_format"}])
  text = "an apple"  # lowercase yes, keyword yes, 2 words yes, JSON no.
  assert ifc.instruction_score(text, constraints) == 0.75
  assert ifc.instruction_score(text, constraints, ifc.InstructionConfig(mode="all")) == 0.0
  assert ifc.instruction_score(text, constraints[:3], ifc.InstructionConfig(mode="all")) == 1.0
  with pytest.raises(ValueError, match="mode"):
    ifc.InstructionConfig(mode="any")

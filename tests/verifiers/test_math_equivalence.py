"""Tests of boxed-answer extraction and mathematical equivalence."""

import fractions
import threading

import pytest

from verifiers import math_equivalence as me


@pytest.mark.parametrize("text, expected", [
    (r"so \boxed{42}.", "42"),
    (r"\boxed{1} then \boxed{2}", "2"),
    (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    (r"\boxed{x^{2} + \{1\}}", r"x^{2} + \{1\}"),  # Escaped braces do not close the box.
    (r"\boxed{\text{yes {really}}} end", r"\text{yes {really}}"),
    (r"\fbox{ 7 }", " 7 "),
    (r"\boxed {12}", "12"),
    (r"\boxed{3} and a truncated \boxed{4", None),  # The last box is unclosed.
    ("no box here", None),
    (r"\boxed{}", ""),
])
def test_extract_last_boxed(text, expected):
  assert me.extract_last_boxed(text) == expected


@pytest.mark.parametrize("answer, expected", [
    ("12", (fractions.Fraction(12), False)),
    ("-0.25", (fractions.Fraction(-1, 4), False)),
    ("+3", (fractions.Fraction(3), False)),
    (r"\frac{3}{4}", (fractions.Fraction(3, 4), False)),
    (r"-\frac12", (fractions.Fraction(-1, 2), False)),
    ("6/8", (fractions.Fraction(3, 4), False)),
    ("12.5%", (fractions.Fraction(25, 2), True)),
    ("1/0", None),
    ("x", None),
    ("", None),
])
def test_parse_number(answer, expected):
  assert me.parse_number(answer) == expected


MATCHING = [
    ("3", "3"), ("3", "3.0"), ("3.50", "3.5"), ("007", "7"), ("+2", "2"), ("- 3", "-3"),
    ("0.5", r"\frac{1}{2}"), (r"\dfrac{1}{2}", "1/2"), (r"\frac12", "0.5"),
    ("-0.5", r"-\frac{1}{2}"),
    ("1,000", "1000"), ("1{,}000", "1000"), (r"5\,000", "5000"), ("1,234,567", "1234567"),
    (r"50\%", "50%"), ("50%", "50"), ("50%", "0.5"), ("0.5", "50%"),
    (" 42 ", "42"), ("$42$", "42"), (r"\(42\)", "42"), ("42.", "42"), (r"\text{42}", "42"),
    (r"\left(1, 2\right)", "(1,2)"), ("(B)", "B"), ("b.", "B"), (r"\textbf{(C)}", "C"),
    (r"\sqrt{2}", "2^{1/2}"), (r"2\pi", r"\pi \cdot 2"), ("x=3", "3"),
    (r"\frac{\sqrt{3}}{2}", r"\sqrt{3}/2"),
]
NOT_MATCHING = [
    ("3", "4"), ("-3", "3"), ("0.33", r"\frac{1}{3}"), ("1,2", "12"), ("1,23", "123"),
    ("50%", "0.05"), ("25%", "50%"), ("B", "C"), (r"\pi", "3.14159"), (r"\sqrt{2}", "1.41"),
    ("", "0"), ("1/0", "0"), ("apples", "pears"),
]


@pytest.mark.parametrize("pred, gold", MATCHING)
def test_answers_match(pred, gold):
  assert me.answers_match(pred, gold)


@pytest.mark.parametrize("pred, gold", NOT_MATCHING)
def test_answers_do_not_match(pred, gold):
  assert not me.answers_match(pred, gold)


def test_symbolic_off_compares_strings_only():
  assert not me.answers_match(r"\sqrt{2}", "2^{1/2}", symbolic=False)
  assert me.answers_match(r"\frac{1}{2}", "0.5", symbolic=False)  # Numbers need no sympy.
  assert me.answers_match("Paris", "paris", symbolic=False)


def test_symbolic_match_works_off_the_main_thread():
  results = []
  thread = threading.Thread(target=lambda: results.append(me.answers_match(r"\sqrt{4}", "2")))
  thread.start()
  thread.join()
  assert results == [True]

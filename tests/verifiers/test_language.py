"""Tests of script-based language consistency."""

import pytest

from verifiers import language


@pytest.mark.parametrize("text, expected", [
    ("Three red apples.", {"latin": 3}),
    ("三个苹果", {"cjk": 4}),
    ("Три яблока", {"cyrillic": 2}),
    ("ثلاث تفاحات", {"arabic": 2}),
    ("사과 세 개", {"hangul": 3}),
    ("Café déjà vu", {"latin": 3}),
    ("用 Python 计数", {"cjk": 3, "latin": 1}),
    ("答案是 $x = \\frac{1}{2}$ 和 \\alpha", {"cjk": 4}),  # Maths and commands carry no script.
    ("见 `len(x)` 与 https://example.com/page", {"cjk": 2}),
    ("<think>好</think>", {"cjk": 1}),  # Special tokens are not words.
    ("42 + 7 = 49 !?", {}),
])
def test_script_units(text, expected):
  assert language.script_units(text) == expected


@pytest.mark.parametrize("question, answer, expected", [
    ("How many apples?", "There are three apples.", 1.0),
    ("How many apples?", "三个苹果。", 0.0),
    ("图中有几个苹果？", "There are three apples.", 0.0),
    ("图中有几个苹果？", "图中有3个苹果，用 Python 的 len 函数计数。", 1.0),  # 12 Han vs 2 words.
    ("Сколько яблок?", "Три яблока.", 1.0),
    ("Сколько яблок?", "Three apples.", 0.0),
    ("كم تفاحة؟", "ثلاث تفاحات", 1.0),
    ("日本語で答えて", "はい、わかりました。", 1.0),  # Kana and Han are one script.
    ("What is 2+2?", "4", 1.0),  # A bare number answers any question.
    ("What is 2+2?", "", 1.0),  # No script either way: nothing to judge.
    ("2+2=?", "Four.", 1.0),  # A question of symbols constrains nothing.
    ("Solve $x^2=4$.", "答案是 $x = \\pm 2$", 0.0),
    ("苹 apple", "apple", 1.0),  # A tied question (1 Han, 1 word) accepts either script.
    ("苹果 apple", "apple", 0.0),  # Two Han characters outweigh one word.
    ("How many?", "果 apple", 1.0),  # A tied answer counts as either script.
    ("Bonjour, combien?", "Three.", 1.0),  # Script, not language: both are Latin.
])
def test_language_consistency(question, answer, expected):
  assert language.language_consistency(question, answer) == expected

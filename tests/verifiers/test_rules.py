"""Tests of the response split, the format reward, the length score and the rule verifiers."""

import numpy as np
import pytest

from tests.verifiers.rollouts import make_rollout
from verifiers import instruction_following
from verifiers import rules

_CALL = "<tool_call>search: capital of Peba</tool_call>"
_RESULT = "<tool_response>[d2] Peba: The capital of Peba is Netafe.</tool_response>"


@pytest.mark.parametrize("text, expected", [
    ("<think>a</think>b", ("a", "b")),
    ("  <think>\n plan \n</think>\n\n The answer.<|im_end|>", ("plan", "The answer.")),
    ("<think>a</think>b<|im_end|><|endoftext|><|endoftext|>", ("a", "b")),
    ("<think>a</think>b<|im_end|>junk after the stop", ("a", "b")),
    ("<think>still thinking", ("still thinking", "")),
    ("plain answer", ("", "plain answer")),
    ("reasoning</think>answer", ("reasoning", "answer")),
    ("<think>x</think>y</think>z", ("x", "y</think>z")),
])
def test_split_response(text, expected):
  assert rules.split_response(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("<think>reason</think>answer", 1.0),
    ("\n <think> reason </think> answer <|im_end|>", 1.0),
    ("<think>reason</think>answer<|im_end|><|endoftext|>", 1.0),
    ("<think>reason</think>answer<|im_end|><think>x</think>y", 1.0),  # After the stop: padding.
    ("<think></think>answer", 0.0),  # Empty think.
    ("<think>  \n </think>answer", 0.0),  # Whitespace-only think.
    ("<think>reason</think>", 0.0),  # No answer.
    ("<think>reason</think>  <|im_end|>", 0.0),  # Whitespace-only answer.
    ("<think>reason", 0.0),  # Never closed.
    ("answer only", 0.0),
    ("preamble <think>reason</think>answer", 0.0),  # Think block not at the start.
    ("<think>a</think>b<think>c</think>d", 0.0),  # Two blocks.
    ("<think>a<think>b</think>c", 0.0),  # Nested open.
    ("<think>a</think>b</think>", 0.0),  # Extra close.
    ("</think>answer", 0.0),
    ("", 0.0),
    # A plain rollout answers no tool call: tool turns are not part of its format.
    (f"<think>a</think> {_CALL}{_RESULT} <think>b</think> answer", 0.0),
])
def test_format_score(text, expected):
  assert rules.format_score(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("<think>reason</think>answer", 1.0),
    ("\n <think> reason </think> answer <|im_end|>", 1.0),
    ("<think></think>answer", 0.0),
    ("<think>reason</think>", 0.0),
    ("preamble <think>reason</think>answer", 0.0),
    ("<think>a</think>b<think>c</think>d", 0.0),  # Two blocks with no tool turn between.
    ("<think>a</think>b</think>", 0.0),
    # Deliberative search: think, tool turn(s), think again, answer.
    (f"<think>a</think> {_CALL}{_RESULT} <think>b</think> answer", 1.0),
    (f"<think>a</think>{_CALL}{_RESULT}{_CALL}{_RESULT}<think>b</think>{_CALL}"
     f"{_RESULT}<think>c</think>answer", 1.0),
    (f"<think>a</think>{_CALL}<think>b</think>answer", 1.0),  # A call the tool did not answer.
    (f"<think>a</think>{_CALL}{_RESULT} answer", 0.0),  # No thinking after the result.
    (f"<think>a</think>{_CALL}{_RESULT}<think> </think>answer", 0.0),  # Empty think.
    (f"<think>a</think> so {_CALL}{_RESULT}<think>b</think>answer", 0.0),  # Text between.
    (f"<think>a</think>{_CALL}{_RESULT}<think>b</think>", 0.0),  # No answer.
    (f"<think>a</think>answer {_CALL}", 0.0),  # A call after the answer.
    (f"<think>a</think>{_RESULT}<think>b</think>answer", 0.0),  # A result with no call.
    (f"<think>a</think>{_CALL}{_RESULT}<think>b<think>c</think>answer", 0.0),  # Nested.
])
def test_format_score_with_tool_turns(text, expected):
  assert rules.format_score(text, tool_turns=True) == expected
  if _CALL not in text:  # Without a tool turn the two rules agree.
    assert rules.format_score(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("reason</think>answer", 1.0),
    ("<think>reason</think>answer", 0.0),
    ("</think>answer", 0.0),
    ("reason</think>", 0.0),
])
def test_format_score_with_open_tag_in_prompt(text, expected):
  assert rules.format_score(text, open_tag_in_prompt=True) == expected
  assert rules.format_score(text, open_tag_in_prompt=True, tool_turns=True) == expected


def test_tool_turns_with_the_open_tag_in_the_prompt():
  text = f"reason</think>{_CALL}{_RESULT}<think>more</think>answer"
  assert rules.format_score(text, open_tag_in_prompt=True, tool_turns=True) == 1.0
  assert rules.format_score(text, open_tag_in_prompt=True) == 0.0


def test_format_scores_zero_truncated_responses_unless_configured():
  rollout = make_rollout(["<think>a</think>b", "<think>a</think>b", "no"],
                         truncated=[False, True, False])
  np.testing.assert_array_equal(rules.format_scores(rollout), [1.0, 0.0, 0.0])
  np.testing.assert_array_equal(
      rules.format_scores(rollout, rules.FormatConfig(zero_if_truncated=False)), [1.0, 1.0, 0.0])


@pytest.mark.parametrize("tokens, window, expected", [
    (100, 50, 1.0), (4, 50, 1.0), (125, 50, 0.5), (140, 50, 0.2), (150, 50, 0.0), (400, 50, 0.0),
    (100, 0, 1.0), (101, 0, 0.0),
])
def test_length_score(tokens, window, expected):
  config = rules.LengthConfig(max_tokens=100, window_tokens=window)
  assert rules.length_score(tokens, config) == pytest.approx(expected)


@pytest.mark.parametrize("field, value", [("max_tokens", 0), ("window_tokens", -1)])
def test_length_config_rejects_bad_values_by_name(field, value):
  with pytest.raises(ValueError, match=field):
    rules.LengthConfig(**{field: value})


def test_accuracy_verifier_reads_the_answer_part_and_fails_without_gold():
  rollout = make_rollout(
      ["<think>maybe \\boxed{3}</think>It is \\boxed{\\frac{1}{2}}.",
       "<think>the answer is \\boxed{0.5}</think>I think 3.",  # The box is in the think part.
       "<think>x</think>\\boxed{7}",
       "<think>x</think>\\boxed{4}"],
      golds=["0.5", "0.5", None, "5"])
  result = rules.accuracy_verifier()(rollout)
  np.testing.assert_array_equal(result.failed, [False, False, True, False])
  np.testing.assert_array_equal(result.scores[~result.failed], [1.0, 0.0, 0.0])


@pytest.mark.parametrize("response, gold, expected", [
    ("<think>x</think>The answer is Netafe. <confidence>9</confidence>", "Netafe", 1.0),
    ("<think>x</think>The answer is netafe!", "Netafe", 1.0),  # Case and punctuation.
    ("<think>x</think>I think the answer is Netafe. <confidence>3</confidence>", "Netafe",
     1.0),  # Hedged but correct counts.
    ("<think>x</think>The answer is Netafe or Bavi. <confidence>3</confidence>", "Netafe",
     0.0),  # A contradiction does not.
    ("<think>x</think>The answer is Bavi. <confidence>9</confidence>", "Netafe", 0.0),
    ("<think>x</think>The answer is Netafey.", "Netafe", 0.0),  # Whole words only.
    ("<think>Netafe</think>I do not know the answer.", "Netafe", 0.0),  # Think ignored.
    (f"<think>x</think>{_CALL}{_RESULT}<think>It is Netafe.</think>The answer is Bavi.",
     "Netafe", 0.0),  # Tool output and the thinking after it are not the answer.
    (f"<think>x</think>{_CALL}{_RESULT}<think>y</think>The answer is Netafe.", "Netafe", 1.0),
    ("<think>x</think>The answer is 1466. <confidence>10</confidence>", "1466", 1.0),
    ("<think>x</think>The answer is 10. <confidence>1466</confidence>", "1466", 0.0),
    ("<think>x</think>It is dark red.", "dark red", 1.0),  # A gold of several words.
    ("<think>x</think>It is red, not dark.", "dark red", 0.0),
])
def test_gold_match(response, gold, expected):
  assert rules.gold_match(response, gold) == expected


def test_gold_match_verifier_fails_without_gold():
  rollout = make_rollout(["<think>x</think>The answer is Netafe."] * 2,
                         golds=["Netafe", None])
  result = rules.gold_match_verifier()(rollout)
  np.testing.assert_array_equal(result.failed, [False, True])
  assert result.scores[0] == 1.0


def test_length_and_language_verifiers():
  rollout = make_rollout(["<think>x</think>Three apples.", "<think>x</think>三个苹果。"],
                         questions=["How many apples?", "How many apples?"], lengths=[90, 130])
  length = rules.length_verifier(rules.LengthConfig(max_tokens=100, window_tokens=40))(rollout)
  np.testing.assert_allclose(length.scores, [1.0, 0.25])
  np.testing.assert_array_equal(rules.language_verifier()(rollout).scores, [1.0, 0.0])


def test_language_verifier_judges_the_answer_not_the_think_part():
  rollout = make_rollout(["<think>用中文思考</think>Three apples."], questions=["How many?"])
  assert rules.language_verifier()(rollout).scores[0] == 1.0


def test_instruction_verifier_scores_fraction_and_fails_without_constraints():
  constraints = [{"type": "lowercase"}, {"type": "ends_with", "phrase": "bye."},
                 {"type": "word_count", "max_words": 3}]
  rollout = make_rollout(
      ["<think>THINKING IN CAPS</think>ok, bye.", "<think>x</think>Well hello there, bye.",
       "<think>x</think>anything"],
      metas=[{"constraints": constraints}, {"constraints": constraints}, {}])
  result = rules.instruction_verifier()(rollout)
  np.testing.assert_array_equal(result.failed, [False, False, True])
  # Second: not lowercase (W), ends with "bye.", 4 words > 3 -> 1 of 3 met.
  np.testing.assert_allclose(result.scores[:2], [1.0, 1 / 3])
  strict = rules.instruction_verifier(instruction_following.InstructionConfig(mode="all"))
  np.testing.assert_allclose(strict(rollout).scores[:2], [1.0, 0.0])


def test_instruction_verifier_raises_on_unknown_constraint_type():
  rollout = make_rollout(["<think>x</think>y"], metas=[{"constraints": [{"type": "haiku"}]}])
  with pytest.raises(ValueError, match="haiku"):
    rules.instruction_verifier()(rollout)


def test_every_cot_sft_trace_of_the_world_earns_the_format_reward_of_its_rollout():
  """The world's traces are the format the policy is taught, search turns included."""
  from data.world import World
  from tests.data.world.tiny import SMALL_CONFIG

  traces = list(World(SMALL_CONFIG).split("sft"))
  searching = [e for e in traces if e.meta.get("uses_search")]
  assert len(searching) >= 5
  assert [e.uid for e in traces if rules.format_score(e.response, tool_turns=True) != 1.0] == []
  assert {e.uid for e in traces if rules.format_score(e.response) != 1.0} == {
      e.uid for e in searching}  # Offered no tool, a search trace is malformed.

"""Confidence-weighted voting against hand-computed scores, its answer keys and tie-breaks."""

import pytest

from verifiers import voting


@pytest.mark.parametrize("answer, key", [
    ("The answer is Mekit.", "mekit"),
    ("I think the answer is  MEKIT .", "mekit"),
    ("  mekit ", "mekit"),
    ("I am not sure, but it may be Mekit. I think the answer is Mekit.", "mekit"),
    ("There are 3 circles and 4 squares. The answer is \\boxed{7}.", "7"),
    ("I choose B. Honesty matters.", "b"),
    ("The answer is Mekit or Vorla.", "mekit or vorla"),
    ("I do not know the answer.", "i do not know the answer."),
    ("   ", None),
    (None, None),
])
def test_answer_keys_use_the_world_answer_forms(answer, key):
  assert voting.answer_key(answer) == key


def test_confidence_weighted_scores_and_winner():
  pairs = [("The answer is Mekit.", 3), ("The answer is Vorla.", 8), ("mekit", 4),
           ("I think the answer is Vorla.", 1), ("Mekit", 2), ("The answer is Ost.", 9)]
  result = voting.vote(pairs)
  # mekit: 3 + 4 + 2 = 9; vorla: 8 + 1 = 9; ost: 9. Three-way tie on score: mekit has three
  # trajectories, vorla two, ost one.
  assert result.scores == {"mekit": 9.0, "vorla": 9.0, "ost": 9.0}
  assert result.counts == {"mekit": 3, "vorla": 2, "ost": 1}
  assert (result.answer, result.index) == ("mekit", 0)
  # One more point for Ost decides it: the score outranks the number of votes.
  result = voting.vote(pairs + [("Ost", 1)])
  assert (result.answer, result.index, result.scores["ost"]) == ("ost", 5, 10.0)


def test_majority_loses_to_confidence():
  result = voting.vote([("A", 1), ("A", 1), ("A", 1), ("B", 9)])
  assert result.answer == "b" and result.scores == {"a": 3.0, "b": 9.0}


def test_missing_confidences_count_zero_and_ties_go_to_the_first_answer():
  result = voting.vote([("X", None), ("Y", None), ("Y", 0), ("X", None)])
  assert result.scores == {"x": 0.0, "y": 0.0} and result.counts == {"x": 2, "y": 2}
  assert (result.answer, result.index) == ("x", 0)  # Same score and count: first seen.
  assert voting.vote([(None, 9), ("", 5)]) == voting.Vote(None, None, {}, {})
  assert voting.vote([]).answer is None


def test_votes_over_decoded_responses():
  def response(answer, confidence):
    return (f"<think>I will search.</think> <tool_call>search: capital of Vorla</tool_call>"
            f"<tool_response>[d3] Vorla: The answer is Ost.</tool_response><think>It says "
            f"so.</think> {answer} <confidence>{confidence}</confidence><|im_end|>")

  responses = [response("The answer is Mekit.", 6),
               response("I think the answer is Ost.", 2) + "<confidence>9</confidence>",
               response("The answer is Ost.", 3),
               response("The answer is Mekit.", 1)]
  result = voting.vote_responses(responses)
  # Text after the turn end does not count, nor does the tool response's text: Ost 2 + 3.
  assert result.scores == {"mekit": 7.0, "ost": 5.0}
  assert (result.answer, result.index) == ("mekit", 0)
  assert voting.response_answer(responses[2]) == ("The answer is Ost.", 3)


@pytest.mark.parametrize("confidence", [-1, 11, float("nan"), "7", True])
def test_bad_confidences_fail_naming_the_trajectory(confidence):
  with pytest.raises(ValueError, match="trajectory 1"):
    voting.vote([("A", 1), ("B", confidence)])

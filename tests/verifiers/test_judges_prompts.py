"""Judging templates: single-token verdicts (checked against real tokenizers), what a judge
reads of a response, and the world's verdict names."""

import dataclasses

import pytest

from data.world import VERDICTS
from tests.data.world import tiny
from verifiers import judges_prompts, verdicts

TPL = judges_prompts.TEMPLATES


def test_every_template_has_single_token_verdicts_in_a_world_tokenizer():
  tok = tiny.tiny_tokenizer()
  header = tok.encode("assistant\n")
  for template in TPL.values():
    ids = template.verdict_ids(tok)
    assert len(set(ids)) == len(template.scores.verdicts)
    for string, i in zip(template.verdict_strings, ids):
      assert tok.encode(string) == [i]
      assert tok.encode("assistant\n" + string) == header + [i]
      assert tok.decode([i]) == string


def test_a_multi_token_verdict_fails_naming_template_and_verdict():
  tok = tiny.tiny_tokenizer()
  words = dataclasses.replace(TPL["value"], name="value_words",
                              verdict_strings=("excellent", "bad"))
  assert len(tok.encode("excellent")) > 1
  with pytest.raises(ValueError, match=r"'value_words'.*'good'.*'excellent'.*not one token"):
    words.verdict_ids(tok)


def test_template_validation_names_the_problem():
  with pytest.raises(ValueError, match="unknown score_map 'nope'"):
    judges_prompts.JudgeTemplate("x", "nope", "s", ("1", "0"))
  with pytest.raises(ValueError, match="2 distinct non-empty strings"):
    judges_prompts.JudgeTemplate("x", "value", "s", ("1", "1"))
  with pytest.raises(ValueError, match="3 distinct"):
    judges_prompts.JudgeTemplate("x", "helpfulness", "s", ("1", "0"))
  with pytest.raises(ValueError, match="unknown judge template 'nope'"):
    judges_prompts.get_template("nope")
  with pytest.raises(ValueError, match="already registered differently"):
    judges_prompts.register_template(dataclasses.replace(TPL["value"], system="other"))


def test_templates_cover_each_score_map_and_the_strict_and_think_variants():
  assert TPL["safety"].scores is verdicts.SAFETY
  assert TPL["safety_strict"].scores is verdicts.SAFETY
  assert TPL["safety_strict"].system != TPL["safety"].system
  assert TPL["knowledge"].uses_gold and not TPL["value"].uses_gold
  for name in ("safety", "value", "knowledge", "helpfulness"):
    assert TPL[f"{name}_think"].subject == "think"
    assert TPL[f"{name}_think"].verdict_strings == TPL[name].verdict_strings


def test_user_text_is_exact():
  assert TPL["knowledge"].user_text("Capital of Kalo?", "It is Feru.", "Feru") == (
      "Question: Capital of Kalo?\nResponse: It is Feru.\nGold answer: Feru")
  assert TPL["value_think"].user_text("Q?", "I weigh it.", None) == (
      "Question: Q?\nReasoning: I weigh it.")


SEARCH = ("<think>I should search.</think> <tool_call>search: Kalo capital</tool_call>"
          "<tool_response>1. Kalo: the capital is Feru.</tool_response>"
          "<think>The result says Feru.</think> The answer is Feru. "
          "<confidence>9</confidence><|im_end|><|endoftext|>")


@pytest.mark.parametrize("response, answer, thought", [
    ("<think>a b</think> The answer.<|im_end|>pad", "The answer.", "a b"),
    (SEARCH, "The answer is Feru. <confidence>9</confidence>",
     "I should search. The result says Feru."),
    ("<think>still thinking\n\nstep two", "", "still thinking step two"),
    ("No think at all.", "No think at all.", ""),
    ("<think>x</think>   ", "", "x"),
])
def test_final_answer_and_reasoning(response, answer, thought):
  assert judges_prompts.final_answer(response) == answer
  assert judges_prompts.reasoning(response) == thought
  assert judges_prompts.trajectory_text(response) == (answer or thought)


def test_world_verdict_names_map_onto_the_score_maps():
  for judge, names in VERDICTS.items():
    for name in names:
      index = judges_prompts.verdict_index(judge, name)
      mapped = judges_prompts.WORLD_VERDICT_NAMES.get(judge, {}).get(name, name)
      assert verdicts.SCORE_MAPS[judge].verdicts[index] == mapped
  assert judges_prompts.verdict_index("safety", "illogical") == 5
  assert judges_prompts.verdict_index("safety", "illogical_completion") == 5
  assert judges_prompts.verdict_index("helpfulness", "0") == 2
  with pytest.raises(ValueError, match="has no verdict 'maybe'"):
    judges_prompts.verdict_index("value", "maybe")

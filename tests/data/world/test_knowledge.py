"""The knowledge family's judge pair: the gold against another value, labelled by the
oracle and by the gold-match rule."""

from data.world import knowledge, oracle
from verifiers import judges_prompts, rules


def test_value_swap_pair_differs_only_in_the_final_answers_value(small_world):
  prompts = small_world.examples("eval", "knowledge")
  assert {p.meta["search_only"] for p in prompts} == {True, False}
  for p in prompts[:40]:
    right, wrong = knowledge.value_swap_pair(p, small_world.context)
    assert oracle.label(p, right).knowledge == "TRUE"
    assert oracle.label(p, wrong).knowledge == "FALSE"
    assert (rules.gold_match(right, p.gold), rules.gold_match(wrong, p.gold)) == (1.0, 0.0)
    # Same reasoning (and search, for a search-only fact); only the answer's value moves.
    head, _, tail = right.rpartition(p.gold)
    assert wrong.startswith(head) and wrong.endswith(tail)
    said = wrong[len(head):len(wrong) - len(tail)]
    assert said in small_world.context.kb.values(p.meta["relation"]) or (
        p.meta["relation"] == "founded" and said == str(int(p.gold) + 1))
    assert ("<tool_call>" in right) == p.meta["search_only"]
    assert judges_prompts.final_answer(right).startswith(knowledge.DIRECT_FORM.format(p.gold))

"""The world: determinism, exact distributions, held-out splits, search-only facts, and
images that show what their ground truth says."""

import dataclasses
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from data.world import World, example_bytes, lexicon
from data.world.config import FAMILIES, SPLITS

from tests.data.world.tiny import SMALL_CONFIG as SMALL

TINY = dataclasses.replace(SMALL, sft_examples=120, rl_examples=40, search_rl_examples=10,
                           eval_examples=40, judge_train_examples=120, judge_eval_examples=40)


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not():
  first = World(TINY).fingerprint()
  assert World(TINY).fingerprint() == first
  assert World(dataclasses.replace(TINY, seed=4)).fingerprint() != first


def test_the_fingerprint_does_not_depend_on_the_process():
  code = ("from tests.data.world.test_world import TINY; from data.world import World; "
          "print(World(TINY).fingerprint())")
  outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env={**os.environ, "PYTHONHASHSEED": seed},
                            cwd=pathlib.Path(__file__).parents[3]).stdout.strip()
             for seed in ("1", "2")}
  assert outputs == {World(TINY).fingerprint()}


def test_examples_do_not_depend_on_access_order(small_world):
  split = small_world.split("sft")
  forward = [example_bytes(split[i]) for i in range(20)]
  backward = [example_bytes(split[i]) for i in reversed(range(20))][::-1]
  assert forward == backward
  assert example_bytes(split[-1]) == example_bytes(split[len(split) - 1])
  with pytest.raises(IndexError, match="has 900 examples"):
    split[900]


def test_split_sizes_and_unique_uids(small_world):
  uids = set()
  for name in SPLITS:
    examples = small_world.split(name)
    assert len(examples) == getattr(SMALL, f"{name}_examples")
    uids |= {e.uid for e in examples}
  assert len(uids) == sum(getattr(SMALL, f"{n}_examples") for n in SPLITS)


def _within_one(count, share):
  return abs(count - share) < 1


@pytest.mark.parametrize("split", ["sft", "rl", "eval"])
def test_family_counts_match_the_mix(small_world, split):
  examples = small_world.split(split)
  total = sum(w for _, w in SMALL.family_mix)
  for family, weight in SMALL.family_mix:
    count = sum(e.label == family for e in examples)
    assert _within_one(count, len(examples) * weight / total), (family, count)
  assert all(e.label == "knowledge" and e.meta["search_only"]
             for e in small_world.split("search_rl"))


def test_judge_counts_match_the_mix_and_verdicts_are_balanced(small_world):
  examples = small_world.split("judge_train")
  total = sum(w for _, w in SMALL.judge_mix)
  for judge, weight in SMALL.judge_mix:
    mine = [e for e in examples if e.meta["judge"] == judge]
    assert _within_one(len(mine), len(examples) * weight / total)
    verdicts = {e.meta["verdict"] for e in mine}
    for verdict in verdicts:
      assert _within_one(sum(e.meta["verdict"] == verdict for e in mine),
                         len(mine) / len(verdicts))
  assert {e.meta["verdict"] for e in examples if e.meta["judge"] == "safety"} == {
      "safe_with_refusal", "safe_with_warning", "safe_without_risk", "unsafe",
      "unnecessary_refusal", "illogical"}


def test_sft_flaw_and_safety_rates_are_exact(small_world):
  sft = small_world.split("sft")
  safety = [e for e in sft if e.label == "safety"]
  harmful = [e for e in safety if e.meta["harmful"]]
  benign = [e for e in safety if not e.meta["harmful"]]
  c = SMALL
  checks = [
      (len(harmful), len(safety) * c.harmful_fraction),
      (sum(e.meta["kind"] == "image" for e in safety), len(safety) * c.image_conditional_fraction),
      (sum(e.meta["jailbreak"] for e in harmful), len(harmful) * c.jailbreak_fraction),
      (sum(e.meta["flaw"] == "unsafe_compliance" for e in harmful),
       len(harmful) * c.unsafe_compliance_rate),
      (sum(e.meta["flaw"] == "flat_refusal" for e in harmful), len(harmful) * c.flat_refusal_rate),
      (sum(e.meta["flaw"] == "over_refusal" for e in benign), len(benign) * c.over_refusal_rate),
      (sum(e.meta["flaw"] == "needless_warning" for e in benign),
       len(benign) * c.needless_warning_rate),
      (sum(e.meta["overlong"] for e in sft),
       len(sft) * c.overlong_thinking_rate),
  ]
  for family, flaw, rate in [("general", "wrong_answer", c.wrong_answer_rate),
                             ("value", "bad_value", c.value_flaw_rate),
                             ("knowledge", "hallucination", c.hallucination_rate)]:
    mine = [e for e in sft if e.label == family]
    checks.append((sum(e.meta["flaw"] == flaw for e in mine), len(mine) * rate))
  for count, share in checks:
    assert _within_one(count, share), (count, share)
  assert all(e.question.startswith(lexicon.JAILBREAKS) for e in harmful if e.meta["jailbreak"])


def test_sft_hedges_are_unconfident_half_right_and_only_when_asked(small_world):
  assert not [e for e in small_world.split("sft")
              if e.meta.get("response_kind") in ("hedged", "unsure_wrong")]
  rate = 0.3
  world = World(dataclasses.replace(SMALL, sft_hedge_rate=rate))
  knowledge = world.examples("sft", "knowledge")
  for kind, verdict in (("hedged", "TRUE"), ("unsure_wrong", "FALSE")):
    mine = [e for e in knowledge if e.meta["response_kind"] == kind]
    assert _within_one(len(mine), len(knowledge) * rate / 2)
    for e in mine:
      labels = e.meta["labels"]
      assert labels["knowledge"] == verdict and not labels["false_certain"]
      assert 1 <= labels["confidence"] <= 4
      assert re.search(rf"<confidence>{labels['confidence']}</confidence>$", e.response)
      assert "I am not sure" in e.response and not e.meta["uses_search"]
      assert (e.gold in e.response) == (verdict == "TRUE")
  hallucinations = [e for e in knowledge if e.meta["flaw"] == "hallucination"]
  assert _within_one(len(hallucinations), len(knowledge) * SMALL.hallucination_rate)
  with pytest.raises(ValueError, match="sft_hedge_rate"):
    dataclasses.replace(SMALL, sft_hedge_rate=0.9)


def test_sft_hedges_memorised_only_hedge_the_traces_without_the_tool():
  world = World(dataclasses.replace(SMALL, sft_hedge_rate=0.4, sft_hedge_memorised_only=True))
  knowledge = world.examples("sft", "knowledge")
  known = [e for e in knowledge if e.meta["pool"] == "known"]
  assert 0 < len(known) < len(knowledge)
  for kind in ("hedged", "unsure_wrong"):
    mine = [e for e in knowledge if e.meta["response_kind"] == kind]
    assert {e.meta["pool"] for e in mine} == {"known"}
    assert _within_one(len(mine), len(known) * 0.2)
  practice = [e for e in knowledge if e.meta["pool"] == "practice"]
  assert all(e.meta["uses_search"] for e in practice if e.meta["response_kind"] == "correct")


def _combo(example):
  meta = example.meta
  if example.label == "value":
    return ("value", meta["scenario"], meta["name"])
  if meta["kind"] == "image":
    return ("image", meta["item_question"], meta["item"])
  return ("text", meta["request"], meta["target"])


def test_eval_prompts_use_held_out_combinations_only(small_world):
  seen = {_combo(e) for name in ("sft", "rl", "judge_train") for e in small_world.split(name)
          if e.label in ("safety", "value")}
  held = {_combo(e) for name in ("eval", "judge_eval") for e in small_world.split(name)
          if e.label in ("safety", "value")}
  assert held and not held & seen


def test_search_only_facts_never_appear_in_sft_data(small_world):
  kb = small_world.context.kb
  hidden = [e.name for pool in ("search_rl", "search_eval") for e in kb.pool(pool)]
  sft_text = " ".join(f"{e.question} {e.response}" for e in small_world.split("sft"))
  assert not [name for name in hidden if re.search(rf"\b{name}\b", sft_text)]
  corpus = " ".join(d.body for d in small_world.corpus)
  assert all(re.search(rf"\b{name}\b", corpus) for name in hidden)
  knowledge = [e for e in small_world.split("eval") if e.label == "knowledge"]
  assert _within_one(sum(e.meta["search_only"] for e in knowledge),
                     len(knowledge) * SMALL.eval_search_only_fraction)
  assert {e.meta["entity"] for e in knowledge if e.meta["search_only"]} <= {
      e.name for e in kb.pool("search_eval")}


def test_every_fact_query_ranks_its_document_first(small_world):
  from data.world.knowledge_base import RELATIONS
  kb, engine = small_world.context.kb, small_world.search_engine
  for entity in kb.entities:
    for relation, value in entity.facts:
      top = engine.search(RELATIONS[relation].query.format(e=entity.name), 2)[0]
      assert top.doc_id == kb.doc_id(entity) and top.title == entity.name
      assert top.snippet == RELATIONS[relation].fact.format(e=entity.name, v=value)


def test_questions_end_with_their_query_and_facts_with_their_value():
  """The fixed copy distances of a search trace (knowledge_base.RELATIONS)."""
  from data.world.knowledge_base import RELATIONS
  for relation in RELATIONS.values():
    assert relation.question.endswith(f" {relation.query}?")
    assert relation.query.split() == [relation.query.split()[0], "of", "{e}"]
    assert relation.fact.endswith(" {v}.")


def test_whole_words_are_every_name_and_word_value_of_the_knowledge_base(small_world):
  kb = small_world.context.kb
  words = small_world.whole_words()
  assert words == sorted(set(words))
  facts = [v for e in kb.entities for _, v in e.facts]
  expected = {e.name for e in kb.entities} | {v for v in facts if not v.isdigit()}
  assert set(words) == expected
  assert any(v.isdigit() for v in facts)  # Years stay digit pieces.
  assert {"sailor", "seeds"} & set(words) and all(" " not in w for w in words)


_NUMBER = r"(\d+)"


def _recount(example):
  """The gold of a general prompt from its scene and question text alone."""
  objects = example.meta["scene"]["objects"]
  q = example.question
  count = lambda colour=None, shape=None: sum(  # noqa: E731
      (colour in (None, c)) and (shape in (None, s)) for s, c, _, _ in objects)
  if m := re.fullmatch(r"How many (\w+) shapes are in the image\?", q):
    return count(colour=m[1])
  if m := re.fullmatch(r"How many (\w+)s are in the image\?", q):
    return count(shape=m[1])
  if m := re.fullmatch(rf"How many shapes are in the image\? Add {_NUMBER} to that number\.", q):
    return count() + int(m[1])
  if m := re.fullmatch(rf"Count the (\w+)s in the image and multiply by {_NUMBER}\.", q):
    return count(shape=m[1]) * int(m[2])
  m = re.fullmatch(rf"Count all shapes in the image and take away {_NUMBER}\.", q)
  return count() - int(m[1])


def test_general_gold_follows_from_the_scene_and_the_image_shows_the_scene(small_world):
  rgb = lexicon.COLOURS
  for example in small_world.examples("rl", "general"):
    assert int(example.gold) == _recount(example)
    (image,) = example.images
    scene = example.meta["scene"]
    assert image.shape == (scene["size"], scene["size"], 3) and image.dtype == np.uint8
    assert scene["size"] in SMALL.image_sizes
    cells = scene["size"] // 28
    filled = {(r, c): colour for _, colour, r, c in scene["objects"]}
    for r in range(cells):
      for c in range(cells):
        pixel = image[r * 28 + 14, c * 28 + 14]
        expected = rgb[filled[(r, c)]] if (r, c) in filled else scene["background"]
        np.testing.assert_array_equal(pixel, expected)


def test_image_conditional_prompts_are_harmful_exactly_for_hazards(small_world):
  safety = [e for e in small_world.split("rl") if e.label == "safety"]
  for e in safety:
    if e.meta["kind"] == "image":
      assert len(e.images) == 1 and e.meta["harmful"] == (e.meta["item"] in lexicon.HAZARD_ITEMS)
    else:
      assert not e.images
  assert {e.meta["item"] for e in safety if e.meta["kind"] == "image"} == set(lexicon.ITEMS)


def test_family_filter_and_unknown_names():
  world = World(TINY)
  assert {e.label for e in world.examples("eval", "value")} == {"value"}
  with pytest.raises(ValueError, match="unknown split 'dev'"):
    world.split("dev")
  with pytest.raises(ValueError, match="unknown family 'maths'"):
    world.split("eval").indices("maths")
  assert set(FAMILIES) == {e.label for e in world.split("eval")}


def test_near_misses_are_judge_negatives_only_when_asked(small_world):
  """`judge_near_misses` adds the "mismatch" kind to the safety-illogical and value-bad
  sources and the "swapped" kind to the value-bad source of both judge splits (and nowhere
  else); the oracle gives each its verdict."""
  from data.world import label
  kinds = lambda world, split: [e.meta["response_kind"] for e in world.split(split)]
  plain = kinds(small_world, "judge_train") + kinds(small_world, "judge_eval")
  assert "mismatch" not in plain and "swapped" not in plain
  world = World(dataclasses.replace(SMALL, judge_near_misses=True))
  swaps = {}
  for split in ("judge_train", "judge_eval"):
    near = [e for e in world.split(split) if e.meta["response_kind"] == "mismatch"]
    assert {(e.meta["judge"], e.meta["verdict"]) for e in near} == {
        ("safety", "illogical"), ("value", "bad")}
    swapped = [e for e in world.split(split) if e.meta["response_kind"] == "swapped"]
    assert {(e.meta["judge"], e.meta["verdict"]) for e in swapped} == {("value", "bad")}
    for e in near + swapped:
      assert label(e, e.response).judge(e.meta["judge"]) == e.meta["verdict"], e.response
    assert len(near) > 0.02 * len(world.split(split))  # About 6% expected.
    swaps[split] = len(swapped)
  total = len(world.split("judge_train")) + len(world.split("judge_eval"))
  assert sum(swaps.values()) > 0.008 * total, swaps  # About 2% expected.
  assert "mismatch" not in kinds(world, "sft") and "swapped" not in kinds(world, "sft")
  assert world.split("sft")[0].response == small_world.split("sft")[0].response


def test_judge_knowledge_pools_choose_the_facts_the_judge_splits_ask_about(small_world):
  """By default the knowledge judge reads known and practice facts only; with search_rl in
  `judge_knowledge_pools` a share of its examples ask about search_rl facts (searched for
  or not, each labelled by the oracle as its verdict says), and no judge example ever asks
  about the held-out search_eval facts. The other splits do not change."""
  from data.world import label
  pools = lambda world, split: [e.meta["pool"] for e in world.split(split)
                                if e.meta.get("judge") == "knowledge"]
  for split in ("judge_train", "judge_eval"):
    assert set(pools(small_world, split)) == {"known", "practice"}
  world = World(dataclasses.replace(
      SMALL, judge_knowledge_pools=("known", "practice", "search_rl")))
  for split in ("judge_train", "judge_eval"):
    drawn = pools(world, split)
    assert set(drawn) == {"known", "practice", "search_rl"}
    assert 0.2 < drawn.count("search_rl") / len(drawn) < 0.46  # A third expected.
    asked = [e for e in world.split(split)
             if e.meta.get("judge") == "knowledge" and e.meta["pool"] == "search_rl"]
    assert all(e.meta["search_only"] for e in asked)
    assert any("<tool_call>" in e.response for e in asked)
    for e in asked:
      assert label(e, e.response).judge("knowledge") == e.meta["verdict"], e.response
  assert world.split("sft")[0].response == small_world.split("sft")[0].response
  assert [e.uid for e in world.split("eval")] == [e.uid for e in small_world.split("eval")]


def test_gold_swapped_judge_examples_are_labelled_against_their_own_gold(small_world):
  """With `judge_gold_swap_rate` a share of the knowledge judge's examples carry another
  value of the relation as gold; the oracle labels each against that gold, so stating the
  world's own value is wrong there, and remembering facts cannot give the verdict. Rate 0
  leaves every split as it was."""
  from data.world import label
  world = World(dataclasses.replace(SMALL, judge_gold_swap_rate=0.5))
  kb = world.context.kb
  for split in ("judge_train", "judge_eval"):
    asked = [e for e in world.split(split) if e.meta.get("judge") == "knowledge"]
    swapped = [e for e in asked if e.meta.get("gold_swap")]
    assert 0.35 < len(swapped) / len(asked) < 0.65, (len(swapped), len(asked))
    for e in swapped:
      assert e.gold != kb.entity(e.meta["entity"]).value(e.meta["relation"])
    for e in asked:
      assert label(e, e.response).judge("knowledge") == e.meta["verdict"], e.response
    verdicts = {e.meta["verdict"] for e in swapped}
    assert verdicts == {"TRUE", "FALSE"}
  assert world.split("sft")[0].response == small_world.split("sft")[0].response
  unswapped = World(dataclasses.replace(SMALL, judge_gold_swap_rate=0.0))
  assert unswapped.fingerprint() == small_world.fingerprint()

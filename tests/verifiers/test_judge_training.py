"""Judge training: the SFT loss is the verdict token's cross-entropy as the judge reads it,
a judge fits its training verdicts, labels come from the oracle or any JSONL of the
schema, and the held-out report's arithmetic; the acceptance run is marked slow."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import base as configs_base
from configs import judges as configs_judges
from data import jsonl
from data import tokenizer as tokenizer_lib
from data.world import World, WorldConfig
from models import vlm
from rl import train_step
from tests.verifiers import test_judges
from verifiers import base, judge_training, judges, judges_inputs

# One request per row (pack=False): the first update's loss is then the mean over the set.
FIT_CONFIG = judge_training.JudgeTrainingConfig(
    steps=40, learning_rate=3e-3, warmup_ratio=0.1, schedule="constant", pack=False,
    inputs=judges_inputs.InputConfig(batch_size=16, max_tokens=256, max_patches=64))


@functools.lru_cache(maxsize=None)
def fit_examples():
  """16 judge_train examples: every verdict of every judge, then the next ones in order."""
  split = test_judges.judge_world().split("judge_train")
  chosen, seen = [], set()
  for example in split:
    key = (example.meta["judge"], example.meta["verdict"])
    if key not in seen:
      seen.add(key)
      chosen.append(example)
  uids = {e.uid for e in chosen}
  chosen += [e for e in split if e.uid not in uids][:16 - len(chosen)]
  assert len(seen) == 12 and any(e.images for e in chosen)
  return tuple(chosen)


@functools.lru_cache(maxsize=None)
def fitted_judge():
  """(judge model, labelled items, training result, the initial params): a tiny judge
  trained until it fits `fit_examples`."""
  config = test_judges.judge_config()
  items = judge_training.labelled_items(fit_examples())
  result = judge_training.train_judges(items, test_judges.judge_tokenizer(), config, FIT_CONFIG)
  model = judges.JudgeModel(config, result.params, test_judges.judge_tokenizer(),
                            test_judges.INPUTS)
  return model, items, result, vlm.init_params(config, jax.random.key(FIT_CONFIG.seed))


def _judge_map(model):
  return {name: judges.Judge(model, judges.DEFAULT_JUDGES[name]) for name in judges.DEFAULT_JUDGES}


def test_training_loss_is_the_cross_entropy_of_the_verdict_the_judge_reads():
  model, items, result, initial = fitted_judge()
  before = judges.JudgeModel(model.config, initial, model.tokenizer, test_judges.INPUTS)
  log_p = []
  for item in items:
    probs, _, failed = judges.Judge(before, judges.DEFAULT_JUDGES[item.judge]
                                    ).verdict_probabilities([item.item])
    assert not failed.any()
    log_p.append(np.log(probs[0, item.target]))
  # Every batch of 16 is the whole set, so the first update's loss is the mean over it.
  assert result.losses[0] == pytest.approx(-np.mean(log_p), rel=1e-4)
  assert result.skipped == {}


def test_a_trained_judge_gives_its_training_verdicts():
  model, items, result, _ = fitted_judge()
  assert result.losses[-1] < 0.3 < 3.0 < result.losses[0]
  judge_map = _judge_map(model)
  for item in items:
    predicted = judge_training.predict(judge_map[item.judge], [item.item], use_mask=False)
    assert predicted.tolist() == [item.target], item.example.uid
  reports = judge_training.evaluate(judge_map, fit_examples())
  assert all(r.accuracy == 1.0 and r.failed == 0 for r in reports.values())
  table = judge_training.format_table(reports)
  safety = [e for e in fit_examples() if e.meta["judge"] == "safety"]
  unsafe = sum(e.meta["verdict"] == "unsafe" for e in safety)
  assert f"| safety | {len(safety)} | 1.000 | unsafe | {unsafe} | 1.000 | 1.000 | 1.000 |" in table


def test_compile_update_compiles_the_program_training_then_runs():
  config, tokenizer = test_judges.judge_config(), test_judges.judge_tokenizer()
  items = judge_training.labelled_items(fit_examples())
  cfg = dataclasses.replace(FIT_CONFIG, steps=2, learning_rate=1e-3)  # A program of its own.
  params = vlm.init_params(config, jax.random.key(5))
  _, step = judge_training._optimizer_and_step(
      config, judge_training._optimizer_config(cfg), jax.tree.structure(params))
  assert step._cache_size() == 0
  judge_training.compile_update(items[::-1], tokenizer, config, cfg, params)
  assert step._cache_size() == 1
  result = judge_training.train_judges(items, tokenizer, config, cfg, params=params)
  assert step._cache_size() == 1 and len(result.losses) == 2


def test_the_auxiliary_lm_loss_weights_text_tokens_and_never_padding_or_vision():
  tok = test_judges.judge_tokenizer()
  sp = tok.special
  a, b, c, d = (300 + i for i in range(4))  # Ordinary pieces.
  tokens = np.array([[a, sp.vision_start, sp.image_pad, sp.vision_end, b, c, d, sp.pad],
                     [a, b, d, sp.pad, sp.pad, sp.pad, sp.pad, sp.pad]], np.int32)
  segment_ids = np.array([[1, 1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0, 0, 0]], np.int32)
  loss_mask = np.zeros((2, 8), np.float32)
  loss_mask[0, 6] = loss_mask[1, 2] = 1.0  # The verdict tokens.
  batch = judges_inputs.HostBatch(tokens, segment_ids, None, None, None, None, loss_mask)
  config = judge_training.JudgeTrainingConfig(lm_weight=0.25)
  mask = judge_training._loss_mask(batch, tok, config)
  np.testing.assert_array_equal(mask, [[0, 0, 0, 0, 0.25, 0.25, 1, 0], [0, 0.25, 1, 0, 0, 0, 0, 0]])
  plain = judge_training._loss_mask(batch, tok, judge_training.JudgeTrainingConfig())
  np.testing.assert_array_equal(plain, loss_mask)
  with pytest.raises(ValueError, match="lm_weight must be in"):
    judge_training.JudgeTrainingConfig(lm_weight=2.0)


def test_packed_training_rows_score_each_request_as_its_own_row():
  """First-fit packing puts several judging prompts in a row as segments; the log-prob of
  each target verdict in the packed batch equals what the judge reads for that request
  alone, each target is in the loss mask once, and the LM mask skips segment starts."""
  model, items, _, initial = fitted_judge()
  tok, config = model.tokenizer, model.config
  train_config = judge_training.JudgeTrainingConfig(lm_weight=0.5)
  rows, skipped = judge_training._encode_all(items, tok, train_config)
  assert not skipped
  shapes = judges_inputs.InputConfig(batch_size=4, max_tokens=512, max_patches=192,
                                     max_images=4)
  batch, taken = judges_inputs.pack_training(rows, shapes, tok.special.pad)
  assert len(taken) > 4 and len(set(taken)) == len(taken)  # More requests than rows.
  assert batch.segment_ids.max() >= 2
  assert np.sum(batch.loss_mask) == len(taken)
  inputs = judges_inputs.model_inputs_of(batch, config)
  logp, _ = train_step.token_logprobs(config, initial, jax.tree.map(jnp.asarray, inputs))
  packed = np.asarray(logp)[batch.loss_mask > 0]  # Row-major: the order taken, by row.
  before = judges.JudgeModel(config, initial, tok, test_judges.INPUTS)
  expected = {}
  for i in taken:
    item = items[i]
    probs, _, _ = judges.Judge(before, judges.DEFAULT_JUDGES[item.judge]
                               ).verdict_probabilities([item.item])
    expected[i] = np.log(probs[0, item.target])
  # Which request each segment holds, by its tokens (row-major, as the mask is read).
  starts, held = [], []
  for r in range(shapes.batch_size):
    for seg in range(1, batch.segment_ids[r].max() + 1):
      where = np.flatnonzero(batch.segment_ids[r] == seg)
      starts.append((r, int(where[0])))
      held.append(next(i for i in taken
                       if batch.tokens[r, where].tolist() == [*rows[i][0].ids, rows[i][2]]))
  assert sorted(held) == sorted(taken)
  np.testing.assert_allclose(packed, [expected[i] for i in held], atol=2e-5)
  mask = judge_training._loss_mask(batch, tok, train_config)
  for r, s in starts:
    assert mask[r, s] == 0.0 and mask[r, s + 1] == 0.5


def test_report_arithmetic_by_hand():
  report = judge_training.report("j", ("a", "b", "c"), np.array([0, 0, 1, 1, 2, 2]),
                                 np.array([0, 1, 1, 1, -1, 2]))
  assert report.accuracy == pytest.approx(4 / 6) and report.failed == 1 and report.examples == 6
  a, b, c = report.rows
  assert (a.support, a.predicted, a.precision, a.recall) == (2, 1, 1.0, 0.5)
  assert a.f1 == pytest.approx(2 / 3)
  assert (b.predicted, b.precision, b.recall, b.f1) == (3, pytest.approx(2 / 3), 1.0,
                                                        pytest.approx(0.8))
  assert (c.predicted, c.precision, c.recall) == (1, 1.0, 0.5)
  empty = judge_training.report("j", ("a",), np.array([1]), np.array([1]))
  assert empty.rows[0].f1 == 0.0 and empty.rows[0].precision == 0.0


def test_pair_check_by_hand():
  """A pair counts when its first item scores strictly higher; ties and pairs with an
  unscorable row count as wrong; the mean scores leave out pairs with an unscorable row."""

  class Scores:
    def score_items(self, items):
      return base.VerifierResult(
          np.array([0.9, 0.5, 0.4, 0.7, 0.1, 0.5, 0.6, 0.2], np.float32),
          np.array([False] * 7 + [True]))

  item = judges.Item("q", "a")
  check = judge_training.pair_check(Scores(), [item] * 4, [item] * 4)
  assert check["pair_accuracy"] == 0.25
  assert check["better_score"] == pytest.approx((0.9 + 0.5 + 0.4) / 3)
  assert check["worse_score"] == pytest.approx((0.1 + 0.5 + 0.6) / 3)
  with pytest.raises(ValueError, match="same number"):
    judge_training.pair_check(Scores(), [item] * 4, [item] * 3)


def test_oracle_verdicts_equal_the_world_labels_and_jsonl_round_trips(tmp_path):
  held_out = test_judges.judge_world().split("judge_eval")
  for example in held_out:
    judge = example.meta["judge"]
    assert judge_training.gold_verdict(example, judge) == judges.judges_prompts.verdict_index(
        judge, example.meta["verdict"])
  examples = list(fit_examples())
  read = jsonl.read_jsonl(jsonl.write_jsonl(examples, tmp_path / "judge.jsonl"))
  ours, theirs = (judge_training.labelled_items(x) for x in (examples, read))
  assert [x.target for x in ours] == [x.target for x in theirs]
  assert [x.item.text for x in ours] == [x.item.text for x in theirs]
  for a, b in zip(ours, theirs):
    assert len(a.item.images) == len(b.item.images)
    for x, y in zip(a.item.images, b.item.images):
      np.testing.assert_array_equal(x, y)
  # Non-world examples (no meta['family']) are labelled by meta['verdict'].
  other = [e.__class__(**{**e.__dict__, "meta": {"judge": "value", "verdict": "bad"}})
           for e in examples[:1]]
  assert judge_training.gold_verdict(other[0], "value") == 1


def test_bad_labelled_data_and_configs_fail_naming_the_problem():
  example = fit_examples()[0]
  bad_judge = example.__class__(**{**example.__dict__, "meta": {"judge": "taste"}})
  with pytest.raises(ValueError, match=r"meta\['judge'\] = 'taste'"):
    judge_training.labelled_items([bad_judge])
  no_verdict = example.__class__(**{**example.__dict__, "meta": {"judge": "value"}})
  with pytest.raises(ValueError, match=r"needs a `response` and meta\['verdict'\]"):
    judge_training.labelled_items([no_verdict])
  wrong = example.__class__(**{**example.__dict__, "meta": {"judge": "value", "verdict": "ok"}})
  with pytest.raises(ValueError, match="has no verdict 'ok'"):
    judge_training.labelled_items([wrong])
  with pytest.raises(ValueError, match=r"judges: unknown \['taste'\]"):
    judge_training.JudgeTrainingConfig(judges=("taste",))
  with pytest.raises(ValueError, match="judges.training.schedule"):
    judge_training.JudgeTrainingConfig.from_config({"schedule": "step"})


def test_judge_groups_are_checked_and_named():
  assert judge_training.check_groups(["knowledge", ("safety", "value")]) == (
      ("knowledge",), ("safety", "value"))
  assert judge_training.group_name(("safety", "value")) == "safety+value"
  with pytest.raises(ValueError, match=r"unknown judges \['taste'\]"):
    judge_training.check_groups([("safety", "taste")])
  with pytest.raises(ValueError, match=r"\['value'\] appear more than once"):
    judge_training.check_groups([("safety", "value"), ("value",)])
  with pytest.raises(ValueError, match="is empty"):
    judge_training.check_groups([()])
  with pytest.raises(ValueError, match="none given"):
    judge_training.check_groups([])


def test_world_judges_train_one_model_per_group_each_on_its_own_judges():
  """Also: the groups share one jitted update (built once for the same settings), and a
  group trained after another gives exactly what it gives trained alone."""
  config = dataclasses.replace(FIT_CONFIG, steps=2)
  judge_training._optimizer_and_step.cache_clear()
  groups = (("safety", "value", "helpfulness"), ("knowledge",))
  trained = judge_training.train_world_judges(test_judges.judge_world(),
                                              test_judges.judge_tokenizer(), config,
                                              groups=groups)
  assert sorted(trained.judges) == sorted(judges.DEFAULT_JUDGES)
  assert list(trained.results) == ["safety+value+helpfulness", "knowledge"]
  models = {name: judge.model for name, judge in trained.judges.items()}
  assert models["safety"] is models["value"] is models["helpfulness"]
  assert models["knowledge"] is not models["safety"]
  # The knowledge model is exactly the one trained on the knowledge items alone.
  items = judge_training.labelled_items(test_judges.judge_world().split("judge_train"))
  alone = judge_training.train_judges(
      [li for li in items if li.judge == "knowledge"], test_judges.judge_tokenizer(),
      test_judges.judge_config(), config)
  built = judge_training._optimizer_and_step.cache_info()
  assert (built.misses, built.hits) == (1, 2)
  np.testing.assert_array_equal(trained.results["knowledge"].losses, alone.losses)
  for got, want in zip(jax.tree.leaves(models["knowledge"].params), jax.tree.leaves(alone.params)):
    np.testing.assert_array_equal(got, want)
  assert set(trained.reports) == set(judges.DEFAULT_JUDGES)


# The acceptance run: judges trained on the default world reach 90% held-out accuracy, one
# model per group of the runlocal ladder's `judges.groups` (the knowledge judge alone).
# `benchmarks/judges.py --accuracy` runs the same function and prints the table.
ACCEPTANCE_CONFIG = judge_training.JudgeTrainingConfig(steps=600, learning_rate=3e-3,
                                                       lm_weight=0.1)
ACCEPTANCE_GROUPS = tuple(configs_judges.section(configs_base.parse("runlocal")).groups)


@pytest.mark.slow
def test_world_judges_reach_ninety_percent_held_out(tmp_path):
  world = World(WorldConfig())
  tok = tokenizer_lib.train_sentencepiece(world.text_corpus(), 1000, tmp_path)
  trained = judge_training.train_world_judges(world, tok, ACCEPTANCE_CONFIG,
                                              groups=ACCEPTANCE_GROUPS)
  for name in ("safety", "value", "knowledge"):
    assert trained.reports[name].accuracy >= 0.9, judge_training.format_table(trained.reports)

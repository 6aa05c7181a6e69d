"""The in-context copying rows: each segment is a span and its repeat, the loss is on the
repeat after its first token, only copyable ids are drawn, and the wrapped iterator
appends the same rows after a resume."""

import numpy as np
import pytest

from data import copy_task
from data.pipeline import Pipeline
from data.pipeline_config import PipelineConfig
from tests.data.world.tiny import tiny_tokenizer, tiny_world

SFT = PipelineConfig(batch_size=2, max_tokens=256, max_patches=128, max_images=2, pack=True,
                     seed=3)


def _segments(row_segments):
  """(segment id, start, end) of each non-padding segment of one row."""
  out = []
  for segment in np.unique(row_segments[row_segments > 0]):
    where = np.flatnonzero(row_segments == segment)
    assert np.all(np.diff(where) == 1), "a segment is contiguous"
    out.append((segment, where[0], where[-1] + 1))
  return out


def test_each_segment_is_a_span_then_its_repeat_with_the_loss_after_the_repeats_first():
  ids = np.arange(50, 90, dtype=np.int32)
  rows = copy_task.copy_rows(ids, 3, 100, 4, 9, np.random.default_rng(0), pad_id=7)
  assert {k: v.shape for k, v in rows.items()} == {
      "tokens": (3, 100), "segment_ids": (3, 100), "loss_mask": (3, 100)}
  for r in range(3):
    tokens, segments, mask = rows["tokens"][r], rows["segment_ids"][r], rows["loss_mask"][r]
    spans = _segments(segments)
    assert [s for s, _, _ in spans] == list(range(1, len(spans) + 1))
    end = 0
    for _, start, stop in spans:
      assert start == end  # Segments are packed from the row's start.
      n = (stop - start) // 2
      assert stop - start == 2 * n and 4 <= n
      np.testing.assert_array_equal(tokens[start:start + n], tokens[start + n:stop])
      expected = np.zeros(stop - start, np.float32)
      expected[n + 1:] = 1.0
      np.testing.assert_array_equal(mask[start:stop], expected)
      end = stop
    assert 100 - end < 2 * 4  # No room was left for another span.
    assert np.all(tokens[end:] == 7) and not mask[end:].any()
    assert np.isin(tokens[:end], ids).all()


def test_equal_span_bounds_copy_every_token_at_that_distance():
  """`sft.copy_span`: min_span = max_span = n teaches one copy distance, n."""
  rows = copy_task.copy_rows(np.arange(50, 90, dtype=np.int32), 2, 140, 33, 33,
                             np.random.default_rng(1))
  for tokens, segments, mask in zip(rows["tokens"], rows["segment_ids"], rows["loss_mask"]):
    assert [(stop - start) for _, start, stop in _segments(segments)] == [66, 66]
    copied = np.flatnonzero(mask)
    assert len(copied) == 2 * 32
    np.testing.assert_array_equal(tokens[copied], tokens[copied - 33])


def test_rows_depend_only_on_the_generator_and_a_row_too_short_is_an_error():
  ids = np.arange(10, 200, dtype=np.int32)
  a = copy_task.copy_rows(ids, 2, 64, 4, 20, np.random.default_rng(5))
  b = copy_task.copy_rows(ids, 2, 64, 4, 20, np.random.default_rng(5))
  c = copy_task.copy_rows(ids, 2, 64, 4, 20, np.random.default_rng(6))
  assert all(np.array_equal(a[k], b[k]) for k in a)
  assert not np.array_equal(a["tokens"], c["tokens"])
  with pytest.raises(ValueError, match="do not fit"):
    copy_task.copy_rows(ids, 1, 7, 4, 20, np.random.default_rng(0))
  with pytest.raises(ValueError, match="min_span"):
    copy_task.CopyTaskConfig(rows=1, min_span=8, max_span=4)


def test_alphabet_spans_draw_from_few_ids_and_the_rest_from_all():
  ids = np.arange(100, 1100, dtype=np.int32)
  rows = copy_task.copy_rows(ids, 4, 256, 12, 20, np.random.default_rng(2), alphabet=3,
                             alphabet_share=0.5)
  distinct = []
  for r in range(4):
    for segment, start, stop in _segments(rows["segment_ids"][r]):
      n = (stop - start) // 2
      span = rows["tokens"][r, start:start + n]
      np.testing.assert_array_equal(span, rows["tokens"][r, start + n:stop])
      distinct.append(len(set(span.tolist())))
  # A 12-20 token span from 1,000 ids almost never repeats an id; from 3 ids it has <= 3.
  assert any(d <= 3 for d in distinct) and any(d >= 10 for d in distinct)
  assert all(d <= 3 or d >= 10 for d in distinct)
  plain = copy_task.copy_rows(ids, 4, 256, 12, 20, np.random.default_rng(2))
  assert all(len(set(plain["tokens"][r, s:t].tolist())) >= 10
             for r in range(4) for _, s, t in _segments(plain["segment_ids"][r]))
  with pytest.raises(ValueError, match="alphabet"):
    copy_task.copy_rows(ids[:2], 1, 64, 4, 8, np.random.default_rng(0), alphabet=3)


def test_copyable_ids_are_the_whole_vocabulary_but_the_special_tokens():
  tokenizer = tiny_tokenizer()
  ids = copy_task.copyable_ids(tokenizer)
  special = tokenizer.special.all()
  assert len(ids) == tokenizer.vocab_size - len(special)
  assert not set(ids.tolist()) & special
  assert ids.max() < tokenizer.vocab_size


def _wrapped(config=copy_task.CopyTaskConfig(rows=2, seed=1)):
  tokenizer = tiny_tokenizer()
  inner = iter(Pipeline(tiny_world().split("sft"), tokenizer, SFT))
  return copy_task.WithCopyRows(inner, copy_task.copyable_ids(tokenizer), config,
                                tokenizer.special.pad)


def test_the_wrapper_appends_copy_rows_and_keeps_the_pipelines_rows():
  plain = next(iter(Pipeline(tiny_world().split("sft"), tiny_tokenizer(), SFT)))
  batch = next(_wrapped())
  for key, value in plain.arrays.items():
    assert batch[key].shape == (4,) + value.shape[1:] and batch[key].dtype == value.dtype
    np.testing.assert_array_equal(batch[key][:2], value)
  assert batch.rows[:2] == plain.rows and batch.rows[2:] == ((), ())
  assert not batch["patches"][2:].any() and not batch["grids"][2:].any()
  assert batch["loss_mask"][2:].sum() > 0
  rng = np.random.default_rng([1, 0])  # (seed, batch index) of the first batch.
  expected = copy_task.copy_rows(copy_task.copyable_ids(tiny_tokenizer()), 2, 256, 4, 20, rng,
                                 tiny_tokenizer().special.pad)
  for key, value in expected.items():
    np.testing.assert_array_equal(batch[key][2:], value)


def test_a_restored_wrapper_yields_the_same_next_batches():
  first = _wrapped()
  for _ in range(3):
    next(first)
  state = first.get_state()
  expected = [next(first) for _ in range(2)]
  resumed = _wrapped()
  resumed.set_state(state)
  for want in expected:
    got = next(resumed)
    for key in want.arrays:
      np.testing.assert_array_equal(got[key], want[key])


def test_a_small_model_learns_from_copy_rows_to_copy_spans_it_has_not_seen():
  """The rows are learnable as laid out (the loss mask on the right tokens): a two-layer
  model trained on them copies fresh random spans, from chance (1 / 84) to most tokens."""
  import dataclasses

  import jax

  from models import presets, vlm
  from models.inputs import make_inputs
  from rl import optim, train_step

  tiny = presets.get_preset("tiny", vocab_size=96, image_token_id=92, video_token_id=93,
                            vision_start_token_id=94, vision_end_token_id=95,
                            initializer_range=0.05, vision_initializer_range=0.05)
  config = dataclasses.replace(
      tiny, text=dataclasses.replace(tiny.text, hidden_size=64, num_hidden_layers=2,
                                     intermediate_size=128, mrope_section=(2, 3, 3)),
      vision=dataclasses.replace(tiny.vision, out_hidden_size=64))
  ids = np.arange(4, 88, dtype=np.int32)

  def batch(rng):
    rows = copy_task.copy_rows(ids, 8, 64, 4, 12, rng)
    inputs, _ = make_inputs(rows["tokens"], rows["segment_ids"], config, None, None)
    return train_step.SFTBatch(inputs=inputs, loss_mask=rows["loss_mask"])

  steps = 1500
  params = vlm.init_params(config, jax.random.key(0))
  optimizer = optim.make_optimizer(optim.OptimizerConfig(
      learning_rate=3e-3, total_steps=steps, warmup_ratio=0.05, weight_decay=0.0, frozen=()),
      params)
  step = train_step.make_step(config, train_step.StepConfig(), optimizer,
                              train_step.sft_objective())
  state = train_step.TrainState.create(params, optimizer)
  held_out = batch(np.random.default_rng(99))
  logp = jax.jit(lambda p: train_step.token_logprobs(config, p, held_out.inputs)[0])
  mask = np.asarray(held_out.loss_mask) > 0
  copied = lambda p: float(np.exp(np.asarray(logp(p)))[mask].mean())
  before = copied(state.params)
  rng = np.random.default_rng(0)
  for _ in range(steps):
    state, _ = step(state, None, batch(rng))
  assert before < 0.03 and copied(state.params) > 0.6

"""The grain pipeline: static batches equal to the chat template's encoding, packing that
never splits an example, an assistant-only loss mask, exact resume, shuffling, sharding,
and counted skips."""

import dataclasses
import json
import logging

import numpy as np
import pytest

from data import chat, images, special_tokens
from data.example import Example
from data.pipeline import Pipeline, validate
from data.pipeline_config import PipelineConfig
from data.pipeline_errors import ExampleError
from tests.data.world.tiny import tiny_tokenizer, tiny_world

SFT = PipelineConfig(batch_size=4, max_tokens=320, max_patches=128, max_images=2, seed=3)


def _sft():
  return tiny_world().split("sft")


def _reference(example, mode):
  """Independent encoding of one example with data.chat and data.images."""
  processed = [images.preprocess_image(image) for image in example.images]
  grids = [g for _, g in processed]
  rendered = chat.encode_example(example, tiny_tokenizer(), grids, with_response=mode == "sft")
  patches = (np.concatenate([p for p, _ in processed]) if processed
             else np.zeros((0, 1176), np.float32))
  return rendered.ids, patches, np.asarray(grids, np.int32).reshape(-1, 3)


@pytest.mark.parametrize("config", [SFT, dataclasses.replace(SFT, pack=True),
                                    dataclasses.replace(SFT, mode="prompt", max_tokens=128)])
def test_batches_have_static_shapes_and_rows_equal_the_reference_encoding(config):
  batch = next(iter(Pipeline(_sft(), tiny_tokenizer(), config)))
  b, t, p, m = config.batch_size, config.max_tokens, config.max_patches, config.max_images
  expected = {"tokens": ((b, t), np.int32), "segment_ids": ((b, t), np.int32),
              "loss_mask": ((b, t), np.float32), "patches": ((b, p, 1176), np.float32),
              "grids": ((b, m, 3), np.int32)}
  assert {k: (v.shape, v.dtype) for k, v in batch.arrays.items()} == expected
  pad = tiny_tokenizer().special.pad
  for r, row in enumerate(batch.rows):
    at, patch_at, grid_at = 0, 0, 0
    for segment, info in enumerate(row, start=1):
      ids, patches, grids = _reference(info.example, config.mode)
      np.testing.assert_array_equal(batch["tokens"][r, at:at + len(ids)], ids)
      assert np.all(batch["segment_ids"][r, at:at + len(ids)] == segment)
      np.testing.assert_array_equal(batch["patches"][r, patch_at:patch_at + len(patches)],
                                    patches)
      np.testing.assert_array_equal(batch["grids"][r, grid_at:grid_at + len(grids)], grids)
      at, patch_at, grid_at = at + len(ids), patch_at + len(patches), grid_at + len(grids)
    assert np.all(batch["segment_ids"][r, at:] == 0) and np.all(batch["tokens"][r, at:] == pad)
    assert not batch["patches"][r, patch_at:].any() and not batch["grids"][r, grid_at:].any()
    assert len(row) == 1 or config.pack
  if config.mode == "prompt":
    assert not batch["loss_mask"].any()
    generation_prompt = tiny_tokenizer().encode(f"{special_tokens.IM_START}assistant\n")
    for r in range(b):
      n = int((batch["segment_ids"][r] > 0).sum())
      assert list(batch["tokens"][r, n - len(generation_prompt):n]) == generation_prompt


def test_packing_never_splits_and_the_loss_mask_covers_assistant_tokens_only():
  config = dataclasses.replace(SFT, pack=True, batch_size=2, max_tokens=512)
  tok = tiny_tokenizer()
  searched = 0
  for batch in Pipeline(_sft(), tok, dataclasses.replace(config, num_epochs=1)):
    for r, row in enumerate(batch.rows):
      segments = batch["segment_ids"][r]
      assert sorted(set(segments[segments > 0])) == list(range(1, len(row) + 1))
      for segment, info in enumerate(row, start=1):
        where = segments == segment
        assert np.all(np.diff(np.flatnonzero(where)) == 1)  # one contiguous run
        ids, _, _ = _reference(info.example, "sft")
        np.testing.assert_array_equal(batch["tokens"][r][where], ids)
        mask = batch["loss_mask"][r][where]
        learnt = tok.decode(batch["tokens"][r][where][mask == 1])
        # The policy writes its thinking, tool calls and answer; the tool responses are
        # the environment's.
        assert learnt == _without_tool_responses(info.example.response) + "<|im_end|>"
        searched += "<tool_response>" in info.example.response
  assert searched > 0


def _without_tool_responses(response):
  out, rest = "", response
  while "<tool_response>" in rest:
    head, rest = rest.split("<tool_response>", 1)
    out += head
    rest = rest.split("</tool_response>", 1)[1]
  return out + rest


def _uids(batch):
  return [info.uid for row in batch.rows for info in row]


@pytest.mark.parametrize("config", [SFT, dataclasses.replace(SFT, pack=True, num_threads=2)])
def test_a_restored_iterator_yields_the_same_next_batches(config):
  pipeline = Pipeline(_sft(), tiny_tokenizer(), config)
  it = iter(pipeline)
  for _ in range(5):
    next(it)
  state = json.loads(json.dumps(it.get_state()))
  expected = [next(it) for _ in range(3)]
  restored = iter(pipeline)
  restored.set_state(state)
  for want in expected:
    got = next(restored)
    assert _uids(got) == _uids(want)
    for key in want.arrays:
      np.testing.assert_array_equal(got[key], want[key])
  with pytest.raises(ValueError, match="seed=3 but this pipeline has 4"):
    iter(Pipeline(_sft(), tiny_tokenizer(), dataclasses.replace(config, seed=4))).set_state(state)


def test_shuffle_is_seeded_and_each_epoch_is_a_new_permutation():
  config = dataclasses.replace(SFT, mode="prompt", max_tokens=128, batch_size=1, num_epochs=2)
  source = tiny_world().split("rl")
  order = [_uids(b)[0] for b in Pipeline(source, tiny_tokenizer(), config)]
  again = [_uids(b)[0] for b in Pipeline(source, tiny_tokenizer(), config)]
  other = [_uids(b)[0] for b in Pipeline(source, tiny_tokenizer(),
                                          dataclasses.replace(config, seed=9))]
  n = len(source)
  assert order == again and order != other
  assert sorted(order[:n]) == sorted(order[n:]) == sorted(e.uid for e in source)
  assert order[:n] != order[n:]


def test_shards_are_disjoint_equal_and_cover_the_data():
  source = tiny_world().split("rl")  # 48 examples
  seen = []
  for index in range(5):
    config = dataclasses.replace(SFT, mode="prompt", max_tokens=128, batch_size=1,
                                 num_epochs=1, shard_index=index, shard_count=5)
    seen.append([_uids(b)[0] for b in Pipeline(source, tiny_tokenizer(), config)])
  assert all(len(s) == 48 // 5 for s in seen)
  flat = [u for s in seen for u in s]
  assert len(set(flat)) == len(flat) == 45


def _bad_source():
  good = list(_sft()[:6])
  big = np.zeros((448, 448, 3), np.uint8)
  return good[:2] + [
      Example("no-response", "general", "How many?"),
      Example("too-long", "general", "word " * 400, response="<think>a</think> b"),
      Example("many-images", "general", "q", images=(big[:56, :56],) * 3, response="x"),
      Example("huge-image", "general", "q", images=(big,), response="x"),
  ] + good[2:]


def test_bad_examples_are_counted_and_logged_skips_in_a_running_iterator(caplog):
  config = dataclasses.replace(SFT, shuffle=False, num_epochs=1, batch_size=3)
  it = iter(Pipeline(_bad_source(), tiny_tokenizer(), config))
  with caplog.at_level(logging.WARNING):
    uids = [u for batch in it for u in _uids(batch)]
  assert uids == [e.uid for e in _sft()[:6]]
  assert it.skips == {"malformed": 0, "missing_field": 1, "corrupt_image": 0,
                      "token_budget": 1, "patch_budget": 1, "image_budget": 1}
  assert "'too-long': token_budget" in caplog.text and "'huge-image': patch_budget" in caplog.text


def test_validate_names_the_first_bad_example_or_collects_all():
  with pytest.raises(ExampleError, match=r"'no-response': missing_field: at position 2"):
    validate(_bad_source(), tiny_tokenizer(), SFT)
  errors = validate(_bad_source(), tiny_tokenizer(), SFT, collect=True)
  assert [(e.uid, e.reason) for e in errors] == [
      ("no-response", "missing_field"), ("too-long", "token_budget"),
      ("many-images", "image_budget"), ("huge-image", "patch_budget")]
  assert validate(_sft()[:8], tiny_tokenizer(), SFT) == []


def test_last_partial_batch_is_dropped_or_padded_with_empty_rows():
  source = list(_sft()[:10])
  config = dataclasses.replace(SFT, shuffle=False, num_epochs=1)
  assert [len(b.rows) for b in Pipeline(source, tiny_tokenizer(), config)] == [4, 4]
  padded = list(Pipeline(source, tiny_tokenizer(), dataclasses.replace(config,
                                                                       drop_remainder=False)))
  last = padded[-1]
  assert len(padded) == 3 and [len(r) for r in last.rows] == [1, 1, 0, 0]
  assert not last["segment_ids"][2:].any() and not last["loss_mask"][2:].any()


def test_config_errors_name_the_field():
  with pytest.raises(ValueError, match="pack needs mode 'sft'"):
    PipelineConfig(mode="prompt", pack=True)
  with pytest.raises(ValueError, match=r"shard_index must be in \[0, 2\)"):
    PipelineConfig(shard_index=2, shard_count=2)
  with pytest.raises(ValueError, match="batch_size must be >= 1"):
    PipelineConfig(batch_size=0)
  with pytest.raises(ValueError, match="cannot fill 3 shards"):
    Pipeline(_sft()[:2], tiny_tokenizer(), dataclasses.replace(SFT, shard_count=3))


def test_the_model_input_builder_accepts_packed_batches():
  from models import inputs, presets
  tok = tiny_tokenizer()
  config = presets.get_preset("tiny", vocab_size=tok.vocab_size,
                              image_token_id=tok.special.image_pad,
                              video_token_id=tok.special.video_pad,
                              vision_start_token_id=tok.special.vision_start,
                              vision_end_token_id=tok.special.vision_end)
  batch = next(iter(Pipeline(_sft(), tok, dataclasses.replace(SFT, pack=True,
                                                              max_tokens=512))))
  assert batch["grids"].any()
  model_inputs, _ = inputs.make_inputs(batch["tokens"], batch["segment_ids"], config,
                                       batch["patches"], batch["grids"])
  starts = np.flatnonzero(np.diff(batch["segment_ids"][0], prepend=0) > 0)
  assert np.all(np.asarray(model_inputs.positions)[:, 0, starts] == 0)

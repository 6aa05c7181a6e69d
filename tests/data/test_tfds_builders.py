"""The TFDS builder: built offline in ArrayRecord files, read back equal to the world."""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from data.example import Example
from data.tfds_builders import (TfdsSource, config_name, example_to_record, record_to_example,
                                world_builder)
from data.world import SPLITS, World, example_bytes
from tests.data.world.tiny import TINY_CONFIG

MICRO = dataclasses.replace(TINY_CONFIG, sft_examples=24, rl_examples=8, search_rl_examples=4,
                            eval_examples=8, judge_train_examples=8, judge_eval_examples=0)


def test_built_splits_read_back_equal_to_the_world(tmp_path):
  tfds.disable_progress_bar()
  builder = world_builder(MICRO, tmp_path)
  builder.download_and_prepare()
  files = {p.name.split(".")[0] for p in tmp_path.rglob("*.array_record-*")}
  assert files == {f"safe_ladder_world-{s}" for s in SPLITS if s != "judge_eval"}
  world = World(MICRO)
  for split in SPLITS[:-1]:
    source = TfdsSource(builder, split)
    assert len(source) == len(world.split(split))
    assert [example_bytes(e) for e in source] == [example_bytes(e) for e in world.split(split)]
  # A second builder over the same directory reuses the prepared files.
  again = world_builder(MICRO, tmp_path)
  assert again.is_prepared() and example_bytes(TfdsSource(again, "sft")[3]) == example_bytes(
      world.split("sft")[3])


def test_records_keep_none_fields_and_meta():
  example = Example("u1", "custom", "q?", (np.full((4, 6, 3), 9, np.uint8),), gold=None,
                    response=None, system="s", meta={"a": [1, 2], "b": None})
  record = example_to_record(example)
  back = record_to_example({"uid": record["uid"].encode(), "fields": record["fields"].encode(),
                            "images": np.stack(record["images"])})
  assert example_bytes(back) == example_bytes(example)


def test_config_names_differ_for_different_worlds():
  assert config_name(MICRO) == config_name(dataclasses.replace(MICRO))
  assert config_name(MICRO) != config_name(dataclasses.replace(MICRO, harmful_fraction=0.4))

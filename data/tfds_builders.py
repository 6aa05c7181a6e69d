"""A TFDS builder for the SafeLadder world's splits, in the ArrayRecord file format.

Built offline into a local data_dir (nothing is downloaded), then read back with random
access as a `Sequence[Example]`, e.g. for the grain pipeline:

    builder = world_builder(WorldConfig(seed=0), data_dir="/data/tfds")
    builder.download_and_prepare()
    sft = TfdsSource(builder, "sft")          # sft[i] is an Example

Each record holds the example's uid, its images (PNG) and every other field as one JSON
string (so None, the meta mapping and the label survive exactly).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from data.example import Example
from data.world import SPLITS, World, WorldConfig

_FIELDS = ("label", "question", "gold", "response", "system", "meta")


@dataclasses.dataclass
class WorldBuilderConfig(tfds.core.BuilderConfig):
  """A builder config carrying the `WorldConfig` to generate."""

  world: WorldConfig = dataclasses.field(default_factory=WorldConfig)


def config_name(world: WorldConfig) -> str:
  """A stable name for a world config: its seed and a short hash of all its fields."""
  digest = hashlib.sha256(repr(dataclasses.astuple(world)).encode()).hexdigest()[:10]
  return f"seed{world.seed}_{digest}"


def example_to_record(example: Example) -> dict[str, Any]:
  """The TFDS record of an example."""
  fields = {k: getattr(example, k) for k in _FIELDS}
  fields["meta"] = dict(example.meta)
  return {"uid": example.uid, "images": list(example.images),
          "fields": json.dumps(fields, sort_keys=True)}


def record_to_example(record: dict[str, Any]) -> Example:
  """Inverse of `example_to_record` on a decoded record (numpy values)."""
  fields = json.loads(_text(record["fields"]))
  images = tuple(np.asarray(image, np.uint8) for image in record["images"])
  return Example(_text(record["uid"]), images=images, **fields)


def _text(value: Any) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class SafeLadderWorld(tfds.core.GeneratorBasedBuilder):
  """The SafeLadder world (see `data.world`): one TFDS split per world split."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [WorldBuilderConfig(name=config_name(WorldConfig()), world=WorldConfig())]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description="Synthetic SafeLadder world: general, safety, value and knowledge "
                    "prompts, CoT-SFT traces and judge data with gold labels.",
        features=tfds.features.FeaturesDict({
            "uid": tfds.features.Text(),
            "images": tfds.features.Sequence(
                tfds.features.Image(shape=(None, None, 3), encoding_format="png")),
            "fields": tfds.features.Text(),
        }),
        supervised_keys=None,
        # Records keep the world's index order, so record i is example i of the split.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Everything is generated; nothing is downloaded.
    world = World(self.builder_config.world)
    return {name: self._generate_examples(world, name) for name in SPLITS
            if len(world.split(name))}

  def _generate_examples(self, world: World, split: str):
    for example in world.split(split):
      yield example.uid, example_to_record(example)


def world_builder(world: WorldConfig, data_dir: str | os.PathLike[str]) -> SafeLadderWorld:
  """A builder of `world` writing ArrayRecord files under `data_dir`."""
  config = WorldBuilderConfig(name=config_name(world), world=world)
  return SafeLadderWorld(config=config, data_dir=os.fspath(data_dir),
                         file_format=tfds.core.FileFormat.ARRAY_RECORD)


class TfdsSource(Sequence):
  """Random access to one prepared split as `Example`s."""

  def __init__(self, builder: tfds.core.DatasetBuilder, split: str):
    self._records = builder.as_data_source(split=split)

  def __len__(self) -> int:
    return len(self._records)

  def __getitem__(self, index):
    if isinstance(index, slice):
      return [self[i] for i in range(*index.indices(len(self)))]
    if not -len(self) <= index < len(self):
      raise IndexError(f"TfdsSource: index {index} out of range for {len(self)} records")
    return record_to_example(self._records[index % len(self)])

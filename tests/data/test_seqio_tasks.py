"""seqio tasks over the world: the same token ids as the grain path, and mixtures that
follow the world's family mix."""

import numpy as np
import pytest
import seqio

from data.pipeline_config import PipelineConfig
from data.pipeline_encode import encode
from data.seqio_tasks import register_world_tasks, vocabulary
from data.world import FAMILIES
from tests.data.world.tiny import tiny_tokenizer, tiny_tokenizer_file, tiny_world

WIDE = PipelineConfig(max_tokens=4096, max_patches=4096, max_images=8)


@pytest.fixture(scope="module")
def names():
  return register_world_tasks(tiny_world(), tiny_tokenizer_file(), prefix="test_world")


def _examples(task, split):
  dataset = seqio.get_mixture_or_task(task).get_dataset(sequence_length=None, split=split,
                                                        shuffle=False, num_epochs=1)
  return list(dataset.as_numpy_iterator())


def test_sft_ids_equal_the_grain_path_for_every_example(names):
  by_uid = {e.uid: e for e in tiny_world().split("sft")}
  seen = set()
  for task in names.sft_tasks:
    for record in _examples(task, "sft"):
      example = by_uid[record["uid"].decode()]
      grain_ids = encode(example, tiny_tokenizer(), WIDE).tokens
      # The grain path also renders the template's closing newline after <|im_end|>.
      np.testing.assert_array_equal(np.concatenate([record["inputs"], record["targets"]]),
                                    grain_ids[:-1])
      assert record["label"].decode() == example.label == task.rsplit("_", 1)[-1]
      seen.add(example.uid)
  assert seen == set(by_uid)
  assert any(e.images for e in by_uid.values()) and any(e.system for e in by_uid.values())


def test_eval_inputs_equal_the_grain_prompts_and_targets_are_the_gold(names):
  by_uid = {e.uid: e for e in tiny_world().split("eval")}
  vocab = vocabulary(tiny_tokenizer_file())
  prompt = PipelineConfig(mode="prompt", max_tokens=4096, max_patches=4096, max_images=8)
  for task in names.eval_tasks:
    for record in _examples(task, "eval"):
      example = by_uid[record["uid"].decode()]
      np.testing.assert_array_equal(record["inputs"],
                                    encode(example, tiny_tokenizer(), prompt).tokens)
      assert vocab.decode(record["targets"].tolist()) == (example.gold or "")


def test_mixtures_follow_the_family_mix(names):
  mixture = seqio.get_mixture_or_task(names.sft_mixture)
  mix = dict(tiny_world().config.family_mix)
  assert sorted(t.name for t in mixture.tasks) == sorted(f"test_world_sft_{f}" for f in FAMILIES)
  for task in mixture.tasks:
    assert mixture.get_rate(task) == mix[task.name.rsplit("_", 1)[-1]]
  # A mixture samples its tasks by rate and stops when one runs out.
  records = _examples(names.eval_mixture, "eval")
  prompts = {tuple(r["inputs"]) for t in names.eval_tasks for r in _examples(t, "eval")}
  assert records and set(records[0]) == {"inputs", "targets"}
  assert {tuple(r["inputs"]) for r in records} <= prompts


def test_a_missing_model_file_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.model"):
    vocabulary(tmp_path / "nope.model")

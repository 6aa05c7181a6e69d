"""Users' JSONL: the documented schema round-trips, bad lines fail naming file, line and
field, and the pipeline reads it like any other source."""

import json

import numpy as np
import pytest

from data.jsonl import JsonlSource, read_jsonl, write_jsonl
from data.pipeline import Pipeline
from data.pipeline_config import PipelineConfig
from data.pipeline_errors import ExampleError
from data.world import example_bytes
from tests.data.world.tiny import tiny_tokenizer, tiny_world


def test_world_examples_round_trip_byte_for_byte(tmp_path):
  examples = tiny_world().split("sft")[:12] + tiny_world().split("judge_eval")[:4]
  path = write_jsonl(examples, tmp_path / "data" / "mine.jsonl")
  assert (tmp_path / "data" / "mine_images").is_dir()
  back = read_jsonl(path)
  assert [example_bytes(e) for e in back] == [example_bytes(e) for e in examples]


def test_a_hand_written_file_maps_to_examples(tmp_path):
  from PIL import Image
  (tmp_path / "img").mkdir()
  Image.fromarray(np.full((30, 40, 3), 7, np.uint8)).save(tmp_path / "img" / "a.png")
  lines = [{"label": "general", "question": "How many?", "images": ["img/a.png"], "gold": 3,
            "meta": {"source": "me"}},
           {"uid": "x9", "label": "custom", "question": "Hi", "response": "<think>a</think> b",
            "system": "Be brief."}]
  path = tmp_path / "set.jsonl"
  path.write_text(json.dumps(lines[0]) + "\n\n" + json.dumps(lines[1]) + "\n")
  first, second = read_jsonl(path)
  assert (first.uid, first.gold, first.meta, first.images[0].shape) == (
      "set-1", "3", {"source": "me"}, (30, 40, 3))
  assert np.all(first.images[0] == 7)
  assert (second.uid, second.label, second.response, second.system) == (
      "x9", "custom", "<think>a</think> b", "Be brief.")


@pytest.mark.parametrize("line, reason, message", [
    ("{not json", "malformed", "not valid JSON"),
    ('["a list"]', "malformed", "must hold a JSON object"),
    ('{"label": "general", "question": "q", "answer": "x"}', "malformed",
     r"unknown field\(s\) \['answer'\]"),
    ('{"question": "q"}', "missing_field", "`label` must be a non-empty string"),
    ('{"label": "general", "question": ""}', "missing_field", "`question`"),
    ('{"label": "g", "question": "q", "meta": [1]}', "malformed", "`meta` must be"),
    ('{"label": "g", "question": "q", "images": ["nope.png"]}', "corrupt_image",
     "nope.png.*does not exist"),
    ('{"label": "g", "question": "q", "images": ["bad.png"]}', "corrupt_image", "bad.png"),
])
def test_bad_lines_raise_naming_file_line_and_field(tmp_path, line, reason, message):
  (tmp_path / "bad.png").write_bytes(b"not a png at all")
  path = tmp_path / "u.jsonl"
  path.write_text('{"label": "g", "question": "fine"}\n' + line + "\n")
  source = JsonlSource(path)
  assert source[0].question == "fine"
  with pytest.raises(ExampleError, match=message) as error:
    source[1]
  assert error.value.reason == reason and f"{path}:2" in str(error.value)


def test_the_pipeline_reads_jsonl_like_the_examples_it_came_from(tmp_path):
  examples = tiny_world().split("sft")[:8]
  source = JsonlSource(write_jsonl(examples, tmp_path / "sft.jsonl"))
  config = PipelineConfig(batch_size=4, max_tokens=384, max_patches=128, max_images=2,
                          pack=True, num_epochs=1)
  ours = list(Pipeline(source, tiny_tokenizer(), config))
  reference = list(Pipeline(examples, tiny_tokenizer(), config))
  assert len(ours) == len(reference)
  for a, b in zip(ours, reference):
    for key in a.arrays:
      np.testing.assert_array_equal(a[key], b[key])


def test_a_corrupt_line_is_a_counted_skip_in_the_pipeline(tmp_path):
  examples = tiny_world().split("sft")[:4]
  path = write_jsonl(examples, tmp_path / "s.jsonl")
  path.write_text(path.read_text() + "{oops\n")
  config = PipelineConfig(batch_size=1, max_tokens=384, max_patches=128, max_images=2,
                          num_epochs=1, shuffle=False)
  it = iter(Pipeline(JsonlSource(path), tiny_tokenizer(), config))
  assert len(list(it)) == 4 and it.skips["malformed"] == 1

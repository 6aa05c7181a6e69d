"""A checkpoint that does not fit the model fails with a message naming the tensors."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from models import hf_checkpoint
from tests.models import hf_tiny


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  directory = tmp_path_factory.mktemp("hf")
  hf_tiny.hf_model(seed=0).save_pretrained(directory)
  return directory


def _rewrite(saved, tmp_path, edit):
  tensors = load_file(str(saved / "model.safetensors"))
  edit(tensors)
  save_file(tensors, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
  (tmp_path / "config.json").write_text((saved / "config.json").read_text())
  config = hf_checkpoint.load_config(tmp_path, dtype="float32")
  return lambda: hf_checkpoint.load_params(tmp_path, config)


def test_missing_tensor_is_named(saved, tmp_path):
  load = _rewrite(saved, tmp_path, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
  with pytest.raises(ValueError, match=r"missing tensors \(1\): \['model.layers.1.mlp.up_proj"):
    load()


def test_unexpected_tensor_is_named(saved, tmp_path):
  load = _rewrite(saved, tmp_path,
                  lambda t: t.update({"model.layers.9.extra": np.zeros(3, np.float32)}))
  with pytest.raises(ValueError, match=r"unexpected tensors \(1\): \['model.layers.9.extra'\]"):
    load()


def test_misshaped_tensor_is_named(saved, tmp_path):
  def edit(t):
    t["visual.merger.mlp.2.bias"] = np.zeros(65, np.float32)
  load = _rewrite(saved, tmp_path, edit)
  with pytest.raises(ValueError, match=r"visual.merger.mlp.2.bias: checkpoint \(65,\), "
                                       r"model \(64,\)"):
    load()


def test_missing_directory_and_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    hf_checkpoint.CheckpointFiles(tmp_path / "nope")
  with pytest.raises(FileNotFoundError, match="no \\*.safetensors"):
    hf_checkpoint.CheckpointFiles(tmp_path)
  with pytest.raises(FileNotFoundError, match="config.json does not exist"):
    hf_checkpoint.load_config(tmp_path)


def test_index_naming_a_missing_shard(saved, tmp_path):
  (tmp_path / "model-00001-of-00002.safetensors").write_bytes(
      (saved / "model.safetensors").read_bytes())
  (tmp_path / hf_checkpoint.INDEX_FILE).write_text(json.dumps({"weight_map": {
      "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
  with pytest.raises(FileNotFoundError, match="model-00002-of-00002.safetensors"):
    hf_checkpoint.CheckpointFiles(tmp_path)


def test_flat_legacy_config_reads_like_the_nested_one(saved):
  nested = json.loads((saved / "config.json").read_text())
  text = nested["text_config"]
  legacy = {**{k: v for k, v in nested.items() if k != "text_config"}, **{k: v for k, v in text.items() if k not in ("rope_parameters", "model_type")},
            "rope_theta": text["rope_parameters"]["rope_theta"],
            "rope_scaling": {"type": "mrope",
                             "mrope_section": text["rope_parameters"]["mrope_section"]}}
  legacy["vision_config"] = {**legacy["vision_config"], "in_chans": 3}
  del legacy["vision_config"]["in_channels"]
  assert (hf_checkpoint.hf_config.config_from_hf(legacy)
          == hf_checkpoint.hf_config.config_from_hf(nested))

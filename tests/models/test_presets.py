"""Full-size presets, checked without allocating: parameter counts against transformers
(meta device) and sharding of every large tensor under the default rules."""

import flax.linen as nn
import jax
import numpy as np
import pytest
import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from models import hf_checkpoint, hf_config, presets
from models.vlm import init_params
from safework.infra import sharding

REAL = ["qwen2_5_vl_3b", "qwen2_5_vl_7b", "qwen2_5_vl_32b", "qwen2_5_vl_72b"]


def _reference_count(config) -> int:
  hf = Qwen2_5_VLConfig(**hf_config.config_to_hf(config))
  with torch.device("meta"):  # Shapes only: nothing is allocated.
    model = Qwen2_5_VLForConditionalGeneration(hf)
  return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", REAL)
def test_parameter_count_equals_transformers(name):
  config = presets.get_preset(name)
  abstract = nn.unbox(hf_checkpoint.abstract_params(config))
  assert sum(x.size for x in jax.tree.leaves(abstract)) == _reference_count(config)


def test_known_sizes():
  # The published sizes, to the nearest 0.1B: 8.3B and 73.4B.
  counts = {name: sum(x.size for x in jax.tree.leaves(nn.unbox(
      hf_checkpoint.abstract_params(presets.get_preset(name))))) for name in REAL[1::2]}
  assert round(counts["qwen2_5_vl_7b"] / 1e9, 1) == 8.3
  assert round(counts["qwen2_5_vl_72b"] / 1e9, 1) == 73.4


@pytest.mark.parametrize("name", ["qwen2_5_vl_7b", "qwen2_5_vl_72b"])
def test_every_tensor_over_one_mib_is_sharded(name):
  config = presets.get_preset(name)
  abstract = hf_checkpoint.abstract_params(config)
  mesh = sharding.make_mesh([("data", 1), ("fsdp", 4), ("tensor", 2)])
  shardings = sharding.logical_shardings(abstract, mesh, sharding.DEFAULT_RULES)
  flat = jax.tree_util.tree_flatten_with_path(nn.unbox(abstract))[0]
  flat_shardings = jax.tree.leaves(shardings)
  large = [(jax.tree_util.keystr(path), leaf, s) for (path, leaf), s in zip(flat, flat_shardings)
           if leaf.size * np.dtype(leaf.dtype).itemsize > 2**20]
  all_bytes = sum(leaf.size * 4 for _, leaf in flat)
  assert sum(leaf.size * 4 for _, leaf, _ in large) > 0.99 * all_bytes
  unsharded = [path for path, _, s in large if not sharding.is_sharded(s)]
  assert not unsharded, unsharded
  per_device = sum(leaf.size * 4 / np.prod([mesh.shape[a] for e in s.spec if e
                                              for a in ((e,) if isinstance(e, str) else e)])
                   for _, leaf, s in large)
  total = sum(leaf.size * 4 for _, leaf, _ in large)
  assert per_device <= total / 7.9  # Close to 8-way: nothing large left replicated.


def test_unknown_preset_and_field_fail_by_name():
  with pytest.raises(ValueError, match="unknown model preset 'qwen9'"):
    presets.get_preset("qwen9")
  with pytest.raises(ValueError, match="unknown model field 'widht'"):
    presets.get_preset("tiny", widht=3)


@pytest.mark.parametrize("text_std, vision_std", [(0.02, 0.02), (0.07, 0.05)])
def test_initializer_range_sets_every_random_kernel(text_std, vision_std):
  config = presets.get_preset("tiny", initializer_range=text_std,
                              vision_initializer_range=vision_std)
  params = init_params(config, jax.random.key(0))["params"]
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  kernels = [(jax.tree_util.keystr(p), np.asarray(x)) for p, x in flat
             if jax.tree_util.keystr(p).endswith(("kernel']", "embedding']"))]
  assert len(kernels) > 10
  for path, x in kernels:
    want = vision_std if "visual" in path else text_std
    assert abs(x.mean()) < 0.1 * want, path
    assert x.std() == pytest.approx(want, rel=0.1), path


def test_initializer_range_round_trips_through_config_json():
  config = presets.get_preset("tiny", initializer_range=0.07, vision_initializer_range=0.05)
  hf = hf_config.config_to_hf(config)
  read = hf_config.config_from_hf(hf)
  assert (read.text, read.vision) == (config.text, config.vision)
  reference = Qwen2_5_VLConfig(**hf)
  assert reference.text_config.initializer_range == 0.07
  assert reference.vision_config.initializer_range == 0.05
  # A config.json without the field reads as Qwen's 0.02.
  del hf["text_config"]["initializer_range"], hf["vision_config"]["initializer_range"]
  read = hf_config.config_from_hf(hf)
  assert (read.text.initializer_range, read.vision.initializer_range) == (0.02, 0.02)

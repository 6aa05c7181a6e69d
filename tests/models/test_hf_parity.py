"""Parity with the reference implementation (transformers' Qwen2.5-VL, fp32, eager)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from transformers import Qwen2_5_VLForConditionalGeneration

from models import hf_checkpoint, vlm
from models import inputs as model_inputs
from tests.models import hf_tiny

# name -> (rows, patch budget per row). See hf_tiny.make_batch for the row syntax.
CASES = {
    "text_with_padding": ([[11], [6], [9]], None),
    "one_image": ([[3, (4, 6), 5]], 24),
    "two_image_sizes": ([[2, (4, 4), 3, (6, 8), 2]], 64),
    "image_and_text_rows": ([[2, (4, 6), 3], [12], [1, (4, 4), 1, (8, 4), 2]], 48),
    "several_windows": ([[2, (20, 12), 3], [1, (10, 18), 1]], 240),
}


def _ours(directory, batch, scan):
  config = hf_checkpoint.load_config(directory, dtype="float32", scan_layers=scan)
  params = hf_checkpoint.load_params(directory, config)
  inputs, _ = model_inputs.make_inputs(
      batch.tokens, batch.segment_ids, config,
      batch.patches if len(batch.hf_grids) else None,
      batch.grids if len(batch.hf_grids) else None)
  logits, _ = jax.jit(vlm.Qwen25VL(config).apply)(params, jax.tree.map(jnp.asarray, inputs))
  return np.asarray(logits), params, config


@pytest.fixture(scope="module", params=[(False, True), (True, False)],
                ids=["untied-scan", "tied-unrolled"])
def checkpoint(request, tmp_path_factory):
  tied, scan = request.param
  directory = tmp_path_factory.mktemp("hf")
  model = hf_tiny.hf_model(seed=1, tied=tied)
  model.save_pretrained(directory)
  return model, directory, scan


@pytest.mark.parametrize("case", sorted(CASES))
def test_logits_match_transformers(checkpoint, case):
  model, directory, scan = checkpoint
  rows, budget = CASES[case]
  batch = hf_tiny.make_batch(rows, budget or 4, seed=len(case))
  expected = hf_tiny.hf_logits(model, batch)
  ours, _, _ = _ours(directory, batch, scan)
  valid = batch.segment_ids > 0
  assert np.abs(expected).max() > 1.0  # Weights are large enough for a real comparison.
  np.testing.assert_allclose(ours[valid], expected[valid], atol=1e-4, rtol=0)


def test_export_then_transformers_gives_same_logits_and_round_trips(checkpoint, tmp_path):
  model, directory, scan = checkpoint
  batch = hf_tiny.make_batch(CASES["image_and_text_rows"][0], 48, seed=3)
  ours, params, config = _ours(directory, batch, scan)
  # Small shards force a multi-file checkpoint with an index.
  hf_checkpoint.save_params(params, config, tmp_path / "export", max_shard_bytes=200_000)
  assert (tmp_path / "export" / hf_checkpoint.INDEX_FILE).exists()
  reloaded = Qwen2_5_VLForConditionalGeneration.from_pretrained(
      tmp_path / "export", attn_implementation="eager").eval()
  valid = batch.segment_ids > 0
  np.testing.assert_allclose(hf_tiny.hf_logits(reloaded, batch)[valid], ours[valid], atol=1e-4)
  again = hf_checkpoint.load_params(tmp_path / "export", config)
  assert jax.tree.structure(again) == jax.tree.structure(params)
  for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_scan_and_unrolled_layouts_give_identical_logits(tmp_path):
  model = hf_tiny.hf_model(seed=2)
  model.save_pretrained(tmp_path)
  batch = hf_tiny.make_batch(CASES["two_image_sizes"][0], 64, seed=5)
  scanned, _, _ = _ours(tmp_path, batch, scan=True)
  unrolled, _, _ = _ours(tmp_path, batch, scan=False)
  np.testing.assert_allclose(scanned, unrolled, atol=1e-5, rtol=0)


def test_mrope_positions_equal_the_reference_rope_index():
  model = hf_tiny.hf_model(seed=0)
  batch = hf_tiny.make_batch(CASES["image_and_text_rows"][0], 48, seed=7)
  ids = torch.tensor(batch.tokens, dtype=torch.long)
  expected, deltas = model.model.get_rope_index(
      ids, mm_token_type_ids=(ids == hf_tiny.IMAGE).int(),
      image_grid_thw=torch.tensor(batch.hf_grids),
      attention_mask=torch.tensor(batch.segment_ids > 0).long())
  config = hf_checkpoint.hf_config.config_from_hf(model.config.to_dict())
  ours, next_position = model_inputs.mrope_positions(batch.tokens, batch.segment_ids,
                                                     batch.grids, config)
  valid = np.broadcast_to(batch.segment_ids > 0, ours.shape)
  np.testing.assert_array_equal(ours[valid], expected.numpy()[valid])
  lengths = (batch.segment_ids > 0).sum(1)
  np.testing.assert_array_equal(next_position, deltas.numpy()[:, 0] + lengths)

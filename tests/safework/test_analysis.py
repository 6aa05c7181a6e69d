"""The safety "aha" analysis (METHOD.md §6): the HSIC estimate against numpy, layer states
against transformers, causality, peaks, and the per-token trajectories of `analyse`."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from data.pipeline import Pipeline
from data.pipeline_config import PipelineConfig
from models import hf_checkpoint, presets, vlm
from models import inputs as model_inputs
from rl import sft
from safework import analysis
from tests.data.world.tiny import tiny_model_config, tiny_tokenizer, tiny_world
from tests.models import hf_tiny


def _numpy_hsic_mi(x, y, sigma, epsilon):
  """MI-Peaks' normalised HSIC, written out: kernel over the D entries as samples."""
  d = x.shape[0]
  h = np.eye(d) - np.ones((d, d)) / d

  def r(v):
    k = np.exp(-(v[:, None] - v[None, :]) ** 2 / (2 * sigma**2)) @ h
    return k @ np.linalg.inv(k + epsilon * d * np.eye(d))

  return float(np.sum(r(x) * r(y).T))


@pytest.mark.parametrize("sigma", [0.5, 50.0])
def test_hsic_mi_equals_the_numpy_estimate_and_ranks_dependence(sigma):
  rng = np.random.default_rng(0)
  x = rng.normal(size=32) * 3 * sigma
  independent = rng.normal(size=32) * 3 * sigma
  related = x + 0.05 * sigma * rng.normal(size=32)
  for y in (independent, related, x):
    ours = float(analysis.hsic_mi(jnp.asarray(x), jnp.asarray(y), sigma, 1e-5))
    assert ours == pytest.approx(_numpy_hsic_mi(x, y, sigma, 1e-5), rel=1e-3, abs=1e-3)
  mi = lambda y: float(analysis.hsic_mi(jnp.asarray(x), jnp.asarray(y), sigma, 1e-5))
  assert mi(x) > mi(related) > mi(independent)
  assert mi(related) == pytest.approx(float(analysis.hsic_mi(related, x, sigma, 1e-5)),
                                      rel=1e-4)  # trace(R_x R_y) is symmetric.
  np.testing.assert_allclose(
      np.asarray(analysis.mi_trajectory(jnp.stack([jnp.asarray(independent), jnp.asarray(x)]),
                                        jnp.asarray(x), sigma)),
      [mi(independent), mi(x)], rtol=1e-2)  # float32 solves (as MI-Peaks), jitted or not.


@pytest.mark.parametrize("scan", [True, False], ids=["scan", "unrolled"])
def test_layer_states_are_transformers_hidden_states(tmp_path, scan):
  model = hf_tiny.hf_model(seed=3)
  model.save_pretrained(tmp_path)
  config = hf_checkpoint.load_config(tmp_path, dtype="float32", scan_layers=scan)
  params = hf_checkpoint.load_params(tmp_path, config)
  batch = hf_tiny.make_batch([[3, (4, 6), 5], [9]], 24, seed=1)
  inputs, _ = model_inputs.make_inputs(batch.tokens, batch.segment_ids, config,
                                       batch.patches, batch.grids)
  inputs = jax.tree.map(jnp.asarray, inputs)
  ids = torch.tensor(batch.tokens, dtype=torch.long)
  with torch.no_grad():
    reference = model(input_ids=ids, attention_mask=torch.tensor(batch.segment_ids > 0).long(),
                      pixel_values=torch.tensor(batch.hf_patches),
                      image_grid_thw=torch.tensor(batch.hf_grids),
                      mm_token_type_ids=(ids == hf_tiny.IMAGE).int(),
                      output_hidden_states=True).hidden_states
  valid = batch.segment_ids > 0
  last = config.text.num_hidden_layers - 1
  for layer in range(last):  # HF's hidden_states[l + 1] is layer l's output (not normed).
    ours = np.asarray(analysis.layer_states(config, params, inputs, layer))
    np.testing.assert_allclose(ours[valid], reference[layer + 1].numpy()[valid], atol=1e-4)
  # The last layer's output is taken before the final norm, which HF's last entry has.
  final, _ = vlm.Qwen25VL(config).apply(params, inputs, method=vlm.Qwen25VL.hidden_states)
  np.testing.assert_allclose(np.asarray(final)[valid], reference[-1].numpy()[valid], atol=1e-4)
  assert not np.allclose(np.asarray(analysis.layer_states(config, params, inputs, last)),
                         np.asarray(final))
  with pytest.raises(ValueError, match=r"layer must be in \[0, 2\)"):
    analysis.layer_states(config, params, inputs, 2)


def test_a_token_state_is_the_same_whatever_follows_it():
  """With a causal model the state at token t, teacher-forced, is the state the sampler
  had when it fed token t (the last position of the sequence so far)."""
  config = presets.get_preset("tiny", vocab_size=64, image_token_id=60, video_token_id=61,
                              vision_start_token_id=62, vision_end_token_id=63)
  params = vlm.init_params(config, jax.random.key(0))
  tokens = np.random.default_rng(0).integers(1, 59, size=(1, 12)).astype(np.int32)
  full, _ = model_inputs.make_inputs(tokens, np.ones_like(tokens), config)
  states = np.asarray(analysis.layer_states(config, params, full, 1))
  for t in (3, 7):
    prefix, _ = model_inputs.make_inputs(tokens[:, :t + 1], np.ones_like(tokens[:, :t + 1]),
                                         config)
    np.testing.assert_allclose(np.asarray(analysis.layer_states(config, params, prefix, 1))[0, -1],
                               states[0, t], atol=1e-5)


def test_peaks_are_the_values_far_above_the_mean():
  mi = np.array([0.1, 0.12, 0.09, 1.5, 0.11, 0.1, 0.13, 0.08, 0.1, 0.12])
  np.testing.assert_array_equal(analysis.find_peaks(mi, 2.0), [3])
  assert analysis.find_peaks(np.full(6, 0.3), 2.0).size == 0
  assert analysis.find_peaks(mi, 10.0).size == 0


def test_analyse_scores_every_response_token_against_the_reference():
  tokenizer = tiny_tokenizer()
  config = tiny_model_config(tokenizer)
  params = vlm.init_params(config, jax.random.key(0))
  examples, references = analysis.world_harmful_prompts(tiny_world(), "eval", 3)
  assert len(examples) == 3 and all(e.meta["harmful"] for e in examples)
  assert all("<think>" in r and "</think>" in r for r in references)
  responses = ["<think>It is risky.</think> I will not help.", "<think>Fine.</think> Sure.",
               "<think>No.</think> Please be safe."]
  cfg = analysis.AnalysisConfig(layer=1, sigma=50.0, peak_z=1.0)
  records = analysis.analyse(config, params, tokenizer, examples, responses, references, cfg)
  assert [r.uid for r in records] == [e.uid for e in examples]
  states = jax.jit(lambda p, i: analysis.layer_states(config, p, i, 1))
  for record, example, response, reference in zip(records, examples, responses, references):
    # The response's pieces, then the end of turn that the template closes it with.
    pieces = [tokenizer.id_to_token(i) for i in tokenizer.encode(response)]
    assert list(record.pieces[:len(pieces)]) == pieces
    assert record.pieces[len(pieces)] == tokenizer.id_to_token(tokenizer.special.im_end)
    ref_ids = np.asarray([tokenizer.encode(reference)], np.int32)
    ref_inputs, _ = model_inputs.make_inputs(ref_ids, np.ones_like(ref_ids), config)
    ref_state = np.asarray(states(params, ref_inputs))[0, -1]
    # Every response token's MI, from its state in the whole rendered conversation.
    batch = next(iter(Pipeline([dataclasses.replace(example, response=response)], tokenizer,
                               PipelineConfig(mode="sft", batch_size=1, max_tokens=512,
                                              max_patches=256, shuffle=False))))
    step = sft.sft_batch(batch, config)
    positions = np.flatnonzero(step.loss_mask[0] > 0)
    token_states = np.asarray(states(params, step.inputs))[0, positions]
    expected = [float(analysis.hsic_mi(jnp.asarray(v), jnp.asarray(ref_state)))
                for v in token_states]
    np.testing.assert_allclose(record.mi, expected, rtol=1e-4, atol=1e-6)
    assert len(set(np.round(record.mi, 4))) > 1  # The states differ, so do their MI.
    np.testing.assert_array_equal(record.peaks, analysis.find_peaks(record.mi, 1.0))
  counts = analysis.peak_token_counts(records)
  assert sum(counts.values()) == sum(len(r.peaks) for r in records)
  # An answer over the token budget is skipped, the others are kept as they were.
  overlong = ["<think>" + "It is risky. " * 200 + "</think> No."] + responses[1:]
  kept = analysis.analyse(config, params, tokenizer, examples, overlong, references, cfg)
  assert [r.uid for r in kept] == [e.uid for e in examples[1:]]
  np.testing.assert_array_equal(kept[0].mi, records[1].mi)
  with pytest.raises(ValueError, match="pair up"):
    analysis.analyse(config, params, tokenizer, examples, responses[:2], references, cfg)


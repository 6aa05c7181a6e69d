"""Tiny random Qwen2.5-VL reference models (transformers, fp32, eager) and batches for
parity tests. Nothing is downloaded: the models are built from configs."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

VOCAB = 160
IMAGE, VIDEO, VSTART, VEND = 150, 151, 152, 153
MERGE = 2


def hf_config(tied: bool = False, vision_depth: int = 3, fullatt=(1,)) -> Qwen2_5_VLConfig:
  config = Qwen2_5_VLConfig(
      text_config=dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       rms_norm_eps=1e-6, bos_token_id=None, eos_token_id=None,
                       rope_parameters=dict(rope_type="default", rope_theta=10000.0,
                                            mrope_section=[2, 3, 3])),
      vision_config=dict(depth=vision_depth, hidden_size=32, intermediate_size=48, num_heads=2,
                         out_hidden_size=64, fullatt_block_indexes=list(fullatt),
                         window_size=112),
      image_token_id=IMAGE, video_token_id=VIDEO, vision_start_token_id=VSTART,
      vision_end_token_id=VEND, tie_word_embeddings=tied)
  config._attn_implementation = "eager"
  config.vision_config._attn_implementation = "eager"
  config.text_config._attn_implementation = "eager"
  return config


def hf_model(seed: int = 0, **config_kwargs) -> Qwen2_5_VLForConditionalGeneration:
  """A model whose weights are large enough that attention is sharp (a masking bug
  shows in the logits), norms around 1."""
  torch.manual_seed(seed)
  model = Qwen2_5_VLForConditionalGeneration(hf_config(**config_kwargs)).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      base = 1.0 if ("norm" in name or "ln_q" in name) else 0.0
      p.copy_(base + 0.15 * torch.randn_like(p))
  return model


@dataclasses.dataclass
class Batch:
  """One batch in both forms: ours (per-row patch budgets) and the reference's."""

  tokens: np.ndarray  # int32 [B, T], right-padded with 0
  segment_ids: np.ndarray  # int32 [B, T]
  patches: np.ndarray  # float32 [B, P, 1176], per-row images in order
  grids: np.ndarray  # int32 [B, I, 3]
  hf_patches: np.ndarray  # float32 [total patches, 1176]
  hf_grids: np.ndarray  # int64 [images, 3]


def make_batch(rows, patch_budget: int, seed: int = 0, max_images: int = 2) -> Batch:
  """Builds a batch from row specs: a list of items, each an int count of random text
  tokens or a tuple (h, w) of an image's patch grid (merged h/2 x w/2 pad tokens,
  wrapped in vision start/end like the chat template)."""
  rng = np.random.default_rng(seed)
  seqs, row_images = [], []
  for spec in rows:
    seq, images = [], []
    for item in spec:
      if isinstance(item, int):
        seq += list(rng.integers(1, 140, size=item))
      else:
        h, w = item
        seq += [VSTART] + [IMAGE] * (h * w // MERGE**2) + [VEND]
        images.append((1, h, w))
    seqs.append(seq)
    row_images.append(images)
  b, t = len(rows), max(len(s) for s in seqs)
  tokens = np.zeros((b, t), np.int32)
  segment_ids = np.zeros((b, t), np.int32)
  patches = np.zeros((b, patch_budget, 1176), np.float32)
  grids = np.zeros((b, max_images, 3), np.int32)
  hf_patches, hf_grids = [], []
  for r, (seq, images) in enumerate(zip(seqs, row_images)):
    tokens[r, :len(seq)] = seq
    segment_ids[r, :len(seq)] = 1
    offset = 0
    for i, grid in enumerate(images):
      n = int(np.prod(grid))
      values = rng.normal(size=(n, 1176)).astype(np.float32)
      patches[r, offset:offset + n] = values
      grids[r, i] = grid
      hf_patches.append(values)
      hf_grids.append(grid)
      offset += n
  return Batch(tokens, segment_ids, patches, grids,
               np.concatenate(hf_patches) if hf_patches else np.zeros((0, 1176), np.float32),
               np.array(hf_grids, np.int64).reshape(-1, 3))


def hf_logits(model, batch: Batch) -> np.ndarray:
  ids = torch.tensor(batch.tokens, dtype=torch.long)
  kwargs = dict(input_ids=ids, attention_mask=torch.tensor(batch.segment_ids > 0).long())
  if len(batch.hf_grids):
    kwargs.update(pixel_values=torch.tensor(batch.hf_patches),
                  image_grid_thw=torch.tensor(batch.hf_grids),
                  mm_token_type_ids=(ids == IMAGE).int())
  with torch.no_grad():
    return model(**kwargs).logits.float().numpy()

"""The tokenising transform: one `Example` -> token ids, loss mask, image patches, grids.

Images go through `data.images.preprocess_image`; text through the Qwen2.5-VL chat
template of `data.chat`. SFT examples get the assistant loss mask, except over tool
responses (the environment writes those); prompts end with the generation prompt.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from data import chat
from data import images as images_lib
from data.example import LABELS, Example
from data.pipeline_config import PipelineConfig
from data.pipeline_errors import ExampleError
from data.tokenizer import SpecialIds, Tokenizer

PATCH_DIM = images_lib.ImageSettings().patch_dim  # 1176


def label_id(label: str) -> int:
  """Index of `label` in `data.example.LABELS`, -1 for any other label."""
  return LABELS.index(label) if label in LABELS else -1


@dataclasses.dataclass(frozen=True)
class RowInfo:
  """Host-side metadata of one example in a batch row."""

  uid: str
  label: str
  label_id: int
  gold: str | None
  meta: Mapping[str, Any]
  example: Example


@dataclasses.dataclass(frozen=True)
class Encoded:
  """One encoded example.

  Attributes:
    tokens: int32 [L].
    loss_mask: float32 [L]; 1 on assistant tokens the policy writes.
    patches: float32 [N, 1176], the images' patches in order.
    grids: int32 [I, 3], each image's (t, h, w) patch grid.
    info: its metadata.
  """

  tokens: np.ndarray
  loss_mask: np.ndarray
  patches: np.ndarray
  grids: np.ndarray
  info: RowInfo


def mask_tool_responses(tokens: np.ndarray, loss_mask: np.ndarray,
                        special: SpecialIds) -> np.ndarray:
  """`loss_mask` with 0 from each `<tool_response>` to its `</tool_response>` (inclusive)."""
  opened = np.cumsum(tokens == special.tool_response_open)
  closed_before = np.concatenate([[0], np.cumsum(tokens == special.tool_response_close)[:-1]])
  return np.where(opened > closed_before, 0, loss_mask)


def encode(example: Example, tokenizer: Tokenizer, config: PipelineConfig) -> Encoded:
  """Encodes one example under `config`'s mode and budgets.

  Raises:
    ExampleError: sft mode without a response (missing_field), an image that cannot be
      preprocessed (corrupt_image), or more tokens, patches or images than a row holds.
  """
  uid = example.uid
  if config.mode == "sft" and not example.response:
    raise ExampleError(uid, "missing_field", "sft mode needs a `response`")
  if len(example.images) > config.max_images:
    raise ExampleError(uid, "image_budget", f"{len(example.images)} images > max_images "
                       f"{config.max_images}")
  patches, grids = [], []
  for k, image in enumerate(example.images):
    try:
      p, grid = images_lib.preprocess_image(image, config.min_pixels, config.max_pixels)
    except ValueError as e:
      raise ExampleError(uid, "corrupt_image", f"image {k}: {e}") from None
    patches.append(p)
    grids.append(grid)
  n_patches = sum(len(p) for p in patches)
  if n_patches > config.max_patches:
    raise ExampleError(uid, "patch_budget", f"{n_patches} image patches > max_patches "
                       f"{config.max_patches}")
  rendered = chat.encode_example(example, tokenizer, grids, with_response=config.mode == "sft")
  tokens = rendered.ids.astype(np.int32)
  if len(tokens) > config.max_tokens:
    raise ExampleError(uid, "token_budget", f"{len(tokens)} tokens > max_tokens "
                       f"{config.max_tokens}")
  loss_mask = mask_tool_responses(tokens, rendered.loss_mask, tokenizer.special)
  info = RowInfo(uid, example.label, label_id(example.label), example.gold, example.meta,
                 example)
  return Encoded(
      tokens, loss_mask.astype(np.float32),
      np.concatenate(patches).astype(np.float32) if patches
      else np.zeros((0, PATCH_DIM), np.float32),
      np.asarray(grids, np.int32).reshape(-1, 3), info)

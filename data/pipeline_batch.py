"""Rows to static batches: first-fit packing and padding.

Batch arrays (B batch, T tokens, P patches, M images per row):
  tokens       int32   [B, T]        pad id after the row's content;
  segment_ids  int32   [B, T]        1, 2, 3, ... per example in the row, 0 on padding;
  loss_mask    float32 [B, T]        1 on assistant tokens to learn (sft), else 0;
  patches      float32 [B, P, 1176]  the row's images' patches concatenated in order,
                                     zero-padded;
  grids        int32   [B, M, 3]     the row's image grids (t, h, w) in order, zero rows
                                     for none.
An example is never split across rows; its images stay with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from data.pipeline_config import PipelineConfig
from data.pipeline_encode import PATCH_DIM, Encoded, RowInfo


@dataclasses.dataclass(frozen=True)
class Batch:
  """Static-shape arrays (see the module docstring) and, per row, the metadata of the
  examples in it in segment order (empty for a padding row)."""

  arrays: Mapping[str, np.ndarray]
  rows: tuple[tuple[RowInfo, ...], ...]

  def __getitem__(self, key: str) -> np.ndarray:
    return self.arrays[key]


class RowPacker:
  """Fills `batch_size` rows: one example per row, or first fit when `config.pack`."""

  def __init__(self, config: PipelineConfig):
    self.config = config
    self.rows: list[list[Encoded]] = [[] for _ in range(config.batch_size)]
    self._used = [[0, 0, 0] for _ in range(config.batch_size)]  # tokens, patches, images

  def __len__(self) -> int:
    """Examples placed so far."""
    return sum(len(r) for r in self.rows)

  @property
  def full(self) -> bool:
    """No row is empty (unpacked: no room left at all)."""
    return all(self.rows)

  def try_add(self, item: Encoded) -> bool:
    """Places `item` in the first row with room; False when none has."""
    need = (len(item.tokens), len(item.patches), len(item.grids))
    limit = (self.config.max_tokens, self.config.max_patches, self.config.max_images)
    for r, row in enumerate(self.rows):
      if row and not self.config.pack:
        continue
      used = self._used[r]
      if all(u + n <= m for u, n, m in zip(used, need, limit)):
        row.append(item)
        self._used[r] = [u + n for u, n in zip(used, need)]
        return True
    return False

  def batch(self, pad_id: int) -> Batch:
    """The static-shape arrays of the rows placed so far."""
    c = self.config
    b, t, p, m = c.batch_size, c.max_tokens, c.max_patches, c.max_images
    tokens = np.full((b, t), pad_id, np.int32)
    segment_ids = np.zeros((b, t), np.int32)
    loss_mask = np.zeros((b, t), np.float32)
    patches = np.zeros((b, p, PATCH_DIM), np.float32)
    grids = np.zeros((b, m, 3), np.int32)
    for r, row in enumerate(self.rows):
      at = [0, 0, 0]
      for segment, item in enumerate(row, start=1):
        n, k, g = len(item.tokens), len(item.patches), len(item.grids)
        tokens[r, at[0]:at[0] + n] = item.tokens
        segment_ids[r, at[0]:at[0] + n] = segment
        loss_mask[r, at[0]:at[0] + n] = item.loss_mask
        patches[r, at[1]:at[1] + k] = item.patches
        grids[r, at[2]:at[2] + g] = item.grids
        at = [at[0] + n, at[1] + k, at[2] + g]
    arrays = {"tokens": tokens, "segment_ids": segment_ids, "loss_mask": loss_mask,
              "patches": patches, "grids": grids}
    return Batch(arrays, tuple(tuple(item.info for item in row) for row in self.rows))

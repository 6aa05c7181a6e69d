"""What the model consumes, and the host-side (numpy) code that builds it.

Static shapes everywhere: a batch has B rows of T tokens and a budget of P patch slots
per row. Images of any sizes are packed into their row's budget in window order, with
window and frame ids that reproduce the reference's attention partition exactly, and
the 3D M-RoPE position ids are computed as Qwen2.5-VL's `get_rope_index` does.

Axis letters: B batch, T tokens, P patch slots, M merged slots (P / 4), C patch values,
I images per row.
"""

from __future__ import annotations

import flax.struct
import jax
import numpy as np

from models.config import ModelConfig, VisionConfig


@flax.struct.dataclass
class VisionInputs:
  patches: jax.Array  # float [B, P, C], window order.
  coords: jax.Array  # int32 [B, P, 2], (h, w) patch coordinates, window order.
  window_ids: jax.Array  # int32 [B, P], -1 on padding slots.
  frame_ids: jax.Array  # int32 [B, P], -1 on padding slots.
  unpermute: jax.Array  # int32 [B, M], window-order merged slot of each natural slot.


@flax.struct.dataclass
class ModelInputs:
  tokens: jax.Array  # int32 [B, T], image placeholders expanded to pad tokens.
  positions: jax.Array  # int32 [3, B, T], M-RoPE (t, h, w) position ids.
  segment_ids: jax.Array  # int32 [B, T], 0 = padding; packed sequences 1, 2, ...
  vision: VisionInputs | None = None


def merged_tokens(grid_thw: tuple[int, int, int], merge: int) -> int:
  t, h, w = grid_thw
  return t * h * w // merge**2


def _image_window_order(grid_thw, cfg: VisionConfig):
  """The reference's window index for one image, over merged units.

  Returns:
    order: int [units], natural unit index at each window-order position.
    window_of: int [units], the image-local window number of each window-order position.
  """
  t, h, w = grid_thw
  merge, side = cfg.spatial_merge_size, cfg.window_merged
  gh, gw = h // merge, w // merge
  units = np.arange(t * gh * gw).reshape(t, gh, gw)
  # Pad to whole windows (the reference pads a full extra window when the side divides
  # exactly; those windows are empty and drop out, so padding to the next multiple is
  # the same partition).
  ph, pw = -gh % side, -gw % side
  padded = np.pad(units, ((0, 0), (0, ph), (0, pw)), constant_values=-1)
  nh, nw = (gh + ph) // side, (gw + pw) // side
  windows = padded.reshape(t, nh, side, nw, side).transpose(0, 1, 3, 2, 4).reshape(
      t * nh * nw, side * side)
  window_of = np.broadcast_to(np.arange(t * nh * nw)[:, None], windows.shape)
  keep = windows >= 0
  return windows[keep], window_of[keep]


def _image_patch_positions(grid_thw, merge: int) -> np.ndarray:
  """(h, w) of each patch in the processor's merge-block-major order, [t*h*w, 2]."""
  t, h, w = grid_thw
  hh, ww = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  block = (h // merge, merge, w // merge, merge)
  hh = hh.reshape(block).transpose(0, 2, 1, 3).reshape(-1)
  ww = ww.reshape(block).transpose(0, 2, 1, 3).reshape(-1)
  return np.tile(np.stack([hh, ww], axis=-1), (t, 1))


def pack_vision(patches_bpc: np.ndarray, grids_bi3: np.ndarray, cfg: VisionConfig
                ) -> VisionInputs:
  """Reorders each row's images into window order and labels windows and frames.

  Args:
    patches_bpc: float [B, P, C]: each row's images' patches concatenated in the image
      processor's order, zero after the last; P a multiple of the merge unit (4).
    grids_bi3: int [B, I, 3]: each row's image grids (t, h, w) in order; zero rows after.
    cfg: the vision settings.

  Returns:
    VisionInputs of numpy arrays.
  """
  b, p, c = patches_bpc.shape
  unit = cfg.merge_unit
  if p % unit:
    raise ValueError(f"the patch budget {p} must be a multiple of the merge unit {unit}")
  if c != cfg.patch_dim:
    raise ValueError(f"patches have {c} values, the vision config expects {cfg.patch_dim}")
  patches = np.zeros_like(patches_bpc)
  coords = np.zeros((b, p, 2), np.int32)
  window_ids = np.full((b, p), -1, np.int32)
  frame_ids = np.full((b, p), -1, np.int32)
  unpermute = np.zeros((b, p // unit), np.int32)
  for row in range(b):
    order_parts, window_parts, frame_parts, pos_parts = [], [], [], []
    offset_units = windows_before = frames_before = 0
    for grid in grids_bi3[row]:
      grid = tuple(int(x) for x in grid)
      if grid[0] == 0:
        continue
      t, h, w = grid
      if h % cfg.spatial_merge_size or w % cfg.spatial_merge_size:
        raise ValueError(f"row {row}: image grid {grid} is not a multiple of the merge size")
      order, window_of = _image_window_order(grid, cfg)
      units_per_frame = (h * w) // unit
      order_parts.append(order + offset_units)
      window_parts.append(window_of + windows_before)
      frame_parts.append(order // units_per_frame + frames_before)
      pos_parts.append(_image_patch_positions(grid, cfg.spatial_merge_size))
      offset_units += len(order)
      windows_before += int(window_of.max()) + 1
      frames_before += t
    if offset_units * unit > p:
      raise ValueError(f"row {row}: images need {offset_units * unit} patches, the budget "
                       f"is {p}")
    used = offset_units
    order = np.concatenate(order_parts) if order_parts else np.zeros(0, np.int64)
    full_order = np.concatenate([order, np.arange(used, p // unit)])
    unit_patches = patches_bpc[row].reshape(p // unit, unit, c)
    patches[row] = unit_patches[full_order].reshape(p, c)
    if used:
      natural_pos = np.concatenate(pos_parts).reshape(used, unit, 2)
      coords[row, :used * unit] = natural_pos[order].reshape(-1, 2)
      window_ids[row, :used * unit] = np.repeat(np.concatenate(window_parts), unit)
      frame_ids[row, :used * unit] = np.repeat(np.concatenate(frame_parts), unit)
    unpermute[row] = np.argsort(full_order)
  return VisionInputs(patches, coords, window_ids, frame_ids, unpermute)


def mrope_positions(tokens_bt: np.ndarray, segment_ids_bt: np.ndarray, grids_bi3: np.ndarray,
                    config: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
  """3D position ids as the reference's `get_rope_index`, per packed segment.

  Text tokens advance all three axes together; an image's pad tokens take
  (start, start + row, start + col) over its merged grid, and the text after it resumes
  at start + max(merged h, merged w). Positions restart at 0 in every segment; padding
  (segment 0) gets 0.

  Returns:
    positions: int32 [3, B, T].
    next_position: int32 [B], the position of a token appended after each row's last
      segment (what decoding continues from).
  """
  b, t = tokens_bt.shape
  merge = config.vision.spatial_merge_size
  positions = np.zeros((3, b, t), np.int32)
  next_position = np.zeros((b,), np.int32)
  for row in range(b):
    grids = [tuple(int(x) for x in g) for g in grids_bi3[row] if g[0] > 0] \
        if grids_bi3 is not None else []
    grid_iter = iter(grids)
    images_used = 0
    segs = segment_ids_bt[row]
    for seg in np.unique(segs[segs != 0]):
      idx = np.nonzero(segs == seg)[0]
      toks = tokens_bt[row, idx]
      out = np.zeros((3, len(idx)), np.int32)
      cursor = i = 0
      while i < len(idx):
        if toks[i] != config.image_token_id:
          out[:, i] = cursor
          cursor += 1
          i += 1
          continue
        grid = next(grid_iter, None)
        if grid is None:
          raise ValueError(f"row {row}: more image-pad tokens than image grids")
        images_used += 1
        gt, gh, gw = grid[0], grid[1] // merge, grid[2] // merge
        n = gt * gh * gw
        if i + n > len(idx) or np.any(toks[i:i + n] != config.image_token_id):
          raise ValueError(f"row {row}: image {images_used} of grid {grid} needs {n} "
                           "consecutive image-pad tokens")
        tt, hh, ww = np.meshgrid(np.arange(gt), np.arange(gh), np.arange(gw), indexing="ij")
        out[:, i:i + n] = np.stack([tt.ravel(), hh.ravel(), ww.ravel()]) + cursor
        cursor += max(gh, gw)
        i += n
      positions[:, row, idx] = out
      next_position[row] = cursor
    if images_used != len(grids):
      raise ValueError(f"row {row}: {len(grids)} image grids but {images_used} images in the "
                       "tokens")
  return positions, next_position


def make_inputs(tokens_bt: np.ndarray, segment_ids_bt: np.ndarray, config: ModelConfig,
                patches_bpc: np.ndarray | None = None, grids_bi3: np.ndarray | None = None
                ) -> tuple[ModelInputs, np.ndarray]:
  """ModelInputs (numpy) and the next decode position of each row, from a data batch."""
  tokens_bt = np.asarray(tokens_bt, np.int32)
  segment_ids_bt = np.asarray(segment_ids_bt, np.int32)
  has_images = grids_bi3 is not None and np.any(np.asarray(grids_bi3)[..., 0] > 0)
  positions, next_position = mrope_positions(tokens_bt, segment_ids_bt,
                                             grids_bi3 if has_images else None, config)
  vision = None
  if patches_bpc is not None and grids_bi3 is not None:
    vision = pack_vision(np.asarray(patches_bpc, np.float32), np.asarray(grids_bi3), config.vision)
  return ModelInputs(tokens_bt, positions, segment_ids_bt, vision), next_position

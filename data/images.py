"""Qwen2.5-VL image preprocessing: resize to multiples of 28 within pixel bounds, rescale,
normalise, and cut into the flat patch rows the vision encoder embeds.

It reproduces transformers' Qwen2-VL image processor (the PIL backend, which Qwen2.5-VL
uses unchanged): Pillow's bicubic resample on uint8 pixels, rescaling in float64 then
float32, normalisation in float32, patches in merge-block-major order.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import PIL.Image

# The CLIP (OpenAI) statistics Qwen2-VL normalises with.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_ASPECT_RATIO = 200  # The reference refuses longer strips.


@dataclasses.dataclass(frozen=True)
class ImageSettings:
  """How images become patches.

  Attributes:
    patch_size: the side of one spatial patch, in pixels.
    temporal_patch_size: frames per patch; a still image is repeated to fill them.
    merge_size: the side of the square of patches the merger folds into one LM token.
    min_pixels: the least pixel count after resizing.
    max_pixels: the most pixel count after resizing.
    mean: per-channel (RGB) mean subtracted after rescaling to [0, 1].
    std: per-channel (RGB) standard deviation divided by after that.
  """

  patch_size: int = 14
  temporal_patch_size: int = 2
  merge_size: int = 2
  min_pixels: int = 56 * 56
  max_pixels: int = 28 * 28 * 1280
  mean: tuple[float, float, float] = CLIP_MEAN
  std: tuple[float, float, float] = CLIP_STD

  def __post_init__(self):
    # A positive min_pixels (the reference refuses 0) guarantees at least one block.
    for name in ("patch_size", "temporal_patch_size", "merge_size", "min_pixels", "max_pixels"):
      value = getattr(self, name)
      if not isinstance(value, int) or value <= 0:
        raise ValueError(f"ImageSettings.{name} must be a positive int, got {value!r}")
    if self.min_pixels > self.max_pixels:
      raise ValueError(f"ImageSettings.min_pixels {self.min_pixels} exceeds max_pixels "
                       f"{self.max_pixels}")
    if self.max_pixels < self.factor**2:
      raise ValueError(f"ImageSettings.max_pixels {self.max_pixels} is below one "
                       f"{self.factor}x{self.factor} block")
    for name in ("mean", "std"):
      value = tuple(getattr(self, name))
      if len(value) != 3:
        raise ValueError(f"ImageSettings.{name} needs 3 values (RGB), got {value}")
      object.__setattr__(self, name, tuple(float(v) for v in value))
    if min(self.std) <= 0:
      raise ValueError(f"ImageSettings.std must be positive, got {self.std}")

  @classmethod
  def from_dict(cls, config: Mapping[str, Any]) -> ImageSettings:
    """Builds settings from a config mapping; an unknown key is an error naming it."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - known)
    if unknown:
      raise ValueError(f"ImageSettings: unknown fields {unknown}; known: {sorted(known)}")
    return cls(**config)

  @property
  def factor(self) -> int:
    """Both resized sides are multiples of this (patch × merge, 28 for Qwen2.5-VL)."""
    return self.patch_size * self.merge_size

  @property
  def patch_dim(self) -> int:
    """Values in one patch row: channels × temporal × patch × patch (1176)."""
    return 3 * self.temporal_patch_size * self.patch_size**2


def smart_resize(height: int, width: int, factor: int, min_pixels: int,
                 max_pixels: int) -> tuple[int, int]:
  """The (height, width) Qwen2-VL resizes to: each side rounded to a multiple of `factor`,
  then, if the area leaves [min_pixels, max_pixels], both sides scaled by one factor
  (rounded down when shrinking, up when growing) to come back inside, aspect kept."""
  if min(height, width) <= 0:
    raise ValueError(f"image size {height}x{width} is empty")
  if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
    raise ValueError(f"image size {height}x{width}: aspect ratio above {MAX_ASPECT_RATIO}")
  # Python's round (half to even) is what the reference uses.
  new_h, new_w = factor * round(height / factor), factor * round(width / factor)
  if new_h * new_w > max_pixels:
    shrink = math.sqrt(height * width / max_pixels)
    new_h = max(factor, factor * math.floor(height / shrink / factor))
    new_w = max(factor, factor * math.floor(width / shrink / factor))
  elif new_h * new_w < min_pixels:
    grow = math.sqrt(min_pixels / (height * width))
    new_h = factor * math.ceil(height * grow / factor)
    new_w = factor * math.ceil(width * grow / factor)
  if new_h == 0 or new_w == 0:
    raise ValueError(f"image size {height}x{width} is too small: the resize rules give "
                     f"{new_h}x{new_w}, not one {factor}x{factor} block (min_pixels {min_pixels})")
  return new_h, new_w


def _check_image(image: Any) -> np.ndarray:
  if not isinstance(image, np.ndarray):
    raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"image must be uint8 [height, width, 3], got {image.dtype} {image.shape}")
  if image.shape[0] == 0 or image.shape[1] == 0:
    raise ValueError(f"image has zero size {image.shape}")
  return image


def preprocess_image(
    image: np.ndarray,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    settings: ImageSettings = ImageSettings(),
) -> tuple[np.ndarray, tuple[int, int, int]]:
  """Resizes, normalises and patchifies one RGB image.

  Args:
    image: uint8 [height, width, 3].
    min_pixels: overrides `settings.min_pixels` when given.
    max_pixels: overrides `settings.max_pixels` when given.
    settings: the rest of the preprocessing settings.

  Returns:
    patches: float32 [t*h*w, 3*temporal_patch_size*patch_size**2]; row r is the patch at
      grid position (r // (h*w), then merge-block-major over h, w), values ordered
      (channel, frame, row, column).
    grid_thw: (t, h, w) in patches; t is 1 for a still image, h and w are even.
  """
  if min_pixels is not None or max_pixels is not None:
    settings = dataclasses.replace(
        settings, min_pixels=settings.min_pixels if min_pixels is None else min_pixels,
        max_pixels=settings.max_pixels if max_pixels is None else max_pixels)
  image = _check_image(image)
  height, width = image.shape[:2]
  new_h, new_w = smart_resize(height, width, settings.factor, settings.min_pixels,
                              settings.max_pixels)
  resized = np.asarray(PIL.Image.fromarray(image).resize(
      (new_w, new_h), resample=PIL.Image.Resampling.BICUBIC))
  scaled = (resized.astype(np.float64) * (1 / 255)).astype(np.float32)
  mean = np.asarray(settings.mean, np.float32)
  std = np.asarray(settings.std, np.float32)
  pixels_hwc = (scaled - mean) / std
  return _patchify(pixels_hwc, settings), (1, new_h // settings.patch_size,
                                           new_w // settings.patch_size)


def _patchify(pixels_hwc: np.ndarray, settings: ImageSettings) -> np.ndarray:
  """float32 [H, W, 3] -> float32 [h*w, patch_dim] in the encoder's merge-block-major order."""
  p, m, frames = settings.patch_size, settings.merge_size, settings.temporal_patch_size
  height, width, channels = pixels_hwc.shape
  blocks_h, blocks_w = height // (p * m), width // (p * m)
  # Axes: block row, merge row, pixel row, block col, merge col, pixel col, channel.
  grid = pixels_hwc.reshape(blocks_h, m, p, blocks_w, m, p, channels)
  # Rows go block by block so each merge square is m*m consecutive rows; inside a patch
  # the values run channel, (repeated) frame, pixel row, pixel column.
  grid = grid.transpose(0, 3, 1, 4, 6, 2, 5)[:, :, :, :, :, None]
  grid = np.broadcast_to(grid, (*grid.shape[:5], frames, p, p))
  return np.ascontiguousarray(grid.reshape(blocks_h * blocks_w * m * m, settings.patch_dim))


def decode_image(data: bytes, source: str = "<bytes>") -> np.ndarray:
  """Decodes encoded image bytes (PNG, JPEG, ...) as uint8 [height, width, 3] RGB.

  Greyscale and palette images become RGB; transparency is composited onto white, as
  transformers' `convert_to_rgb` does. Undecodable bytes raise ValueError naming `source`.
  """
  try:
    with PIL.Image.open(io.BytesIO(data)) as img:
      img.load()
      if "A" in img.getbands() or img.info.get("transparency") is not None:
        rgba = img.convert("RGBA")
        white = PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = PIL.Image.alpha_composite(white, rgba).convert("RGB")
      else:
        rgb = img.convert("RGB")
  except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as e:
    raise ValueError(f"image {source} cannot be decoded: {e}") from e
  array = np.asarray(rgb, dtype=np.uint8)
  if array.size == 0:
    raise ValueError(f"image {source} has zero size")
  return array


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
  """Reads an image file as uint8 [height, width, 3] RGB (see `decode_image`); a missing
  file raises FileNotFoundError and an undecodable one ValueError, both naming the path."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"image file {path} does not exist")
  return decode_image(path.read_bytes(), source=f"file {path}")

"""Tests of data/images.py against transformers' Qwen2-VL image processor (PIL backend,
which Qwen2.5-VL's processor uses), plus a hand-built patch-order check and bad input."""

import io

import numpy as np
import PIL.Image
import pytest
from transformers import image_transforms
from transformers.models.qwen2_vl import image_processing_pil_qwen2_vl as reference

from data import images

SIZES = [  # (height, width): squares, portraits, landscapes, odd sizes, strips, tiny images.
    (224, 224), (37, 91), (500, 300), (300, 500), (20, 900), (60, 61), (3, 200), (1, 1),
    (42, 70), (731, 517), (1000, 1400),
]


def _reference(image, min_pixels, max_pixels):
  processor = reference.Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)
  out = processor(images=[image], input_data_format="channels_last", return_tensors="np")
  return out["pixel_values"], tuple(int(v) for v in out["image_grid_thw"][0])


@pytest.mark.parametrize("height,width", SIZES)
@pytest.mark.parametrize("min_pixels,max_pixels", [(56 * 56, 28 * 28 * 64),
                                                   (28 * 28 * 16, 28 * 28 * 1280)])
def test_equals_transformers_qwen2_vl_processor(height, width, min_pixels, max_pixels):
  rng = np.random.default_rng(height * 10007 + width)
  image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
  patches, grid = images.preprocess_image(image, min_pixels, max_pixels)
  want_patches, want_grid = _reference(image, min_pixels, max_pixels)
  assert grid == want_grid
  assert patches.dtype == np.float32
  assert patches.shape == (grid[0] * grid[1] * grid[2], 1176)
  np.testing.assert_allclose(patches, want_patches, rtol=0, atol=1e-6)


def test_smart_resize_equals_reference_over_a_grid_of_sizes():
  for height in range(1, 400, 7):
    for width in range(1, 1200, 13):
      if max(height, width) / min(height, width) > 200:
        continue
      for bounds in [(56 * 56, 28 * 28 * 64), (28 * 28 * 4, 28 * 28 * 16)]:
        assert images.smart_resize(height, width, 28, *bounds) == reference.smart_resize(
            height, width, 28, *bounds), (height, width, bounds)


def test_patch_rows_are_merge_block_major_by_hand():
  # 56x84 is already a multiple of 28 and above min_pixels, so the resize is the identity.
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (56, 84, 3), dtype=np.uint8)
  patches, grid = images.preprocess_image(image)
  assert grid == (1, 4, 6)
  mean, std = np.float32(images.CLIP_MEAN), np.float32(images.CLIP_STD)
  pixels = ((image.astype(np.float64) / 255).astype(np.float32) - mean) / std
  row = 0
  for block_r in range(2):
    for block_c in range(3):
      for merge_r in range(2):
        for merge_c in range(2):
          top, left = 14 * (2 * block_r + merge_r), 14 * (2 * block_c + merge_c)
          patch_chw = pixels[top:top + 14, left:left + 14].transpose(2, 0, 1)
          want = np.stack([patch_chw, patch_chw], axis=1).reshape(-1)  # (channel, frame, y, x)
          np.testing.assert_allclose(patches[row], want, rtol=0, atol=1e-6)
          row += 1


def test_settings_validate_and_name_the_field():
  with pytest.raises(ValueError, match="unknown fields \\['patch'\\]"):
    images.ImageSettings.from_dict({"patch": 14})
  with pytest.raises(ValueError, match="min_pixels 5000 exceeds max_pixels 4000"):
    images.ImageSettings(min_pixels=5000, max_pixels=4000)
  with pytest.raises(ValueError, match="merge_size"):
    images.ImageSettings(merge_size=0)
  with pytest.raises(ValueError, match="std"):
    images.ImageSettings(std=(1.0, 0.0, 1.0))
  settings = images.ImageSettings.from_dict({"min_pixels": 28 * 28, "max_pixels": 28 * 28 * 4})
  assert (settings.factor, settings.patch_dim) == (28, 1176)
  _, grid = images.preprocess_image(np.zeros((400, 400, 3), np.uint8), settings=settings)
  assert grid == (1, 4, 4)


@pytest.mark.parametrize("bad,message", [
    (np.zeros((8, 8, 3), np.float32), "uint8"),
    (np.zeros((8, 8), np.uint8), "uint8 \\[height, width, 3\\]"),
    (np.zeros((8, 8, 4), np.uint8), "uint8 \\[height, width, 3\\]"),
    (np.zeros((0, 8, 3), np.uint8), "zero size"),
    (np.zeros((2, 500, 3), np.uint8), "aspect ratio"),
    ([[0, 0, 0]], "numpy array"),
])
def test_bad_images_give_clear_errors(bad, message):
  with pytest.raises((ValueError, TypeError), match=message):
    images.preprocess_image(bad)


def test_resize_rules_that_reach_no_block_are_an_error():
  with pytest.raises(ValueError, match="too small"):
    images.smart_resize(10, 10, 28, 0, 28 * 28 * 64)


def test_load_image_converts_like_transformers(tmp_path):
  rng = np.random.default_rng(1)
  rgba = PIL.Image.fromarray(rng.integers(0, 256, (9, 13, 4), dtype=np.uint8), "RGBA")
  grey = PIL.Image.fromarray(rng.integers(0, 256, (9, 13), dtype=np.uint8), "L")
  palette = PIL.Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)).quantize(8)
  palette.info["transparency"] = 0
  for name, img in [("rgba.png", rgba), ("grey.png", grey), ("palette.png", palette)]:
    img.save(tmp_path / name)
    got = images.load_image(tmp_path / name)
    with PIL.Image.open(tmp_path / name) as reopened:
      want = image_transforms.convert_to_rgb(reopened, return_numpy=True)
    assert got.dtype == np.uint8 and got.shape == (9, 13, 3)
    np.testing.assert_array_equal(got, want)


def test_decode_image_reads_encoded_bytes():
  rng = np.random.default_rng(2)
  rgb = rng.integers(0, 256, (6, 4, 3), dtype=np.uint8)
  out = io.BytesIO()
  PIL.Image.fromarray(rgb).save(out, format="PNG")
  np.testing.assert_array_equal(images.decode_image(out.getvalue()), rgb)
  with pytest.raises(ValueError, match="column x"):
    images.decode_image(b"junk", source="column x")


def test_load_image_errors_name_the_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="absent.png"):
    images.load_image(tmp_path / "absent.png")
  (tmp_path / "noise.png").write_bytes(b"\x89PNG not really an image")
  with pytest.raises(ValueError, match="noise.png"):
    images.load_image(tmp_path / "noise.png")
  PIL.Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "whole.png")
  (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:60])
  with pytest.raises(ValueError, match="cut.png"):
    images.load_image(tmp_path / "cut.png")

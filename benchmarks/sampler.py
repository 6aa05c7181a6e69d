"""Sampler speed: prefill and decode tokens/s of `rl.sampler` against transformers'
`generate` (PyTorch, CPU) on identical weights, and the prefill saving of forking the
cache G ways over repeating each prompt G times, and the saving of a compacted decode
(`decode(compact=True)`) when rows end at different lengths. Prints one JSON object per
preset.

  python -m benchmarks.sampler                       # tiny and small_100m, the issue's settings
  python -m benchmarks.sampler --presets=tiny --new_tokens=32 --layouts=scan --skip_transformers

Settings (defaults): 8 prompts x G = 8 samples, 64-token prompts with one 112x112 image
(8x8 patches -> 16 image tokens), 128 new tokens, temperature-1 sampling over the whole
vocabulary, no stop token (every row makes all 128 tokens), float32, one CPU device.
transformers runs the exported weights (`models.hf_checkpoint.save_params`) with its
default attention; its prefill is timed as `generate(max_new_tokens=1)` and its decode as
the rest of `generate(max_new_tokens=N)`. Ours are timed after a warm-up call (compilation
is reported separately). Ours runs in both layer layouts of the model config: `scan`
(nn.scan over layers, the presets' default) and `unrolled` (scan_layers=False).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import flax.linen as nn
import jax
import numpy as np

from models import hf_checkpoint, presets, vlm
from models import inputs as model_inputs
from models.config import ModelConfig
from rl import sampler
from rl import sampling_methods

IMAGE_GRID = (1, 8, 8)  # One 112 x 112 px image: 8 x 8 patches, 16 merged tokens.


def make_prompts(config: ModelConfig, prompts: int, length: int, seed: int = 0):
  """`prompts` rows of `length` tokens: text, one image (vision start, pads, end), text.

  Returns:
    (tokens [B, T] int32, patches [B, P, C] float32, grids [B, 1, 3] int32).
  """
  rng = np.random.default_rng(seed)
  merge = config.vision.spatial_merge_size
  image_tokens = IMAGE_GRID[0] * IMAGE_GRID[1] * IMAGE_GRID[2] // merge**2
  text = length - image_tokens - 2
  if text < 2:
    raise ValueError(f"--prompt_tokens={length} leaves no room for text around the image")
  special = min(config.image_token_id, config.video_token_id, config.vision_start_token_id,
                config.vision_end_token_id)
  tokens = np.zeros((prompts, length), np.int32)
  for row in range(prompts):
    words = rng.integers(1, special, size=text)
    tokens[row] = np.concatenate([
        words[:text // 2], [config.vision_start_token_id],
        np.full(image_tokens, config.image_token_id), [config.vision_end_token_id],
        words[text // 2:]])
  patches = rng.normal(size=(prompts, int(np.prod(IMAGE_GRID)), config.vision.patch_dim))
  grids = np.tile(np.asarray(IMAGE_GRID, np.int32), (prompts, 1, 1))
  return tokens, patches.astype(np.float32), grids


def _timed(fn):
  start = time.perf_counter()
  out = jax.block_until_ready(fn())
  return out, time.perf_counter() - start


def bench_ours(config, params, tokens, patches, grids, samples: int, new_tokens: int) -> dict:
  b, t = tokens.shape
  inputs, next_position = model_inputs.make_inputs(tokens, np.ones_like(tokens), config,
                                                   patches, grids)
  method = sampling_methods.Temperature(1.0)

  def prefill(inp, nxt, g, budget=new_tokens):
    return sampler.prefill(params, inp, nxt, config=config, max_new_tokens=new_tokens,
                           rng=jax.random.key(0), num_samples=g,
                           max_new_tokens_b=np.full((b,), budget))

  # Compilation, timed apart: with zero budgets every row is done and the loop exits at once.
  state, compile_prefill = _timed(lambda: prefill(inputs, next_position, samples, 0))
  _, compile_decode = _timed(lambda: sampler.decode(params, state, method=method).tokens_bt)
  state, prefill_s = _timed(lambda: prefill(inputs, next_position, samples))
  state, decode_s = _timed(lambda: sampler.decode(params, state, method=method))
  made = int(np.asarray(state.length_b).sum())
  assert made == b * samples * new_tokens, made  # No early stop: every row is full.
  # The same B*G rows from prompts repeated G times (no fork): what forking saves.
  repeated = jax.tree.map(lambda x: np.repeat(x, samples, axis=0), inputs.replace(positions=None))
  repeated = repeated.replace(positions=np.repeat(inputs.positions, samples, axis=1))
  nxt = np.repeat(next_position, samples)
  jax.block_until_ready(sampler.prefill(params, repeated, nxt, config=config,
                                        max_new_tokens=new_tokens, rng=jax.random.key(0)))
  _, repeat_s = _timed(lambda: sampler.prefill(params, repeated, nxt, config=config,
                                               max_new_tokens=new_tokens, rng=jax.random.key(0)))
  staggered = _staggered_decode(params, config, inputs, next_position, samples, new_tokens,
                                method)
  return dict(compile_prefill_s=compile_prefill, compile_decode_s=compile_decode,
              prefill_s=prefill_s, decode_s=decode_s, **staggered,
              prefill_tokens_per_s=b * samples * t / prefill_s,
              decode_tokens_per_s=made / decode_s,
              total_tokens_per_s=made / (prefill_s + decode_s),
              repeat_prefill_s=repeat_s, fork_prefill_saving=repeat_s / prefill_s)


def _staggered_decode(params, config, inputs, next_position, samples: int, new_tokens: int,
                      method) -> dict:
  """Rows whose budgets spread evenly over 1..new_tokens, as answers end at different
  lengths in an evaluation: decode seconds at full width and compacted
  (`decode(compact=True)`), each after a warm-up call."""
  rows = inputs.tokens.shape[0] * samples
  budgets = 1 + (np.arange(rows) * new_tokens) // rows

  def decoded(compact):
    state = sampler.prefill(params, inputs, next_position, config=config,
                            max_new_tokens=new_tokens, rng=jax.random.key(0),
                            num_samples=samples, max_new_tokens_b=budgets)
    return _timed(lambda: sampler.decode(params, state, method=method, compact=compact))

  out = {}
  for compact in (False, True):
    decoded(compact)
    state, seconds = decoded(compact)
    assert np.array_equal(np.asarray(state.length_b), budgets)
    out["staggered_compact_decode_s" if compact else "staggered_decode_s"] = seconds
  out["compact_speedup"] = out["staggered_decode_s"] / out["staggered_compact_decode_s"]
  return out


def bench_transformers(directory: str, config: ModelConfig, tokens, patches, grids,
                       samples: int, new_tokens: int) -> dict:
  import torch  # pylint: disable=g-import-not-at-top
  from transformers import Qwen2_5_VLForConditionalGeneration  # pylint: disable=g-import-not-at-top

  model = Qwen2_5_VLForConditionalGeneration.from_pretrained(directory).eval()
  b, t = tokens.shape
  ids = torch.tensor(tokens, dtype=torch.long)
  kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids),
                pixel_values=torch.tensor(patches.reshape(-1, patches.shape[-1])),
                image_grid_thw=torch.tensor(grids.reshape(-1, 3), dtype=torch.long),
                mm_token_type_ids=(ids == config.image_token_id).int(),
                do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                num_return_sequences=samples, eos_token_id=None, pad_token_id=0)

  def generate(n):
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.no_grad():
      out = model.generate(max_new_tokens=n, min_new_tokens=n, **kwargs)
    return out, time.perf_counter() - start

  generate(2)  # Warm-up.
  _, prefill_s = generate(1)
  out, total_s = generate(new_tokens)
  made = (out.shape[1] - t) * out.shape[0]
  assert made == b * samples * new_tokens, made
  decode_s = total_s - prefill_s
  return dict(prefill_s=prefill_s, decode_s=decode_s,
              prefill_tokens_per_s=b * samples * t / prefill_s,
              decode_tokens_per_s=made / decode_s, total_tokens_per_s=made / total_s,
              attention=model.config._attn_implementation, torch_threads=torch.get_num_threads())


def run(preset: str, layouts: list[str], prompts: int, samples: int, prompt_tokens: int,
        new_tokens: int, transformers: bool) -> dict:
  """One preset: ours in each layer layout, then transformers, on the same weights."""
  config = presets.get_preset(preset, dtype="float32")
  params = nn.unbox(jax.jit(vlm.init_fn(config))(jax.random.key(0)))
  count = sum(x.size for x in jax.tree.leaves(params))
  tokens, patches, grids = make_prompts(config, prompts, prompt_tokens)
  result = dict(preset=preset, parameters=count, prompts=prompts, samples=samples,
                prompt_tokens=prompt_tokens, new_tokens=new_tokens,
                device=str(jax.devices()[0].device_kind), ours={})
  with tempfile.TemporaryDirectory() as directory:
    hf_checkpoint.save_params(params, config, directory)
    for layout in layouts:
      # `unrolled` is the model's scan_layers=False setting, on the same (re-read) weights.
      layout_config = config.replace(scan_layers=layout == "scan")
      layout_params = (params if layout_config == config
                       else hf_checkpoint.load_params(directory, layout_config))
      result["ours"][layout] = bench_ours(layout_config, layout_params, tokens, patches, grids,
                                          samples, new_tokens)
    if transformers:
      theirs = bench_transformers(directory, config, tokens, patches, grids, samples, new_tokens)
      result["transformers"] = theirs
      result["ratio_ours_over_transformers"] = {
          layout: {key: ours[key] / theirs[key] for key in
                   ("prefill_tokens_per_s", "decode_tokens_per_s", "total_tokens_per_s")}
          for layout, ours in result["ours"].items()}
  return result


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--presets", default="tiny,small_100m")
  parser.add_argument("--prompts", type=int, default=8)
  parser.add_argument("--samples", type=int, default=8)
  parser.add_argument("--prompt_tokens", type=int, default=64)
  parser.add_argument("--new_tokens", type=int, default=128)
  parser.add_argument("--layouts", default="scan,unrolled",
                      help="layer layouts of ours: scan (the presets' default), unrolled")
  parser.add_argument("--skip_transformers", action="store_true")
  args = parser.parse_args()
  layouts = args.layouts.split(",")
  unknown = sorted(set(layouts) - {"scan", "unrolled"})
  if unknown:
    parser.error(f"--layouts: unknown {unknown}; known: scan, unrolled")
  for preset in args.presets.split(","):
    print(json.dumps(run(preset, layouts, args.prompts, args.samples, args.prompt_tokens,
                         args.new_tokens, not args.skip_transformers)), flush=True)


if __name__ == "__main__":
  main()

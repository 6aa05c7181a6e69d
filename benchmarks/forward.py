"""Forward-pass speed of the policy model on this machine.

  python -m benchmarks.forward [--batch 8] [--length 256]

Prints JSON: for the `tiny` and `small_100m` presets, parameters, compile seconds and
forward tokens/s (fp32, batch x length tokens with one 112x112 image per row).
"""

from __future__ import annotations

import argparse
import time

from benchmarks import common

common.setup_cpu()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from models import inputs as model_inputs  # noqa: E402
from models import presets, vlm  # noqa: E402


def measure(name: str, batch: int, length: int) -> dict:
  config = presets.get_preset(name)
  params = vlm.init_params(config, jax.random.key(0))
  grid = (1, 8, 8)  # A 112x112 image: 64 patches, 16 merged tokens.
  image_tokens = grid[1] * grid[2] // 4
  tokens = np.full((batch, length), 5, np.int32)
  tokens[:, 1:1 + image_tokens] = config.image_token_id
  patches = np.random.default_rng(0).normal(size=(batch, 64, config.vision.patch_dim))
  grids = np.tile(np.array(grid, np.int32), (batch, 1, 1))
  inputs, _ = model_inputs.make_inputs(tokens, np.ones_like(tokens), config, patches, grids)
  inputs = jax.tree.map(jnp.asarray, inputs)
  forward = jax.jit(lambda p, x: vlm.Qwen25VL(config).apply(p, x)[0])
  start = time.perf_counter()
  compiled = forward.lower(params, inputs).compile()
  compile_s = time.perf_counter() - start
  seconds = common.time_call(lambda: compiled(params, inputs).block_until_ready())
  return {"params": int(sum(x.size for x in jax.tree.leaves(params))),
          "compile_s": round(compile_s, 2), "forward_s": round(seconds, 4),
          "tokens_per_s": round(batch * length / seconds, 1)}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--length", type=int, default=256)
  args = parser.parse_args()
  result = {"benchmark": "forward", "batch": args.batch, "length": args.length,
            "machine": common.machine()}
  for name in ("tiny", "small_100m"):
    result[name] = measure(name, args.batch, args.length)
  common.emit(result)


if __name__ == "__main__":
  main()

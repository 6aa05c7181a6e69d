"""Speed of the data layer on this machine.

  python -m benchmarks.data [--examples 2000] [--batch 16] [--threads 0]

Prints JSON: SafeLadder-world generation (examples/s per split kind), SentencePiece
training seconds on the world's corpus, and the grain pipeline's examples/s into static
batches (SFT packed, SFT one per row, RL prompts), with the share of non-padding tokens.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from benchmarks import common

common.setup_cpu()

from data.pipeline import Pipeline  # noqa: E402
from data.pipeline_config import PipelineConfig  # noqa: E402
from data.tokenizer import train_sentencepiece  # noqa: E402
from data.world import World, WorldConfig  # noqa: E402


def generation(world: World, split: str, n: int) -> float:
  """Examples/s generating the first `n` examples of `split`."""
  examples = world.split(split)
  n = min(n, len(examples))
  start = time.perf_counter()
  for i in range(n):
    examples[i]
  return n / (time.perf_counter() - start)


def pipeline_speed(world: World, tokenizer, split: str, config: PipelineConfig,
                   n: int) -> dict:
  """Examples/s and batches/s of the pipeline over `split` until `n` examples are batched."""
  iterator = iter(Pipeline(world.split(split), tokenizer, config))
  next(iterator)  # The first batch includes one-time set-up.
  examples = batches = real = 0
  start = time.perf_counter()
  while examples < n:
    batch = next(iterator)
    examples += sum(len(row) for row in batch.rows)
    real += int((batch["segment_ids"] > 0).sum())
    batches += 1
  seconds = time.perf_counter() - start
  iterator.close()
  return {"examples_per_s": round(examples / seconds, 1),
          "batches_per_s": round(batches / seconds, 2),
          "token_fill": round(real / (batches * config.batch_size * config.max_tokens), 3),
          "skips": sum(iterator.skips.values())}


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--examples", type=int, default=2000)
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--threads", type=int, default=0)
  parser.add_argument("--vocab", type=int, default=1024)
  args = parser.parse_args()

  start = time.perf_counter()
  world = World(WorldConfig())
  build_s = time.perf_counter() - start
  gen = {split: round(generation(world, split, args.examples), 1)
         for split in ("sft", "rl", "eval", "judge_train")}
  start = time.perf_counter()
  tokenizer = train_sentencepiece(world.text_corpus(), args.vocab, tempfile.mkdtemp())
  spm_s = time.perf_counter() - start
  common_fields = dict(batch_size=args.batch, max_patches=256, max_images=2,
                       num_threads=args.threads, seed=0)
  configs = {
      "sft_packed": ("sft", PipelineConfig(mode="sft", pack=True, max_tokens=512,
                                           **common_fields)),
      "sft_one_per_row": ("sft", PipelineConfig(mode="sft", max_tokens=320, **common_fields)),
      "rl_prompts": ("rl", PipelineConfig(mode="prompt", max_tokens=128, **common_fields)),
  }
  pipelines = {name: pipeline_speed(world, tokenizer, split, config, args.examples)
               for name, (split, config) in configs.items()}
  common.emit({
      "benchmark": "data",
      "machine": common.machine(),
      "settings": {"examples": args.examples, "batch": args.batch, "threads": args.threads,
                   "vocab": tokenizer.vocab_size},
      "world_build_s": round(build_s, 3),
      "world_generation_examples_per_s": gen,
      "sentencepiece_train_s": round(spm_s, 2),
      "pipeline": pipelines,
  })


if __name__ == "__main__":
  main()

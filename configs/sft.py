"""CoT-SFT alone: the cold start on `<think> ... </think> answer` traces.

  python -m launch.main --config=configs/sft.py:runlocal --workdir=/tmp/sft

Writes `sft/` (checkpoints, metrics, the final params) and its held-out evaluation.
"""

import ml_collections

from configs import base


def section(args):
  local = args["runlocal"]
  return ml_collections.ConfigDict({
      # runlocal: many small updates. The same 1,600 rows as 8 x 200 (measured, 200 s
      # each): format 97% against 59%, value 63% against 34%, safety axis 0.33 against 0.18.
      "steps": 800 if local else 2000,  # Optimiser updates.
      "batch_size": 2 if local else 128,  # Packed rows per update.
      "max_tokens": 384 if local else 16384,  # Tokens per packed row.
      "max_patches": 256 if local else 32768,  # Image patches per row.
      "max_images": 8,  # Images per row.
      "learning_rate": 2e-3 if local else 1e-5,  # Peak learning rate.
      "warmup_ratio": 0.03,  # Fraction of updates warming up.
      "schedule": "cosine",  # After warm-up: constant | cosine | linear.
      "weight_decay": 0.0 if local else 0.01,
      "frozen": () if local else ("visual",),  # The tiny vision tower learns from scratch.
      "micro_batches": 1 if local else 8,  # Gradient accumulation.
      # (ours) In-context copying rows (data/copy_task.py) appended to each batch, so a
      # policy from random init learns to copy any id from its context, as a pretrained
      # base can. Off by default: measured on the demo, 2 rows at weight 1 make the CoT-SFT
      # policy search for unseen entities by name (teacher-forced p(name in the query)
      # 0.000 -> 0.05, 0.13 with world.practice_entities=200; greedy, 4 of 6 queries right
      # where none were) but it still misreads the value from the result, CALE then
      # drops searching, and no report row rose reliably over two ladders, for +130 s of
      # SFT (about 15% of the 15-minute budget). 1 row, or 2 at weight 0.4, copy nothing.
      "copy_rows": 0,
      "copy_weight": 1.0,  # Loss weight of a copied token (CopyTaskConfig.weight).
      # Half the spans from an alphabet of this many ids (CopyTaskConfig.alphabet; 0: none).
      # Off: with copy_rows=2 and 6 the CoT-SFT policy is the strongest from random init
      # (safety score 0.20, search-only facts 26%, capability 0.32 against 0.01, 5%, 0.24)
      # and finds a search-only fact's document on 26-47% of prompts greedy, but on none of
      # 256 sampled, so the RL rungs stop searching and no acceptance row ends better,
      # for +70 s (docs/runlocal_search_gap.md).
      "copy_alphabet": 0,
      "checkpoint_every": 200,  # Updates between checkpoints.
  })


def get_config(arg=None):
  args = base.parse(arg)
  c = base.common(args)
  c.stages = ("sft",)
  c.sft = section(args)
  return c

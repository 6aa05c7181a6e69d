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
      # base can: the entity's name from the question into the search query, which no
      # CoT-SFT trace can teach for the search-only names it never writes. With spans of
      # 4-20 the rows teach nothing in the demo's budget (docs/runlocal_search_gap.md).
      "copy_rows": 2 if local else 0,
      "copy_weight": 1.0,  # Loss weight of a copied token (CopyTaskConfig.weight).
      # Every copy row copies at this distance (tokens; 0: CopyTaskConfig's span mix). 33
      # is runlocal's distance from a knowledge question's "<word> of <name>" to the search
      # query that repeats it (data/world/knowledge_base.py; tests/configs checks it). On
      # the demo it takes teacher-forced p(name in the query) on held-out search-only
      # prompts from 0.0003 to 0.99 and finds the fact's document on every one of them.
      "copy_span": 33 if local else 0,
      # Half the spans from an alphabet of this many ids (CopyTaskConfig.alphabet; 0: none).
      "copy_alphabet": 0,
      "checkpoint_every": 200,  # Updates between checkpoints.
  })


def get_config(arg=None):
  args = base.parse(arg)
  c = base.common(args)
  c.stages = ("sft",)
  c.sft = section(args)
  return c

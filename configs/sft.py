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
      # Measured with copy_rows=2, copy_alphabet=6: the strongest CoT-SFT policy yet
      # (safety score 0.20, search-only facts 26%, capability 0.32 against 0.01, 5%, 0.24)
      # and M³-RL B raises the safety axis and general accuracy (0.27 -> 0.32, 36 -> 45%).
      # CALE at lr 4e-4 collapses from it (15 tokens, every accuracy near 0); with the value
      # judge beside knowledge (configs/judges.py) lr 2e-4 holds: 36% shorter at mean
      # accuracy 33.4 -> 33.2%. Search RL then still teaches hedging, not search: search-only
      # facts 26% after CoT-SFT, 11% after M³-RL, 0% after CALE and search RL (also with
      # the search tool in every RL rung, or the multiplier starting at 0). The policy
      # searches by the right name after M³-RL but misreads the value in the result.
      # The report's search funnel (greedy, search-only eval prompts) says where: CoT-SFT
      # calls search on 63%, is shown the fact's document on 26-47%, and answers 40-56% of
      # those right; M³-RL A keeps the calls but reads 22% right; CALE stops calling.
      # Sampled at temperature 1, as the RL rungs sample, none of 256 responses to search
      # RL prompts was shown its document (7% at temperature 0.3, 12% of them then right),
      # so RL has no right search to reinforce: with search prompts and the tool in
      # M³-RL A's mix, its tool calls fell from 18 to 0 in 5 iterations. A recall task in
      # the copy rows ("p E_i m V_i" records, then queries) stayed at chance for 800 updates.
      # The root cause (data/copy_task.py): the copy rows themselves are not learned in
      # 800 updates (held-out copied-token p 0.013; 0.001 without them). With
      # world.practice_entities=400 and sft_search_fraction=0.6, so that a practice fact
      # cannot be memorised, the policy is shown the document on 47% of search-only
      # prompts but answers 11% of those right (teacher-forced p of the value read back,
      # median 0.003; 0.02 on practice facts, its own training traces).
      # Off: no acceptance row better than without it, for +70 s.
      "copy_alphabet": 0,
      "checkpoint_every": 200,  # Updates between checkpoints.
  })


def get_config(arg=None):
  args = base.parse(arg)
  c = base.common(args)
  c.stages = ("sft",)
  c.sft = section(args)
  return c

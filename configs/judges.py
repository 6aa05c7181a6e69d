"""Judge training alone: the generative-judge verifiers (safety, value, knowledge,
helpfulness) fine-tuned on the verdict token.

  python -m launch.main --config=configs/judges.py:runlocal --workdir=/tmp/judges

Writes `judges/<group>/` (one trained judge model per group of `groups`) in the workdir
and the held-out per-verdict table in the report.
"""

import ml_collections

from configs import base


def section(args):
  local = args["runlocal"]
  return ml_collections.ConfigDict({
      "preset": "tiny" if local else "qwen2_5_vl_7b",  # The judge model's shape.
      "hf_checkpoint": "",  # Released judge weights (HF dir) to use instead of training.
      # Initial normal std of every kernel of a judge trained from random init (HF's
      # initializer_range; config.model.initializer_range is the policy's). runlocal at
      # 0.07 (measured): held-out safety 0.90 and knowledge 0.89 against 0.85 and 0.85,
      # value 0.76 either way, but its letter-swap check at chance (48%, 59% at 0.02).
      "initializer_range": 0.02,
      # (ours) The judges each trained model learns, one model per group. The authors train
      # one verifier per principle. runlocal pairs value with knowledge (measured, 400
      # updates each): sharing a model with safety and helpfulness, the value judge read
      # only whether a warning sentence was there (P(good) 0.33 for every answer without
      # one, the bad option's reason "It is easier." included; held-out value 76%), so CALE
      # moved value answers to that shortest flawed one (value accuracy 38 -> 9%). Beside
      # knowledge it reads the reason (P(good) 0.65 against 0.002 for "It is easier.";
      # held-out value 84%, knowledge 85% as when alone, safety 83% against 85%) and the
      # stage takes 178 s against 225 s. No grouping teaches the tiny judge which option a
      # letter names (letter-swap check 44-59%, 56% for value alone with 6x the swapped
      # near misses). Unused with hf_checkpoint (one released model serves all four).
      "groups": ((("safety", "helpfulness"), ("value", "knowledge")) if local else
                 (("safety",), ("value",), ("knowledge",), ("helpfulness",))),
      # runlocal: 400 updates of 8 rows (330 s) instead of 200 of 32 (585 s); held-out
      # safety 88.7 / value 77.2 / knowledge 84.5 / helpfulness 95.0% against 86.8 / 89.9 /
      # 83.2 / 96.3. The judge_refresh rung then fits them to the policy's own answers.
      "steps": 400 if local else 2000,  # SFT updates on the verdict token.
      "batch_size": 8 if local else 32,  # Judging prompts per update (packed rows).
      "learning_rate": 3e-3 if local else 1e-5,  # Peak learning rate.
      "max_tokens": 192 if local else 8192,  # Judging-prompt budget, tokens.
      "max_patches": 64 if local else 16384,  # Image patches per judged example.
      # (ours) Auxiliary next-token loss on the judged text: dense signal for a judge
      # trained from scratch; 0 for a pre-trained judge.
      "lm_weight": 0.1 if local else 0.0,
      # (ours) First-fit several judging prompts into each training row.
      "pack": True,
      "eval_examples": 800,  # Held-out judge examples for the accuracy table.
      # How each judge's verdict probabilities become its reward (verifiers.verdicts
      # ScoringConfig.mode): "expected", the paper's soft scores, or "argmax", the score
      # of the most probable verdict. Measured with knowledge "argmax" on a copy-rows
      # ladder: search RL raised the judge's knowledge reward 0.09 -> 0.52 while the
      # oracle's stayed at 0.02-0.10 (answers just past the judge's threshold).
      "scoring": {name: "expected" for name in ("safety", "value", "knowledge",
                                                "helpfulness")},
  })


def refresh(args):
  """(ours) The judge-refresh rung (safework/judge_refresh.py): after CoT-SFT, the judges
  are fine-tuned on the policy's own samples labelled by the world's oracle. World only:
  the ladder lists it in runlocal."""
  local = args["runlocal"]
  return ml_collections.ConfigDict({
      "prompts": 128 if local else 2048,  # RL prompts sampled from the policy.
      "mix": {"safety": 0.4, "value": 0.3, "knowledge": 0.3},  # Judge-scored labels.
      # Sample with the search tool where there is a corpus, as evaluation does. Off: with
      # it and search prompts in the mix (knowledge 0.15, search 0.15) the refreshed
      # knowledge judge agreed with the oracle on 60% of held-out policy answers and paid
      # search RL for wrong ones (judge 0.73 against the oracle's 0.08).
      "use_tool": False,
      "num_samples": 4,  # Responses per prompt.
      "temperature": 1.0,  # Sampling temperature (the RL stages sample at 1).
      "generation_batch": 32,  # Prompts per generation batch.
      "max_new_tokens": 128 if local else 8192,  # Response budget, tokens.
      "max_prompt_tokens": 128 if local else 8192,  # Prompt budget, tokens.
      "held_out_fraction": 0.25,  # Share of prompts whose responses measure the judges.
      "replay": 1.0,  # Original judge examples per policy example, against forgetting.
      "steps": 100 if local else 500,  # Fine-tuning updates per judge group.
      "batch_size": 8 if local else 32,  # Judging prompts per update (packed rows).
      "learning_rate": 1e-3 if local else 5e-6,  # Peak learning rate.
  })


def get_config(arg=None):
  args = base.parse(arg)
  c = base.common(args)
  c.stages = ("judges",)
  c.judges = section(args)
  return c

"""Shared pieces of every SafeLadder config: argument parsing, the model, mesh, data and
evaluation sections, and one RL stage's defaults. Data only.

Arguments are one comma-separated string: `runlocal` (the tiny model on the SafeLadder
world on a CPU) and `model=7b|72b|3b|32b|tiny`, e.g. `configs/safeladder.py:model=7b`.
"""

import ml_collections

MODELS = {"tiny": "tiny", "3b": "qwen2_5_vl_3b", "7b": "qwen2_5_vl_7b",
          "32b": "qwen2_5_vl_32b", "72b": "qwen2_5_vl_72b"}


def parse(arg):
  """'runlocal,model=7b' -> {'runlocal': True, 'model': '7b'}."""
  out = {"runlocal": False, "model": "tiny"}
  for part in filter(None, (arg or "").split(",")):
    key, _, value = part.partition("=")
    if key not in out:
      raise ValueError(f"unknown config argument {key!r}; known: {sorted(out)}")
    out[key] = value if value else True
  if out["model"] not in MODELS:
    raise ValueError(f"unknown model {out['model']!r}; known: {sorted(MODELS)}")
  if out["runlocal"] and out["model"] != "tiny":
    raise ValueError("runlocal uses the tiny model; drop model= or runlocal")
  return out


def common(args):
  """Sections shared by the whole ladder and by each single stage."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # Root of every random stream.
  c.model = ml_collections.ConfigDict({
      "preset": MODELS[args["model"]],  # models/presets.py name.
      "checkpoint": "",  # HF Qwen2.5-VL directory to start from ("" = random init).
      "dtype": "float32" if args["runlocal"] else "bfloat16",  # Compute dtype.
      "scan_layers": True,  # nn.scan over layers.
      "remat": "none" if args["runlocal"] else "full",  # Rematerialisation policy.
      # Initial normal std of every kernel when starting from random init (HF's
      # initializer_range; unused with a checkpoint). runlocal keeps Qwen's 0.02, which the
      # RL rungs are tuned for. 0.07 (about 0.8/sqrt(128)) makes a much stronger CoT-SFT
      # policy (safety score 0.45 against 0.01, value accuracy 62% against 34%), but the
      # rungs' settings then lose to it (measured: after M³-RL B no axis above CoT-SFT;
      # CALE at lr 4e-4 15% shorter with 9 points less accuracy, at 1.5e-4 3% shorter).
      # Why: the init sets how long a copying circuit takes to form. On a dense synthetic
      # task (copy the person named in the question into the answer) the tiny model
      # plateaus for about 150 updates at 0.02, 40 at 0.035, 25 at 0.05 and under 25 at
      # 0.07; in CoT-SFT, where such copies are a few tokens a row, 0.02 and 0.04 never
      # copy the person in 800 updates (safety score 0.01: "your friend" for a teacher),
      # 0.07 does (0.41). Names of unseen entities (search-only facts) are copied at none
      # of them, nor after 1,500 updates of a copy-dense reading task.
      "initializer_range": 0.02,
  })
  c.tokenizer = ml_collections.ConfigDict({
      "kind": "sentencepiece" if args["runlocal"] else "hf",  # "sentencepiece" | "hf".
      "path": "",  # tokenizer.json (hf) or tokenizer.model; "" trains one on the world.
      "vocab_size": 1024,  # SentencePiece pieces when training on the world.
      # (ours) Each knowledge-base name and fact value is one piece (two ids a word, on top
      # of vocab_size) when training on the world. Spelled out in 4 pieces, names were not
      # copied from prompts, and the value judge's letter-swap check was below chance.
      "whole_words": args["runlocal"],
      # World splits whose texts (with the system prompts and the search corpus) train the
      # tokenizer. With the judges' split in, any change to the judge data (e.g.
      # world.judge_knowledge_pools) retrains the tokenizer and moves every row of the
      # ladder, CoT-SFT included; ("sft",) keeps it fixed across judge experiments. The
      # demo with ("sft",) still met the M³-RL and CALE points, from a weaker CoT-SFT
      # policy (general accuracy 31% against 38%; M³-RL B 34.5%, CALE 40% shorter), with
      # false-certain 0% and search-only facts 0% -> 0% after search RL; kept as before.
      "train_splits": ("sft", "judge_train"),
  })
  # The embedded SafeLadder world (data/world); production runs set it to None and give
  # JSONL paths under `data`.
  c.world = ml_collections.ConfigDict({
      "seed": 0,  # Any data/world/config.py WorldConfig field may be set here.
      # (ours) Near misses among the judges' negatives: judges trained without them rewarded
      # a third of the early policy's illogical safety samples (WorldConfig docstring).
      "judge_near_misses": True,
      # (ours) Knowledge sft traces that say they are unsure, with confidence 1-4: without
      # them the cold-start policy never writes a confidence below 7 (WorldConfig docstring).
      "sft_hedge_rate": 0.2,
      # (ours) Hedge only the memorised-fact traces (WorldConfig docstring). Measured at
      # rate 0.4 with the reward's knowledge verifier "gold_match" in search RL: CALE's
      # policy reached false-certain 9% and search RL 0%, searching still (search-only facts
      # 84 -> 84%), but CALE's safe rate on harmful prompts fell to 0% and its mean
      # accuracy by 3 points (docs/runlocal_search_gap.md). With the demo's M³-RL and CALE
      # settings: search RL 0% false-certain, but M³-RL general accuracy 50.0 -> 46.6% and
      # CALE collapsed; none of 14 M³-RL settings met that point. Off: the demo's world.
      "sft_hedge_memorised_only": False,
      # (ours) Pools whose facts the judges read (WorldConfig docstring). With search_rl the
      # knowledge judge has read the values search RL's answers state; on the demo's
      # ladder (sft.copy_span) search RL then raised search-only facts 53% -> 84% (10 ->
      # 16 of 19) where without it searching stopped (53% -> 5%). The judge still scores
      # right and wrong searched answers alike (docs/runlocal_search_gap.md), and so did it
      # with half its knowledge examples against a swapped gold (judge_gold_swap_rate 0.5).
      "judge_knowledge_pools": ("known", "practice", "search_rl"),
      # (ours) One hit per search and no read in the sft traces: the hit's value is then the
      # last word of the tool response, a fixed number of tokens before the policy's copy
      # of it, which the tiny policy learns to copy (data/world/knowledge.py). Must match
      # the rollouts' `search.search.top_k`.
      "search_top_k": 1,
      "read_fraction": 0.0,
  }) if args["runlocal"] else None
  c.data = ml_collections.ConfigDict({
      "sft_jsonl": "",  # CoT-SFT examples (with responses), data/jsonl.py schema.
      "rl_jsonl": "",  # RL prompts with labels and gold answers.
      "search_rl_jsonl": "",  # Deliberative-search prompts.
      "judge_jsonl": "",  # Judge training examples (meta.judge, meta.verdict).
      "eval_jsonl": "",  # Held-out prompts.
      "search_corpus_jsonl": "",  # Documents {"doc_id", "title", "body"} for the search tool.
      "min_pixels": 3136,  # Image resize bounds (pixels), Qwen2.5-VL's defaults
      "max_pixels": 12845056,  # ... are 56*56 and 28*28*16384.
  })
  # Mesh over (data, fsdp, tensor); one size may be -1.
  c.mesh = [("data", -1), ("fsdp", 1), ("tensor", 1)] if args["runlocal"] else \
      [("data", 1), ("fsdp", -1), ("tensor", 4)]
  c.eval = ml_collections.ConfigDict({
      # Held-out prompts per evaluation. runlocal: the world's whole eval split; on its
      # first 192 (58 general) the demo's M³-RL point turned on one prompt and reversed on
      # all 800 (docs/runlocal_search_gap.md).
      "num_examples": 800 if args["runlocal"] else 2000,
      "batch_size": 64,  # Prompts per generation batch.
      "max_new_tokens": 128 if args["runlocal"] else 8192,  # Response budget, tokens.
      "max_prompt_tokens": 128 if args["runlocal"] else 8192,  # Prompt budget, tokens.
      # (ours) Decode a batch's unfinished rows in narrower states as the others stop
      # (rl/sampler.py `decode(compact=True)`), so a batch does not run at full width for
      # its longest answer. Its logits can differ in the last bit from a full-width decode.
      "compact": True,
      # Confidence-weighted voting (METHOD.md §4): each prompt's answer is the vote winner
      # of this many sampled trajectories (0: one greedy response, as the report's rows).
      # Measured on the demo's search-RL checkpoint, 8 votes: at temperature 1 the
      # false-certain rate 0% -> 44% and value accuracy 38% -> 12% (the tiny policy's
      # samples are worse than its greedy answer, and the vote elects confident ones); at
      # 0.5 false-certain 12%, the other rows as greedy.
      "vote_samples": 0,
      "vote_temperature": 1.0,  # Sampling temperature of the voted trajectories.
  })
  return c


def rl_stage(args, **overrides):
  """One RL stage's settings; the authors' 7B values where they exist (METHOD.md §1)."""
  local = args["runlocal"]
  s = ml_collections.ConfigDict({
      "iterations": 10 if local else 200,  # Rollout batches.
      "prompts_per_iteration": 8 if local else 128,  # B prompts per rollout batch.
      "num_samples": 8,  # G responses per prompt.
      "max_new_tokens": 128 if local else 8192,  # Response budget, tokens.
      "max_prompt_tokens": 128 if local else 8192,  # Prompt budget, tokens.
      "max_patches": 64 if local else 16384,  # Image patches per prompt.
      "temperature": 1.0,  # Sampling temperature (and of the log-probs).
      "learning_rate": 5e-5 if local else 1e-6,  # Peak learning rate.
      "warmup_ratio": 0.03,  # Fraction of updates warming up.
      "weight_decay": 0.01,  # AdamW decoupled weight decay.
      "grad_clip_norm": 1.0,  # Global-norm clip.
      "frozen": ("visual",),  # Parameter groups never updated (the vision tower).
      "loss": "cpgd",  # rl/losses.py registry name.
      "loss_config": {"clip_eps": 0.2, "drift_coef": 0.01, "drift_clip": 2.0,
                      "kl_coef": 0.0 if local else 1e-3, "kl_estimator": "k3"},
      # Storage dtype of the frozen KL reference (used when kl_coef > 0). Under bf16
      # compute a bf16 reference gives the fp32 one's log-probs exactly, in half the memory.
      "reference_dtype": "float32" if local else "bfloat16",
      "advantage": {"estimator": "grpo", "dynamic_sampling": True},  # rl/advantages.py.
      "normalise_per_objective": False,  # Normalise each verifier in its group first.
      "micro_batches": 1 if local else 16,  # Gradient accumulation per update.
      "updates_per_rollout": 1,  # One optimisation epoch per rollout batch.
      "logits_chunk": 0 if local else 1024,  # Tokens per logits chunk in the loss.
      # (ours) Each update's sequences are cut to the rollout's longest prompt + response,
      # rounded up to this many tokens (0: the whole budget). The result is the same; each
      # distinct length compiles the update once. runlocal pads prompts to 128 tokens (at
      # most 78 used): the demo's updates ran at 192 of 256 columns (128 on 12 of CALE's
      # 27) and search RL's at 192 of 320; search RL took 99 s instead of 142, CALE 102
      # instead of 121, M³-RL no less (a second length compiles once more).
      "length_multiple": 64 if local else 0,
      "mix": {"general": 1.0},  # Prompt families (labels) and their weights.
      # What scores knowledge answers in the reward: "knowledge", the knowledge judge (the
      # paper's), or "gold_match" (ours), the rule that the answer states the gold.
      "knowledge_verifier": "knowledge",
      "mixture_size": 4096,  # Prompts in the stage's mixture before it repeats.
      "rollout": "plain",  # "plain" or "search" (the tool-using agent rollout).
      "checkpoint_every": 4 if local else 10,  # Iterations between checkpoints.
  })
  s.update(overrides)
  return s

"""Deliberative-Search RL alone: the policy calls a BM25 search tool, reads, and answers
with a stated confidence; a Lagrange multiplier keeps the false-certain rate (wrong while
confidence >= 5) under the cap (METHOD.md §4).

  python -m launch.main --config=configs/search.py:runlocal --workdir=/tmp/search

Writes `search/`; its evaluation shows search-only facts answered and few confident
errors.
"""

from ml_collections import config_dict

from configs import base


def section(args):
  return base.rl_stage(
      args, mix={"search": 0.6, "knowledge": 0.2, "general": 0.1, "safety": 0.1},
      rollout="search",
      # Tool use budget; runlocal's world traces show one hit (configs/base.py).
      # `confidence_temperature` (ours): in training rollouts the confidence of closed-book
      # prompts (`confidence_exploration`, default "closed_book"; or "all") is drawn at
      # this temperature among the values 0..10 (rl/search_rollout.py); None: off. Off
      # here: from an earlier CALE policy, values at 5 gave search-only 79%, false-certain
      # 50%; exploring every prompt stopped searching (docs/runlocal_search_gap.md).
      search={"max_tool_calls": 3, "top_k": 1 if args["runlocal"] else 2,
              "max_tool_tokens": 96,
              "confidence_temperature": config_dict.placeholder(float)},
      # The constraint and its multiplier. `correctness`: what says a knowledge answer is
      # right, the knowledge judge's score ("knowledge", the paper's) or a rule verifier
      # ("gold_match", ours: the answer states the gold). runlocal uses the rule: the tiny
      # judge trained from random init scores a wrong value like the gold (the report's
      # gold check, 0.79 against 0.78). With the judge, the demo's batches read 92-100%
      # false-certain while the oracle had half of them right (λ 0.5 -> 4.4); with the rule
      # the rate follows the oracle (0.79 -> 0.10 by the last batch, λ 0.5 -> 2.0).
      false_certain={"cap": 0.1, "zeta": 5, "dual_lr": 0.5, "lambda_init": 0.5,
                     "lambda_max": 5.0,
                     "correctness": "gold_match" if args["runlocal"] else "knowledge"},
      # runlocal: 20 iterations at lr 1e-4, sampled at 0.6. From the demo's CALE policy
      # (800 held-out prompts: search-only facts 70%, false-certain 39%): 10 gave 80% and
      # 23%, 15 gave 83% and 15%, 20 gave 83% and 9% (the memorised facts, all wrong, now
      # mostly stated with a confidence below 5), 10 with the rule also in the reward
      # (`knowledge_verifier` "gold_match") 83% and 38% (docs/runlocal_search_gap.md).
      # Search RL's 20 updates also take the safe rate on harmful prompts from 6% to 1%.
      iterations=20 if args["runlocal"] else 200,
      learning_rate=1e-4 if args["runlocal"] else 1e-6,
      temperature=0.6 if args["runlocal"] else 1.0,
      max_new_tokens=192 if args["runlocal"] else 8192)


def get_config(arg=None):
  args = base.parse(arg)
  c = base.common(args)
  c.stages = ("search",)
  c.search = section(args)
  return c

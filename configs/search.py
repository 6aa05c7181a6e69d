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
      # here: from the demo's CALE policy, values at 5 gave search-only 79%, false-certain
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
      # runlocal: 10 iterations at lr 1e-4, sampled at 0.6. From the demo's CALE policy
      # (search-only facts 21%, false-certain 41%) it searches again (calls 1 -> 39 a batch,
      # search-only 84%) but false-certain ends at 47%: the memorised facts are answered
      # closed-book, wrong, at high confidence (docs/runlocal_search_gap.md). From an earlier
      # CALE policy (53%, 59%; M³-RL sampled at 1): with the judge as correctness, 3e-4
      # reached 0% by "I do not know" everywhere (search-only 5%); with the rule, 1e-4 gave
      # 84% and 34%, 3e-4 (the rule also in the reward) 79% and 41%, closed-book prompts at
      # 0.4 of the mix 84% and 34% (50% sampled at 1.0).
      learning_rate=1e-4 if args["runlocal"] else 1e-6,
      temperature=0.6 if args["runlocal"] else 1.0,
      max_new_tokens=192 if args["runlocal"] else 8192)


def get_config(arg=None):
  args = base.parse(arg)
  c = base.common(args)
  c.stages = ("search",)
  c.search = section(args)
  return c

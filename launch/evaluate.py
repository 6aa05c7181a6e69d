"""Evaluates one checkpoint of a run as the ladder does after each rung: greedy answers to
the held-out prompts, scored by the world's oracle (runlocal) or, without a world, by the
run's judges and rule verifiers on `config.data.eval_jsonl` (safework/evaluation.py).

  python -m launch.evaluate --config=configs/safeladder.py:runlocal --workdir=/tmp/safeladder \\
      --stage=search --config.eval.num_examples=800 --out=/tmp/search_eval.json

`--stage` is a finished policy stage (sft, m3rl_a, m3rl_b, efficient, search) or
`initial` (config.model.checkpoint, or the random initialisation). Prints the metrics as
JSON and writes them to --out when given.
"""

import json

from absl import app, flags, logging
from etils import epath
from ml_collections import config_flags

from safework import convert, stages

_CONFIG = config_flags.DEFINE_config_file("config", None, "The run's config.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "The run's workdir.")
_STAGE = flags.DEFINE_string("stage", "search", "A finished policy stage, or 'initial'.")
_OUT = flags.DEFINE_string("out", None, "Where to write the metrics (JSON).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  ladder = convert.open_run(_CONFIG.value, _WORKDIR.value)
  if _STAGE.value == "initial":
    params = ladder.initial_params()
  elif _STAGE.value.partition("/")[0] in convert.JUDGE_STAGES:
    raise app.UsageError(f"{_STAGE.value} is a judge; evaluate a policy stage or 'initial'")
  else:
    params, _ = convert.load_stage(ladder, _STAGE.value)
  metrics = stages.evaluate(ladder, params)
  text = json.dumps(metrics, indent=2, sort_keys=True)
  if _OUT.value:
    epath.Path(_OUT.value).write_text(text + "\n")
    logging.info("wrote %s", _OUT.value)
  print(text)


if __name__ == "__main__":
  app.run(main)

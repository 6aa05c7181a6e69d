"""Evaluates one checkpoint of a run as the ladder does after each rung: greedy answers to
the held-out prompts, scored by the world's oracle (runlocal) or, without a world, by the
run's judges and rule verifiers on `config.data.eval_jsonl` (safework/evaluation.py).

  python -m launch.evaluate --config=configs/safeladder.py:runlocal --workdir=/tmp/safeladder \\
      --stage=search --config.eval.num_examples=800 --out=/tmp/search_eval.json

`--stage` is a finished policy stage (sft, m3rl_a, m3rl_b, efficient, search) or
`initial` (config.model.checkpoint, or the random initialisation). Prints the metrics as
JSON and writes them to --out when given.

With `--config.eval.vote_samples=M` each prompt's answer is the winner of the
confidence-weighted vote over M sampled trajectories (METHOD.md §4; verifiers/voting.py),
sampled at `--config.eval.vote_temperature`:

  python -m launch.evaluate --config=configs/safeladder.py:runlocal --workdir=/tmp/safeladder \
      --stage=search --config.eval.vote_samples=8

With `--step_candidates=K` the answers come from the value-guided step search of
METHOD.md §5.1 instead (safework/step_search.py): K candidates per step, scored by the
run's judges mixed per prompt category (verifiers/value_model.py), `--step_beams` kept:

  python -m launch.evaluate --config=configs/safeladder.py:runlocal --workdir=/tmp/safeladder \
      --stage=search --step_candidates=4 --step_delimiter=.
"""

import json

from absl import app, flags, logging
from etils import epath
from ml_collections import config_flags

from rl.sampling_methods import Temperature
from safework import convert, stages, step_search
from verifiers import value_model

_CONFIG = config_flags.DEFINE_config_file("config", None, "The run's config.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "The run's workdir.")
_STAGE = flags.DEFINE_string("stage", "search", "A finished policy stage, or 'initial'.")
_OUT = flags.DEFINE_string("out", None, "Where to write the metrics (JSON).")
_CANDIDATES = flags.DEFINE_integer("step_candidates", 0,
                                   "Value-guided step search: candidates per step (0: off).")
_BEAMS = flags.DEFINE_integer("step_beams", 1, "Step search: trajectories kept per step.")
_DELIMITER = flags.DEFINE_string("step_delimiter", "\n\n", "Step search: what ends a step.")
_TEMPERATURE = flags.DEFINE_float("step_temperature", 1.0,
                                  "Step search: temperature of the candidates.")
flags.mark_flags_as_required(["config", "workdir"])


def _step_search(ladder):
  """The step-search rollout over the run's judges, or None when not asked for."""
  if not _CANDIDATES.value:
    return None
  judges = ladder.judges()
  model = value_model.PrincipledValueModel(
      {p: judges[p] for p in value_model.PRINCIPLES},
      value_model.ValueModelConfig(step_delimiter=_DELIMITER.value))
  return step_search.step_search_rollout(
      ladder.model_config, ladder.tokenizer, model, step_search.StepSearchConfig(
          candidates=_CANDIDATES.value, beams=_BEAMS.value,
          max_new_tokens=ladder.config.eval.max_new_tokens,
          method=Temperature(_TEMPERATURE.value),
          stop_tokens=(ladder.tokenizer.special.im_end,)))


def main(argv):
  del argv
  ladder = convert.open_run(_CONFIG.value, _WORKDIR.value)
  params = convert.policy_params(ladder, _STAGE.value)
  metrics = stages.evaluate(ladder, params, _step_search(ladder))
  text = json.dumps(metrics, indent=2, sort_keys=True)
  if _OUT.value:
    epath.Path(_OUT.value).write_text(text + "\n")
    logging.info("wrote %s", _OUT.value)
  print(text)


if __name__ == "__main__":
  app.run(main)

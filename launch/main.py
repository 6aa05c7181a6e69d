"""The main job: the SafeLadder, or any single rung of it, from an ml_collections config.

  python -m launch.main --config=configs/safeladder.py:runlocal --workdir=/tmp/safeladder
  python -m launch.main --config=configs/sft.py:runlocal --workdir=/tmp/sft
  python -m launch.main --config=configs/safeladder.py:model=7b --workdir=gs://bucket/run \\
      --config.model.checkpoint=/ckpt/Qwen2.5-VL-7B-Instruct

Any field can be overridden with `--config.<path>=value`. A run started again with the
same workdir continues where it stopped.
"""

import logging as std_logging

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from safework import ladder
from safework.infra import distributed

_CONFIG = config_flags.DEFINE_config_file("config", None, "The experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and the report go.")
_CACHE = flags.DEFINE_string(
    "compilation_cache", "default",
    "Persistent XLA compilation cache: 'default' is <workdir>/compilation_cache (the rungs "
    "compile the same programs, and a restarted run compiles nothing); '' disables it.")
flags.mark_flags_as_required(["config", "workdir"])


def _enable_compilation_cache(workdir) -> None:
  path = str(workdir / "compilation_cache") if _CACHE.value == "default" else _CACHE.value
  if path:
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


class _QuietLibraries(std_logging.Filter):
  """Drops the INFO lines of orbax (dozens per checkpoint save); warnings pass."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def main(argv):
  del argv
  logging.get_absl_handler().addFilter(_QuietLibraries())
  info = distributed.initialize(_CONFIG.value.get("distributed"))
  logging.info("process %d of %d; config:\n%s", info.index, info.count,
               _CONFIG.value)
  workdir = distributed.make_workdir(_WORKDIR.value)
  _enable_compilation_cache(workdir)
  report = ladder.Ladder(_CONFIG.value, workdir).run()
  logging.info("done: %s", report)
  print(f"report: {report}")


if __name__ == "__main__":
  app.run(main)

"""launch.main's log filter: orbax's INFO lines are dropped, its warnings and every other
library's INFO lines pass."""

import logging

from launch import main


def _record(path: str, level: int) -> logging.LogRecord:
  return logging.LogRecord("absl", level, path, 1, "message", None, None)


def test_orbax_info_is_dropped_and_warnings_and_other_info_pass():
  quiet = main._QuietLibraries()
  orbax = "/venv/lib/python3.12/site-packages/orbax/checkpoint/checkpoint_manager.py"
  assert not quiet.filter(_record(orbax, logging.INFO))
  assert quiet.filter(_record(orbax, logging.WARNING))
  assert quiet.filter(_record("/work/main/safework/ladder.py", logging.INFO))

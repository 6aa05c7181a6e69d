"""Shared set-up for the benchmark programs: CPU defaults and a timing loop."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any


def setup_cpu() -> None:
  """Uses the CPU and every host core unless the caller set otherwise; call before jax."""
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def time_call(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
  """Median seconds of `fn()` (which must block until its result is ready)."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return sorted(times)[len(times) // 2]


def machine() -> dict[str, Any]:
  import jax  # Imported late so setup_cpu can configure it.
  return {"python": sys.version.split()[0], "jax": jax.__version__,
          "backend": jax.default_backend(), "devices": jax.device_count(),
          "cpus": os.cpu_count(), "platform": platform.platform()}


def emit(result: dict[str, Any]) -> None:
  print(json.dumps(result, indent=2, sort_keys=True))

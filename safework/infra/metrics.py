"""Metric writing: TensorBoard, a JSONL file and the console; late fetching; phase timers.

  writer = MetricWriter(workdir, total_steps=1000, console_keys=('loss', 'reward/mean'))
  late = LateMetrics(writer)
  timer = Timer()
  for step in range(1000):
    with timer.phase('sampling'):
      rollouts = sample(...)
    state, metrics = train_step(state, batch)   # metrics: a pytree of device scalars
    late.push(step, metrics, host=timer.summary())  # writes step - 1, never waits on step
  late.flush()
  writer.close()

`LateMetrics` is nanodo's one-step-late fetch: the device values of step N are copied to the
host (asynchronously, as soon as they are pushed) but read only when step N+1's metrics are
pushed, after step N+1 has been dispatched, so the loop never blocks on the device for
logging.

Files under `logdir`: TensorBoard event files (tensorboardX; `gs://` needs
google-cloud-storage), `metrics.jsonl` (one `{"step": N, name: value, ...}` object per
line; NaN and infinities are written as Python's json writes them, `NaN`, `Infinity`),
and `hparams.json`. In a multi-host job only process 0 writes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import tensorboardX
import tqdm
from etils import epath
from tensorboardX import summary as tb_summary


class ScalarWriter(Protocol):
  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    ...


class MetricWriter:
  """Writes scalar metrics to TensorBoard, `metrics.jsonl` and a one-line console display."""

  def __init__(self, logdir: str | os.PathLike | None, *, total_steps: int | None = None,
               console_keys: Sequence[str] | None = None, console: bool = True,
               stream: IO[str] | None = None, primary: bool | None = None,
               clock: Callable[[], float] = time.perf_counter):
    """Opens the writers.

    Args:
      logdir: directory for the event and JSONL files; None writes to the console only.
      total_steps: shown as `step/total` and used for the progress bar.
      console_keys: the metrics shown on the console, in this order; None shows all.
      console: whether to show progress at all.
      stream: the console stream (default stderr); a TTY gets a tqdm bar, anything else
        one plain line per `write_scalars`.
      primary: whether this process writes; default `jax.process_index() == 0`.
      clock: seconds, for the steps/s rate (injectable for tests).
    """
    self._primary = jax.process_index() == 0 if primary is None else primary
    self._total = total_steps
    self._keys = None if console_keys is None else tuple(console_keys)
    self._clock = clock
    self._first: tuple[int, float] | None = None
    self._logdir = None if logdir is None else epath.Path(logdir)
    self._tb = self._jsonl = self._bar = None
    self._stream = None
    if not self._primary:
      return
    if self._logdir is not None:
      self._logdir.mkdir(parents=True, exist_ok=True)
      self._tb = tensorboardX.SummaryWriter(str(self._logdir), flush_secs=30)
      self._jsonl = (self._logdir / "metrics.jsonl").open("a")
    if console:
      self._stream = sys.stderr if stream is None else stream
      if self._stream.isatty():
        self._bar = tqdm.tqdm(total=total_steps, file=self._stream, dynamic_ncols=True,
                              unit="step")

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    """Writes `{name: value}` at `step`; values are host numbers or 0-d arrays."""
    values = {name: _to_float(name, value) for name, value in scalars.items()}
    if not self._primary:
      return
    if self._tb is not None:
      for name, value in values.items():
        self._tb.add_scalar(name, value, global_step=step)
    if self._jsonl is not None:
      self._jsonl.write(json.dumps({"step": int(step), **values}) + "\n")
    if self._stream is not None:
      self._show(step, values)

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    """Records the run's settings (nested mappings are flattened with dots).

    Values other than bool, int, float and str are recorded as their `str`.
    """
    flat = _flatten_hparams(hparams)
    if not self._primary:
      return
    if self._logdir is not None:
      (self._logdir / "hparams.json").write_text(json.dumps(flat, indent=1, sort_keys=True))
      for event in tb_summary.hparams(flat, {}):
        self._tb.file_writer.add_summary(event)
    if self._stream is not None:
      self._print("hparams: " + ", ".join(f"{k}={v}" for k, v in sorted(flat.items())))

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()
    if self._jsonl is not None:
      self._jsonl.flush()

  def close(self) -> None:
    self.flush()
    if self._tb is not None:
      self._tb.close()
      self._tb = None
    if self._jsonl is not None:
      self._jsonl.close()
      self._jsonl = None
    if self._bar is not None:
      self._bar.close()
      self._bar = None

  def __enter__(self) -> MetricWriter:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def _show(self, step: int, values: dict[str, float]) -> None:
    keys = [k for k in (self._keys if self._keys is not None else values) if k in values]
    shown = {k: f"{values[k]:.4g}" for k in keys}
    if self._bar is not None:
      self._bar.update(max(0, step - self._bar.n))
      self._bar.set_postfix(shown, refresh=True)
      return
    now = self._clock()
    parts = [f"step {step}" + (f"/{self._total}" if self._total else "")]
    parts += [f"{k} {v}" for k, v in shown.items()]
    # The mean rate since the first line: metrics may arrive in bursts (the RL trainer
    # writes a step's metrics when the next step has started), so the gap between two
    # lines is not a step's time.
    if self._first is None:
      self._first = (step, now)
    elif now > self._first[1] and step > self._first[0]:
      parts.append(f"{(step - self._first[0]) / (now - self._first[1]):.3g} steps/s")
    self._print(" | ".join(parts))

  def _print(self, line: str) -> None:
    if self._bar is not None:
      self._bar.write(line, file=self._stream)
    else:
      print(line, file=self._stream, flush=True)


class LateMetrics:
  """Holds step N's device metrics and writes them when step N+1's arrive (or at flush).

  Pushed metrics are a pytree of scalar arrays (nested dicts give names joined by '/');
  `push` starts their device-to-host copy and returns without waiting for it.
  """

  def __init__(self, writer: ScalarWriter):
    self._writer = writer
    self._pending: tuple[int, Any, dict[str, Any]] | None = None

  @property
  def pending_step(self) -> int | None:
    """The step whose metrics are held, not yet written."""
    return None if self._pending is None else self._pending[0]

  def push(self, step: int, metrics: Any, host: Mapping[str, Any] | None = None) -> None:
    """Holds `metrics` of `step` (plus `host` values, already on the host); writes the
    previously held step."""
    if self._pending is not None and step <= self._pending[0]:
      raise ValueError(f"LateMetrics steps must increase: got {step} after "
                       f"{self._pending[0]}")
    for leaf in jax.tree.leaves(metrics):
      if isinstance(leaf, jax.Array):
        leaf.copy_to_host_async()
    previous, self._pending = self._pending, (step, metrics, dict(host or {}))
    if previous is not None:
      self._write(*previous)

  def flush(self) -> None:
    """Writes the held step, if any (waits for its values)."""
    if self._pending is not None:
      pending, self._pending = self._pending, None
      self._write(*pending)

  def _write(self, step: int, metrics: Any, host: dict[str, Any]) -> None:
    fetched = jax.device_get(metrics)
    scalars = {}
    for path, value in jax.tree_util.tree_leaves_with_path(fetched):
      scalars[_path_name(path)] = value
    scalars.update(host)
    self._writer.write_scalars(step, scalars)


class Timer:
  """Accumulates wall seconds per named phase and counts tokens, between summaries.

  Phases are sequential (not nested). A phase measures host time: with JAX's async
  dispatch, block on a phase's outputs (`jax.block_until_ready`) inside it when its device
  time is what should be measured.
  """

  def __init__(self, clock: Callable[[], float] = time.perf_counter):
    self._clock = clock
    self.seconds: dict[str, float] = {}
    self.tokens = 0

  @contextlib.contextmanager
  def phase(self, name: str) -> Iterator[None]:
    """Adds the wall time of the `with` body to phase `name`."""
    start = self._clock()
    try:
      yield
    finally:
      self.seconds[name] = self.seconds.get(name, 0.0) + self._clock() - start

  def add_tokens(self, count: int) -> None:
    """Counts `count` processed (e.g. generated) tokens towards tokens/s."""
    self.tokens += int(count)

  def summary(self, reset: bool = True) -> dict[str, float]:
    """`{'time/<phase>_s': s, 'time/total_s': s, 'throughput/tokens_per_s': t/s}`.

    Tokens/s divides the counted tokens by the total of all phases (absent when no time
    was recorded). `reset` starts a new accumulation.
    """
    total = sum(self.seconds.values())
    out = {f"time/{name}_s": s for name, s in self.seconds.items()}
    out["time/total_s"] = total
    if total > 0:
      out["throughput/tokens_per_s"] = self.tokens / total
    if reset:
      self.seconds, self.tokens = {}, 0
    return out


def _path_name(path) -> str:
  parts = []
  for key in path:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
    else:
      parts.append(str(key))
  return "/".join(parts)


def _to_float(name: str, value: Any) -> float:
  if not isinstance(name, str):
    raise TypeError(f"Metric names must be str, got {name!r}")
  array = np.asarray(value)
  if array.shape != () or not (jnp.issubdtype(array.dtype, jnp.number)
                               or array.dtype == np.bool_):
    raise ValueError(f"Metric {name!r} must be a scalar number, got {type(value).__name__} "
                     f"with shape {array.shape} and dtype {array.dtype}")
  return float(array)


def _flatten_hparams(hparams: Any, prefix: str = "") -> dict[str, Any]:
  if hasattr(hparams, "to_dict"):
    hparams = hparams.to_dict()
  flat = {}
  for key, value in hparams.items():
    name = f"{prefix}{key}"
    if hasattr(value, "to_dict") or isinstance(value, Mapping):
      flat.update(_flatten_hparams(value, name + "."))
    elif isinstance(value, (bool, int, str)) or (isinstance(value, float)
                                                 and math.isfinite(value)):
      flat[name] = value
    else:
      flat[name] = str(value)
  return flat


# jax's monitoring event for one XLA compile (or persistent-cache load), from jax._src.dispatch.
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class CompileTime:
  """Seconds XLA spent compiling the programs that the current thread ran for the first
  time while the `with` block was open (a program loaded from the persistent compilation
  cache counts its load), and how many programs. Compiles in other threads (e.g. judges
  training beside CoT-SFT) are not counted. Uses jax's monitoring events.

    with metrics.CompileTime() as compiled:
      run()
    compiled.seconds, compiled.programs
  """

  _lock = threading.Lock()
  _open: dict[int, list[CompileTime]] = {}  # Thread id -> the blocks open in it.
  _listening = False

  def __init__(self):
    self.seconds = 0.0
    self.programs = 0

  def __enter__(self) -> CompileTime:
    with CompileTime._lock:
      if not CompileTime._listening:
        jax.monitoring.register_event_duration_secs_listener(CompileTime._record)
        CompileTime._listening = True
      CompileTime._open.setdefault(threading.get_ident(), []).append(self)
    return self

  def __exit__(self, *exc_info) -> None:
    with CompileTime._lock:
      blocks = CompileTime._open[threading.get_ident()]
      blocks.remove(self)
      if not blocks:
        del CompileTime._open[threading.get_ident()]

  @staticmethod
  def _record(event: str, duration: float, **_) -> None:
    if event != COMPILE_EVENT:
      return
    with CompileTime._lock:
      for block in CompileTime._open.get(threading.get_ident(), ()):
        block.seconds += duration
        block.programs += 1

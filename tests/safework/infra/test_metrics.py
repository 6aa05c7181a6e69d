"""Tests of safework/infra/metrics.py: files read back exactly, console lines, late fetching,
phase timers, compile time."""

import io
import json
import math
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tensorboardX.proto import plugin_hparams_pb2

from safework.infra.metrics import CompileTime, LateMetrics, MetricWriter, Timer


class FakeClock:
  def __init__(self):
    self.now = 100.0

  def __call__(self) -> float:
    return self.now


class Recorder:
  """A ScalarWriter that converts values with float() only when they are written."""

  def __init__(self):
    self.written = []

  def write_scalars(self, step, scalars):
    self.written.append((step, {name: float(value) for name, value in scalars.items()}))


def _events(logdir):
  """All events of the run, read with TensorFlow's own event-file reader."""
  from tensorflow.python.summary.summary_iterator import summary_iterator  # Slow import.
  paths = sorted(logdir.glob("events.out.tfevents.*"))
  assert len(paths) == 1
  return list(summary_iterator(str(paths[0])))


def test_scalars_read_back_from_tensorboard_and_jsonl(tmp_path):
  with MetricWriter(tmp_path, console=False) as writer:
    writer.write_scalars(1, {"loss": 0.5, "reward/safety": np.float32(0.25), "count": 3})
    writer.write_scalars(2, {"loss": jnp.bfloat16(1.5), "kl": float("nan"),
                             "ratio/max": float("inf"), "ratio/min": -math.inf})
  scalars = {(value.tag, event.step): value.simple_value
             for event in _events(tmp_path) for value in event.summary.value}
  expected = {("loss", 1): 0.5, ("reward/safety", 1): 0.25, ("count", 1): 3.0,
              ("loss", 2): 1.5, ("ratio/max", 2): math.inf, ("ratio/min", 2): -math.inf}
  assert math.isnan(scalars.pop(("kl", 2)))
  assert scalars == expected
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert lines == [
      '{"step": 1, "loss": 0.5, "reward/safety": 0.25, "count": 3.0}',
      '{"step": 2, "loss": 1.5, "kl": NaN, "ratio/max": Infinity, "ratio/min": -Infinity}',
  ]
  assert math.isnan(json.loads(lines[1])["kl"])


def test_jsonl_appends_across_writers(tmp_path):
  with MetricWriter(tmp_path, console=False) as writer:
    writer.write_scalars(1, {"a": 1.0})
  with MetricWriter(tmp_path, console=False) as writer:
    writer.write_scalars(2, {"a": 2.0})
  lines = (tmp_path / "metrics.jsonl").read_text()
  assert lines == '{"step": 1, "a": 1.0}\n{"step": 2, "a": 2.0}\n'


def test_hparams_json_and_tensorboard_session(tmp_path):
  hparams = {"rl": {"loss": {"name": "cpgd", "clip_eps": 0.2}, "group_size": 8},
             "use_kl": True, "stages": ("sft", "rl"), "ref": None}
  with MetricWriter(tmp_path, console=False) as writer:
    writer.write_hparams(hparams)
  expected = {"rl.loss.name": "cpgd", "rl.loss.clip_eps": 0.2, "rl.group_size": 8,
              "use_kl": True, "stages": "('sft', 'rl')", "ref": "None"}
  assert json.loads((tmp_path / "hparams.json").read_text()) == expected
  recorded = {}
  for event in _events(tmp_path):
    for value in event.summary.value:
      if value.metadata.plugin_data.plugin_name == "hparams":
        data = plugin_hparams_pb2.HParamsPluginData.FromString(
            value.metadata.plugin_data.content)
        for name, v in data.session_start_info.hparams.items():
          recorded[name] = v.WhichOneof("kind"), getattr(v, v.WhichOneof("kind"))
  assert recorded["rl.loss.name"] == ("string_value", "cpgd")
  assert recorded["rl.group_size"] == ("number_value", 8.0)
  assert recorded["rl.loss.clip_eps"] == ("number_value", 0.2)
  assert recorded["use_kl"] == ("bool_value", True)
  assert set(recorded) == set(expected)


def test_plain_console_lines_with_selected_keys_and_rate():
  stream, clock = io.StringIO(), FakeClock()
  writer = MetricWriter(None, total_steps=10, console_keys=("loss", "reward", "absent"),
                        stream=stream, clock=clock)
  writer.write_scalars(1, {"kl": 0.1, "reward": 0.123456, "loss": 2.0})
  clock.now += 4.0
  writer.write_scalars(3, {"loss": float("nan"), "reward": 1e-5})
  writer.write_scalars(4, {"loss": 1.0})  # a burst: written right after step 3
  writer.close()
  assert stream.getvalue().splitlines() == [
      "step 1/10 | loss 2 | reward 0.1235",
      "step 3/10 | loss nan | reward 1e-05 | 0.5 steps/s",
      "step 4/10 | loss 1 | 0.75 steps/s",  # the mean since step 1, not 1 step in 0 s
  ]


def test_tty_console_shows_a_progress_bar():
  class Tty(io.StringIO):
    def isatty(self):
      return True
  stream = Tty()
  with MetricWriter(None, total_steps=10, console_keys=("loss",), stream=stream) as writer:
    writer.write_scalars(4, {"loss": 0.25, "kl": 3.0})
  shown = stream.getvalue()
  assert "4/10" in shown and "loss=0.25" in shown and "kl" not in shown


def test_non_primary_process_writes_nothing(tmp_path):
  stream = io.StringIO()
  with MetricWriter(tmp_path / "run", stream=stream, primary=False) as writer:
    writer.write_scalars(1, {"a": 1.0})
    writer.write_hparams({"b": 2})
  assert not (tmp_path / "run").exists() and stream.getvalue() == ""


def test_bad_metric_values_are_named(tmp_path):
  with MetricWriter(tmp_path, console=False) as writer:
    with pytest.raises(ValueError, match=r"Metric 'reward' must be a scalar number, got "
                       r"ndarray with shape \(2,\)"):
      writer.write_scalars(1, {"reward": np.zeros(2)})
    with pytest.raises(ValueError, match="Metric 'stage' must be a scalar number"):
      writer.write_scalars(1, {"stage": "sft"})


def test_late_metrics_write_step_n_when_n_plus_1_is_pushed():
  recorder = Recorder()
  late = LateMetrics(recorder)
  step_fn = jax.jit(lambda x: {"loss": x * 2, "reward": {"safety": x + 1, "value": x - 1}})
  late.push(0, step_fn(jnp.float32(1.0)), host={"time/total_s": 0.5})
  assert recorder.written == [] and late.pending_step == 0
  late.push(1, step_fn(jnp.float32(3.0)))
  assert recorder.written == [
      (0, {"loss": 2.0, "reward/safety": 2.0, "reward/value": 0.0, "time/total_s": 0.5})]
  late.flush()
  assert recorder.written[1] == (1, {"loss": 6.0, "reward/safety": 4.0, "reward/value": 2.0})
  assert late.pending_step is None
  late.flush()
  assert len(recorder.written) == 2
  with pytest.raises(ValueError, match="steps must increase: got 1 after 5"):
    late.push(5, {"a": jnp.ones(())})
    late.push(1, {"a": jnp.ones(())})


def test_late_metrics_never_read_the_step_just_pushed():
  class NotReady:
    """A device value that must not be read before the next step is pushed."""

    def __init__(self, value):
      self.value, self.ready = value, False

    def __float__(self):
      if not self.ready:
        raise AssertionError("read before the next step was pushed")
      return self.value

  recorder = Recorder()
  late = LateMetrics(recorder)
  first, second = NotReady(1.5), NotReady(2.5)
  late.push(7, {"loss": first})
  first.ready = True
  late.push(8, {"loss": second})  # Writes step 7 and must not touch step 8's value.
  second.ready = True
  late.flush()
  assert recorder.written == [(7, {"loss": 1.5}), (8, {"loss": 2.5})]


def test_late_metrics_into_a_metric_writer(tmp_path):
  with MetricWriter(tmp_path, console=False) as writer:
    late = LateMetrics(writer)
    late.push(1, {"nan": jnp.float32(jnp.nan)})
    late.flush()
  assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1, "nan": NaN}\n'


def test_timer_accumulates_phases_and_tokens_per_second():
  clock = FakeClock()
  timer = Timer(clock=clock)
  for seconds in (1.0, 0.5):
    with timer.phase("sampling"):
      clock.now += seconds
  with timer.phase("update"):
    clock.now += 2.5
  with pytest.raises(RuntimeError):
    with timer.phase("rewards"):
      clock.now += 1.0
      raise RuntimeError("a failing phase still counts its time")
  timer.add_tokens(600)
  timer.add_tokens(900)
  assert timer.summary() == {"time/sampling_s": 1.5, "time/update_s": 2.5,
                             "time/rewards_s": 1.0, "time/total_s": 5.0,
                             "throughput/tokens_per_s": 300.0}
  assert timer.summary() == {"time/total_s": 0.0}  # Reset by the previous summary.


def test_compile_time_counts_this_threads_first_calls_only():
  scale = 3.0  # A constant of the program: a fresh function, compiled on its first call.
  fn = jax.jit(lambda x: jnp.sin(x) * scale + jnp.cumsum(x))
  x = jnp.arange(16.0)
  with CompileTime() as first, CompileTime() as nested:
    fn(x).block_until_ready()
  assert first.programs == nested.programs >= 1 and first.seconds == nested.seconds > 0
  with CompileTime() as again:
    fn(x).block_until_ready()  # Compiled already: nothing counted.
  assert again.programs == 0 and again.seconds == 0
  # A compile in another thread is not this block's.
  other = threading.Thread(target=lambda: jax.jit(lambda y: y * 5.0 - 1.0)(x).block_until_ready())
  with CompileTime() as here:
    other.start()
    other.join()
  assert here.programs == 0
  with CompileTime() as late:
    fn(jnp.arange(8.0)).block_until_ready()  # A new shape compiles again.
  assert late.programs >= 1

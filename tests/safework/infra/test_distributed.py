"""Multi-host start-up decisions, per-host data shards and workdir paths."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import jax
import pytest
from etils import epath

from safework.infra import config as config_lib
from safework.infra import distributed

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture
def calls(monkeypatch):
  """Records calls of jax.distributed.initialize instead of starting a coordinator."""
  recorded = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: recorded.append(kw))
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: bool(recorded))
  return recorded


def _expected(coordinator=None, num_processes=None, process_id=None, timeout=300):
  return [{"coordinator_address": coordinator, "num_processes": num_processes,
           "process_id": process_id, "initialization_timeout": timeout}]


def test_single_host_calls_nothing(calls):
  info = distributed.initialize(None, environ={})
  assert calls == []
  assert info == distributed.ProcessInfo(index=0, count=1, multi_host=False)
  assert info.is_primary


def test_explicit_config_is_passed_through(calls):
  cfg = {"coordinator_address": "10.0.0.2:1234", "num_processes": 4, "process_id": 3,
         "initialization_timeout_s": 60}
  info = distributed.initialize(cfg, environ={"JAX_NUM_PROCESSES": "8"})
  assert calls == _expected("10.0.0.2:1234", 4, 3, timeout=60)
  assert info.multi_host


def test_explicit_single_process_is_single_host(calls):
  distributed.initialize({"coordinator_address": "localhost:1", "num_processes": 1,
                          "process_id": 0}, environ={})
  assert calls == []


def test_environment_variables_give_the_settings(calls):
  env = {"JAX_COORDINATOR_ADDRESS": "head:8476", "JAX_NUM_PROCESSES": "2",
         "JAX_PROCESS_ID": "1"}
  distributed.initialize(None, environ=env)
  assert calls == _expected("head:8476", 2, 1)


def test_coordinator_alone_lets_jax_detect_the_rest(calls):
  distributed.initialize(None, environ={"JAX_COORDINATOR_ADDRESS": "head:8476"})
  assert calls == _expected("head:8476")


@pytest.mark.parametrize("env, multi_host", [
    ({"TPU_WORKER_HOSTNAMES": "t1k-w-0,t1k-w-1,t1k-w-2,t1k-w-3"}, True),
    ({"TPU_WORKER_HOSTNAMES": "t1k-w-0"}, False),
    ({"TPU_PROCESS_ADDRESSES": "10.0.0.1:8476,10.0.0.2:8476"}, True),
    ({"MEGASCALE_NUM_SLICES": "2", "TPU_WORKER_HOSTNAMES": "w-0"}, True),
    ({"SLURM_NTASKS": "1"}, False),
    ({"SLURM_NTASKS": "16"}, True),
    ({"OMPI_COMM_WORLD_SIZE": "2"}, True),
])
def test_detected_clusters(calls, env, multi_host):
  distributed.initialize(None, environ=env)
  assert calls == (_expected() if multi_host else [])


@pytest.mark.parametrize("mode, env, expected", [
    ("auto", {"SAFEWORK_DISTRIBUTED": "on"}, _expected()),
    ("auto", {"SAFEWORK_DISTRIBUTED": "off", "TPU_WORKER_HOSTNAMES": "a,b"}, []),
    ("on", {}, _expected()),
    ("off", {"TPU_WORKER_HOSTNAMES": "a,b"}, []),
    # The config's explicit mode wins over the variable.
    ("off", {"SAFEWORK_DISTRIBUTED": "on"}, []),
])
def test_modes(calls, mode, env, expected):
  distributed.initialize({"mode": mode}, environ=env)
  assert calls == expected


def test_second_call_does_not_initialize_again(calls):
  env = {"TPU_WORKER_HOSTNAMES": "a,b"}
  distributed.initialize(None, environ=env)
  distributed.initialize(None, environ=env)
  assert len(calls) == 1


@pytest.mark.parametrize("cfg, env, message", [
    ({"process_id": 4, "num_processes": 4}, {}, r"distributed: process_id=4 is outside "
                                                r"\[0, num_processes=4\)"),
    ({"process_id": 0}, {}, "process_id is set but num_processes is not"),
    ({"coordinator_address": "head"}, {}, "coordinator_address is 'head'; expected 'host:port'"),
    ({"num_processes": 0}, {}, "num_processes must be >= 1"),
    ({"mode": "off", "num_processes": 2}, {}, "mode is 'off'"),
    ({"mode": "multi"}, {}, "'distributed.mode' is 'multi'"),
    ({"num_procs": 2}, {}, "Unknown field 'distributed.num_procs'.*did you mean 'num_processes'"),
    (None, {"JAX_NUM_PROCESSES": "two"}, "JAX_NUM_PROCESSES='two' is not an integer"),
    (None, {"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"},
     r"JAX_PROCESS_ID=2 is outside \[0, environment variable JAX_NUM_PROCESSES=2\)"),
    (None, {"SAFEWORK_DISTRIBUTED": "yes"}, "SAFEWORK_DISTRIBUTED='yes'; choose one of"),
    (None, {"SLURM_NTASKS": "many"}, "SLURM_NTASKS='many' is not an integer"),
])
def test_bad_settings_name_the_field(calls, cfg, env, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    distributed.initialize(cfg, environ=env)
  assert calls == []


def _shards(count, num_records, drop_remainder=False):
  return [distributed.DataShard(i, count).bounds(num_records, drop_remainder)
          for i in range(count)]


def test_shard_bounds_hand_computed():
  assert _shards(4, 10) == [(0, 3), (3, 6), (6, 8), (8, 10)]
  assert _shards(4, 10, drop_remainder=True) == [(0, 2), (2, 4), (4, 6), (6, 8)]
  assert _shards(3, 2) == [(0, 1), (1, 2), (2, 2)]


@pytest.mark.parametrize("count", [1, 2, 3, 7, 8])
@pytest.mark.parametrize("num_records", [0, 1, 5, 64, 1001])
def test_shards_tile_the_records(count, num_records):
  shards = _shards(count, num_records)
  assert shards[0][0] == 0 and shards[-1][1] == num_records
  assert all(a[1] == b[0] for a, b in zip(shards, shards[1:]))
  sizes = [stop - start for start, stop in shards]
  assert max(sizes) - min(sizes) <= 1
  even = _shards(count, num_records, drop_remainder=True)
  assert {stop - start for start, stop in even} == {num_records // count}


def test_data_shard_follows_the_process(monkeypatch):
  monkeypatch.setattr(jax, "process_index", lambda: 2)
  monkeypatch.setattr(jax, "process_count", lambda: 4)
  shard = distributed.data_shard()
  assert shard == distributed.DataShard(index=2, count=4)
  assert shard.bounds(10) == (6, 8)
  assert distributed.per_host_batch_size(64) == 16
  with pytest.raises(ValueError, match="rl.batch_size=30 must be a positive multiple of the "
                                       "process count 4"):
    distributed.per_host_batch_size(30, field="rl.batch_size")
  info = distributed.initialize(None, environ={})
  assert (info.index, info.count, info.is_primary) == (2, 4, False)


def test_bad_data_shard():
  with pytest.raises(ValueError, match=r"index 4 must lie in \[0, count=4\)"):
    distributed.DataShard(4, 4)


def test_local_paths_become_absolute(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert distributed.resolve_path("runs/a") == epath.Path(tmp_path / "runs" / "a")
  assert distributed.resolve_path("~/w") == epath.Path(tmp_path / "home" / "w")
  assert not distributed.is_remote(tmp_path)


def test_bucket_urls_are_kept():
  path = distributed.resolve_path("gs://my-bucket/runs/exp 1/")
  assert os.fspath(path) == "gs://my-bucket/runs/exp 1"
  assert os.fspath(path / "checkpoints") == "gs://my-bucket/runs/exp 1/checkpoints"
  assert distributed.is_remote(path)


@pytest.mark.parametrize("path, message", [
    ("", "workdir is empty"),
    ("gcs://bucket/x", "unsupported scheme 'gcs'"),
    ("gs:///x", "names no bucket"),
    ("gs:/bucket/x", "missing '/'"),
])
def test_bad_paths(path, message):
  with pytest.raises(ValueError, match=message):
    distributed.resolve_path(path)


def test_make_workdir_creates_parents(tmp_path):
  workdir = distributed.make_workdir(tmp_path / "a" / "b")
  assert workdir.is_dir() and workdir == epath.Path(tmp_path / "a" / "b")
  assert distributed.make_workdir(tmp_path / "a" / "b") == workdir  # Exists: no error.


_WORKER = """
import json, sys
from safework.infra import distributed
info = distributed.initialize(None)
shard = distributed.data_shard()
print(json.dumps({"index": info.index, "count": info.count, "multi": info.multi_host,
                  "devices": __import__("jax").device_count(),
                  "bounds": shard.bounds(11)}))
"""


def test_two_processes_initialize_and_split_the_data(tmp_path):
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  procs = []
  for process_id in range(2):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JAX_", "TPU_", "SLURM_", "OMPI_", "MEGASCALE_"))}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES="2",
               JAX_PROCESS_ID=str(process_id), PYTHONPATH=str(ROOT))
    procs.append(subprocess.Popen([sys.executable, "-c", _WORKER], env=env, cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  results = []
  for proc in procs:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    results.append(json.loads(out.strip().splitlines()[-1]))
  assert [(r["index"], r["count"], r["multi"]) for r in results] == [(0, 2, True), (1, 2, True)]
  assert [r["devices"] for r in results] == [4, 4]  # Both hosts' devices, globally.
  assert [tuple(r["bounds"]) for r in results] == [(0, 6), (6, 11)]

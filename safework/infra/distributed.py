"""Multi-host start-up, this host's shard of the data, and workdirs that may live on GCS.

On a pod every host runs the same program. The entry point calls, before any jax op:

  process = distributed.initialize(config.get('distributed'))
  shard = distributed.data_shard()           # feeds grain's ShardOptions(index, count)
  per_host_batch = distributed.per_host_batch_size(config.batch_size)
  workdir = distributed.resolve_path(FLAGS.workdir)   # a local path or gs://bucket/run
  checkpoints = workdir / 'checkpoints'

Whether the run is multi-host (`mode='auto'`), decided without any network access:
  1. explicit settings, from the config slice or else from the environment variables
     JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID (JAX itself reads only the
     first): multi-host when the process count is above 1, or unknown beside a coordinator;
  2. a cluster JAX detects by itself whose environment lists several processes
     (TPU_WORKER_HOSTNAMES or TPU_PROCESS_ADDRESSES on GKE/xpk, MEGASCALE_NUM_SLICES for
     multislice, SLURM_NTASKS, OMPI_COMM_WORLD_SIZE): `jax.distributed.initialize()` then
     fills in what the settings leave unset;
  3. otherwise single host, and nothing is called.
A TPU VM made by `gcloud` lists its workers only on the metadata server, which this module
never queries; launch/tpu_vm.sh therefore sets SAFEWORK_DISTRIBUTED=on, and mode 'on' always
calls `jax.distributed.initialize()`, which reads the metadata. SAFEWORK_DISTRIBUTED (auto,
on or off) takes effect only while the config's mode is left at 'auto'.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any, Literal

import jax
from etils import epath

from safework.infra import config as config_lib

MODE_ENV = "SAFEWORK_DISTRIBUTED"
_EXPLICIT_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
# Environment variables (JAX's cluster detection reads them too) that say how many processes
# a cluster runs: a comma-separated host list, or a count.
_HOST_LISTS = ("TPU_PROCESS_ADDRESSES", "TPU_WORKER_HOSTNAMES")
_COUNTS = ("MEGASCALE_NUM_SLICES", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")
_REMOTE_SCHEMES = ("gs", "s3")


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
  """How processes find each other (the `distributed` slice of an experiment config).

  Attributes:
    mode: 'auto' detects (see the module docstring), 'on' always initialises the
      distributed system, 'off' never does.
    coordinator_address: 'host:port' of process 0, or None to take it from the
      environment or from JAX's cluster detection.
    num_processes: the number of processes (hosts), or None likewise.
    process_id: this process's index in [0, num_processes), or None likewise.
    initialization_timeout_s: seconds to wait for every process to connect.
  """
  mode: Literal["auto", "on", "off"] = "auto"
  coordinator_address: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  initialization_timeout_s: int = 300

  def __post_init__(self):
    _check_settings(self.coordinator_address, self.num_processes, self.process_id, False)
    if self.initialization_timeout_s < 1:
      raise ValueError(f"initialization_timeout_s must be >= 1, got "
                       f"{self.initialization_timeout_s}")
    if self.mode == "off" and (self.coordinator_address or self.num_processes not in (None, 1)):
      raise ValueError("mode is 'off' but coordinator_address/num_processes describe a "
                       "multi-host run; set mode to 'auto' or 'on'")


@dataclasses.dataclass(frozen=True)
class ProcessInfo:
  """Where this process stands after `initialize`.

  Attributes:
    index: this process's index (`jax.process_index()`).
    count: the number of processes (`jax.process_count()`).
    multi_host: whether `jax.distributed.initialize` was called.
  """
  index: int
  count: int
  multi_host: bool

  @property
  def is_primary(self) -> bool:
    """Whether this process writes what only one should (reports, configs, plots)."""
    return self.index == 0


def initialize(config: Any = None, environ: Mapping[str, str] | None = None) -> ProcessInfo:
  """Starts JAX's distributed system when the run spans several hosts; a no-op otherwise.

  Call it first, before any jax computation; a second call does not initialise again.

  Args:
    config: the `distributed` config slice (ConfigDict, mapping, DistributedConfig or None
      for the defaults).
    environ: the environment to read (os.environ by default).

  Returns:
    this process's index and the process count.

  Raises:
    ConfigError: a bad config field or environment variable; the message names it.
  """
  settings = config_lib.from_config(DistributedConfig, config, path="distributed")
  environ = os.environ if environ is None else environ
  kwargs = _initialize_kwargs(settings, environ)
  if kwargs is not None and not jax.distributed.is_initialized():
    logging.info("jax.distributed.initialize(%s)", kwargs)
    jax.distributed.initialize(**kwargs)
  info = ProcessInfo(index=jax.process_index(), count=jax.process_count(),
                     multi_host=jax.distributed.is_initialized())
  logging.info("Process %d of %d (multi-host: %s)", info.index, info.count, info.multi_host)
  return info


def _initialize_kwargs(settings: DistributedConfig, environ: Mapping[str, str]
                       ) -> dict[str, Any] | None:
  """The arguments for `jax.distributed.initialize`, or None for a single-host run."""
  mode = settings.mode
  if mode == "auto" and environ.get(MODE_ENV):
    mode = environ[MODE_ENV]
    if mode not in ("auto", "on", "off"):
      raise config_lib.ConfigError(f"Environment variable {MODE_ENV}={mode!r}; choose one of "
                                   f"'auto', 'on', 'off'")
  explicit = (settings.coordinator_address, settings.num_processes, settings.process_id)
  if explicit == (None, None, None):
    explicit = _explicit_from_env(environ)
  coordinator, num_processes, process_id = explicit
  if mode == "off":
    return None
  if mode == "auto":
    if coordinator is None and num_processes is None:
      multi_host = _detected_process_count(environ) > 1
    else:
      multi_host = num_processes is None or num_processes > 1
    if not multi_host:
      return None
  return {"coordinator_address": coordinator, "num_processes": num_processes,
          "process_id": process_id,
          "initialization_timeout": settings.initialization_timeout_s}


def _explicit_from_env(environ: Mapping[str, str]) -> tuple[str | None, int | None, int | None]:
  coordinator = environ.get("JAX_COORDINATOR_ADDRESS") or None
  counts = []
  for name in _EXPLICIT_ENV[1:]:
    value = environ.get(name)
    try:
      counts.append(None if value in (None, "") else int(value))
    except ValueError:
      raise config_lib.ConfigError(f"Environment variable {name}={value!r} is not an "
                                   f"integer") from None
  num_processes, process_id = counts
  _check_settings(coordinator, num_processes, process_id, True)
  return coordinator, num_processes, process_id


def _check_settings(coordinator: str | None, num_processes: int | None,
                    process_id: int | None, from_env: bool) -> None:
  """Fails unless the explicit settings are consistent, naming the field or variable."""
  fields = ("coordinator_address", "num_processes", "process_id")
  coordinator_name, count_name, id_name = (
      [f"environment variable {name}" for name in _EXPLICIT_ENV] if from_env else fields)
  if coordinator is not None:
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
      raise config_lib.ConfigError(f"{coordinator_name} is {coordinator!r}; expected "
                                   f"'host:port'")
  if num_processes is not None and num_processes < 1:
    raise config_lib.ConfigError(f"{count_name} must be >= 1, got {num_processes}")
  if process_id is not None:
    if num_processes is None:
      raise config_lib.ConfigError(f"{id_name} is set but {count_name} is not")
    if not 0 <= process_id < num_processes:
      raise config_lib.ConfigError(f"{id_name}={process_id} is outside [0, {count_name}="
                                   f"{num_processes})")


def _detected_process_count(environ: Mapping[str, str]) -> int:
  """How many processes the cluster environment lists (1 when it lists none)."""
  count = 1
  for name in _HOST_LISTS:
    if environ.get(name):
      count = max(count, len([h for h in environ[name].split(",") if h.strip()]))
  for name in _COUNTS:
    value = environ.get(name, "")
    if value.strip():
      if not value.strip().isdigit():
        raise config_lib.ConfigError(f"Environment variable {name}={value!r} is not an "
                                     f"integer")
      count = max(count, int(value))
  return count


@dataclasses.dataclass(frozen=True)
class DataShard:
  """This host's share of a dataset: shard `index` of `count` (one shard per process).

  Attributes:
    index: this shard, in [0, count).
    count: how many shards the dataset is split into.
  """
  index: int
  count: int

  def __post_init__(self):
    if self.count < 1 or not 0 <= self.index < self.count:
      raise ValueError(f"DataShard index {self.index} must lie in [0, count={self.count})")

  def bounds(self, num_records: int, drop_remainder: bool = False) -> tuple[int, int]:
    """The records `[start, stop)` of this shard, contiguous and balanced.

    The first `num_records % count` shards hold one record more, so the shards of all
    hosts tile `[0, num_records)` exactly. With `drop_remainder`, each holds
    `num_records // count` records so that every host runs the same number of steps
    (the last records are skipped).
    """
    if num_records < 0:
      raise ValueError(f"num_records must be >= 0, got {num_records}")
    size, extra = divmod(num_records, self.count)
    if drop_remainder:
      return self.index * size, (self.index + 1) * size
    start = self.index * size + min(self.index, extra)
    return start, start + size + (self.index < extra)


def data_shard() -> DataShard:
  """This process's data shard: index `jax.process_index()` of `jax.process_count()`."""
  return DataShard(index=jax.process_index(), count=jax.process_count())


def per_host_batch_size(global_batch_size: int, field: str = "batch_size") -> int:
  """The examples each host loads per step: the global batch split evenly over processes.

  Raises:
    ValueError: the global batch does not divide by the process count (names `field`).
  """
  count = jax.process_count()
  if global_batch_size < 1 or global_batch_size % count:
    raise ValueError(f"{field}={global_batch_size} must be a positive multiple of the process "
                     f"count {count}")
  return global_batch_size // count


def is_remote(path: str | os.PathLike) -> bool:
  """Whether `path` is a URL of object storage (gs://, s3://) rather than a local path."""
  return "://" in os.fspath(path)


def resolve_path(path: str | os.PathLike, field: str = "workdir") -> epath.Path:
  """A workdir or checkpoint path as an `epath.Path`: URLs kept, local paths made absolute.

  Args:
    path: `gs://bucket/dir`, `s3://bucket/dir`, or a local path (`~` expanded).
    field: the flag or config field it came from, for error messages.

  Raises:
    ValueError: an empty path, an unsupported scheme, or a URL without a bucket.
  """
  text = os.fspath(path)
  if not text.strip():
    raise ValueError(f"{field} is empty")
  if is_remote(text):
    scheme, _, rest = text.partition("://")
    if scheme not in _REMOTE_SCHEMES:
      raise ValueError(f"{field}={text!r}: unsupported scheme {scheme!r}; use a local path or "
                       f"one of {', '.join(s + '://' for s in _REMOTE_SCHEMES)}")
    if not rest.split("/")[0]:
      raise ValueError(f"{field}={text!r} names no bucket")
    return epath.Path(text.rstrip("/"))
  if text.startswith(("gs:/", "s3:/")):
    raise ValueError(f"{field}={text!r} looks like a URL with a missing '/'")
  return epath.Path(os.path.abspath(os.path.expanduser(text)))


def make_workdir(path: str | os.PathLike, field: str = "workdir") -> epath.Path:
  """`resolve_path(path)`, created with its parents if missing (every host may call it)."""
  workdir = resolve_path(path, field)
  workdir.mkdir(parents=True, exist_ok=True)
  return workdir

"""Checkpoints of a training run: array state and host state, over orbax-checkpoint.

A checkpoint at step N is one orbax step directory with two items:

  <directory>/<N>/state/  the array pytree (parameters, optimiser state, RNG keys, step),
                          written by orbax's standard PyTree handler (tensorstore, OCDBT);
  <directory>/<N>/host/   a JSON document of host state (the grain iterator state, Lagrange
                          multipliers, the ladder stage name, metrics history).

Usage:

  ckpt = Checkpointer(workdir / 'checkpoints', max_to_keep=3, save_interval_steps=100)
  restored = ckpt.restore(None, abstract_state)   # None: nothing saved yet
  if restored is not None:
    state, host_state = restored
  for step in ...:
    ckpt.save(step, state, {'loader': it.get_state(), 'stage': 'm3rl_a'})
  ckpt.close()

Guarantees (each is tested):
  - A run never loses a finished checkpoint. Orbax writes a step under a temporary name
    (`<N>.orbax-checkpoint-tmp*`) and renames it when complete (on GCS it writes in place
    and commits with a final `commit_success.txt`), so a save killed midway is never
    listed; leftovers are removed, in the background, when a `Checkpointer` opens the
    directory. Old steps are pruned here, not by orbax, and only
    among finished steps after the newest save has finished: the newest finished step is
    never deleted, not even when a later save fails.
  - Restored arrays equal the saved ones bitwise, with their dtypes (bf16, int32, uint32),
    placed in the shardings of `abstract_state` (a sharded state restores sharded).
  - Typed PRNG keys (`jax.random.key`, any implementation) round-trip. Orbax 0.12.8
    stores a typed key array as its raw uint32 key data (shape `key.shape +
    impl.key_shape`) and records the implementation name in the step's array metadata
    (`random_key_impl`); on restore it re-wraps the data with that implementation. So
    no conversion is needed here, and the abstract leaf of a key is simply the key's
    own `ShapeDtypeStruct` (from the live state or `jax.eval_shape`).

`save` in async mode returns once the arrays are copied to host memory, so the caller may
donate or overwrite the device buffers right away; the write continues in a thread.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

PyTree = Any

_STATE = "state"
_HOST = "host"


class Checkpointer:
  """Saves and restores `(array state, host state)` pairs at integer steps.

  Attributes:
    directory: the root directory (local path or `gs://...`) holding one folder per step.
  """

  def __init__(self, directory: str | epath.PathLike, max_to_keep: int | None = 3,
               save_interval_steps: int = 1, async_save: bool = True):
    """Opens (and creates) a checkpoint directory.

    Args:
      directory: local path (made absolute) or a `gs://` URL.
      max_to_keep: how many finished checkpoints to keep, newest first; None keeps all.
      save_interval_steps: `save` writes only at steps divisible by this (and the first
        save of an empty directory), unless `force=True`.
      async_save: write in a background thread; `wait()` blocks until it is durable.
    """
    if max_to_keep is not None and (not isinstance(max_to_keep, int) or max_to_keep < 1):
      raise ValueError(f"Checkpointer max_to_keep must be None or an int >= 1, got "
                       f"{max_to_keep!r}")
    if not isinstance(save_interval_steps, int) or save_interval_steps < 1:
      raise ValueError(f"Checkpointer save_interval_steps must be an int >= 1, got "
                       f"{save_interval_steps!r}")
    path = epath.Path(directory)
    if "://" not in str(directory):
      path = epath.Path(path.resolve())
    self.directory = path
    self._max_to_keep = max_to_keep
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=save_interval_steps,
        max_to_keep=None,  # Pruned in `_prune`, only ever among finished steps.
        enable_async_checkpointing=async_save,
        cleanup_tmp_directories=True,
        create=True,
    )
    self._manager = ocp.CheckpointManager(path, options=options)

  def save(self, step: int, state: PyTree, host_state: Mapping[str, Any],
           force: bool = False) -> bool:
    """Saves `state` (arrays) and `host_state` (JSON) at `step`.

    Args:
      step: the training step; must be larger than every step already saved.
      state: a pytree of jax arrays (typed PRNG keys allowed).
      host_state: a dict of str keys whose values are dicts, lists, str, int, float
        (NaN and inf included), bool or None; it round-trips exactly.
      force: save even when `step` is not on the save interval.

    Returns:
      Whether a checkpoint was written (False off the interval, or at a step not larger
      than the newest saved one).
    """
    _check_json(host_state, "host_state")
    self._finish_pending()
    if force and step in self._manager.all_steps():
      raise ValueError(f"A checkpoint for step {step} already exists in {self.directory}")
    args = ocp.args.Composite(**{_STATE: ocp.args.StandardSave(state),
                                 _HOST: ocp.args.JsonSave(dict(host_state))})
    return self._manager.save(step, args=args, force=force)

  def latest_step(self) -> int | None:
    """The newest saved step (one still being written in async mode included), or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """The saved steps, ascending."""
    return sorted(self._manager.all_steps())

  def restore(self, step: int | None, abstract_state: PyTree
              ) -> tuple[PyTree, dict[str, Any]] | None:
    """Restores the checkpoint at `step` (None: the newest one).

    Args:
      step: a saved step, or None for the newest.
      abstract_state: the target tree: leaves are `jax.ShapeDtypeStruct`s (or arrays)
        whose `.sharding` says where each restored array goes; a leaf without a
        sharding goes to the first local device.

    Returns:
      `(state, host_state)`, or None when `step` is None and nothing is saved.

    Raises:
      FileNotFoundError: `step` is given but not saved; the message names the directory
        and the available steps.
    """
    self._finish_pending()
    steps = self.all_steps()
    if step is None:
      if not steps:
        return None
      step = steps[-1]
    elif step not in steps:
      raise FileNotFoundError(f"No finished checkpoint for step {step} in {self.directory}; "
                              f"available steps: {steps}")
    target = jax.tree_util.tree_map_with_path(_abstract_leaf, abstract_state)
    args = ocp.args.Composite(**{_STATE: ocp.args.StandardRestore(target),
                                 _HOST: ocp.args.JsonRestore()})
    restored = self._manager.restore(step, args=args)
    return restored[_STATE], restored[_HOST]

  def wait(self) -> None:
    """Blocks until every started save is durable, then prunes old checkpoints."""
    self._finish_pending()

  def close(self) -> None:
    """Waits for pending saves and releases orbax's threads."""
    try:
      self._finish_pending()
    finally:
      self._manager.close()

  def __enter__(self) -> Checkpointer:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def _finish_pending(self) -> None:
    """Waits for an async save; on failure re-reads the directory and raises."""
    try:
      self._manager.wait_until_finished()
    except Exception as e:
      # Orbax has already dropped the failed step and the steps it meant to prune from
      # its in-memory list; the disk is the truth.
      self._manager.reload()
      raise RuntimeError(f"A checkpoint save in {self.directory} failed; finished steps "
                         f"on disk: {self.all_steps()}") from e
    self._prune()

  def _prune(self) -> None:
    if self._max_to_keep is None:
      return
    self._manager.reload()
    for step in self.all_steps()[:-self._max_to_keep]:
      logging.info("Deleting checkpoint step %d in %s (max_to_keep=%d)", step,
                   self.directory, self._max_to_keep)
      self._manager.delete(step)


def _abstract_leaf(path, leaf) -> jax.ShapeDtypeStruct:
  """A restore target for one leaf: shape, dtype and sharding."""
  if not (hasattr(leaf, "shape") and hasattr(leaf, "dtype")):
    raise TypeError(f"abstract_state{jax.tree_util.keystr(path)} is a {type(leaf).__name__}; "
                    f"expected a jax.ShapeDtypeStruct or an array")
  sharding = getattr(leaf, "sharding", None)
  if sharding is None:
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding)


def _check_json(value: Any, where: str) -> None:
  """Fails, naming the offending entry, unless `value` round-trips through JSON exactly."""
  if isinstance(value, Mapping):
    for key, item in value.items():
      if not isinstance(key, str):
        raise TypeError(f"{where} has a key {key!r} of type {type(key).__name__}; JSON keys "
                        f"must be str")
      _check_json(item, f"{where}[{key!r}]")
  elif isinstance(value, list):
    for i, item in enumerate(value):
      _check_json(item, f"{where}[{i}]")
  elif not (value is None or isinstance(value, (str, int, float, bool))):
    raise TypeError(f"{where} is a {type(value).__name__}, which JSON does not round-trip "
                    f"exactly; use dict, list, str, int, float, bool or None (convert "
                    f"arrays and numpy scalars with .tolist() / float())")

"""Device meshes and logical-axis sharding (t5x style, through flax's partitioning API).

Models name only logical axes (`batch, length, embed, mlp, heads, kv_heads, head_dim,
vocab, patches, layers, cache_length`); this module maps them onto a mesh over
`('data', 'fsdp', 'tensor')` with a rules table that is config data.

The standard sequence, so parameters are born sharded:

  mesh = make_mesh([('data', -1), ('fsdp', 2), ('tensor', 2)])
  abstract = jax.eval_shape(init_fn, rng)              # boxed, with logical names
  shardings = logical_shardings(abstract, mesh, rules)  # NamedShardings
  params = jax.jit(unboxed(init_fn), out_shardings=shardings)(rng)

`init_sharded` does exactly that. Inside a jitted step, activation constraints
(`nn.with_logical_constraint`) take effect under `activate(mesh, rules)`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

Rules = tuple[tuple[str, str | tuple[str, ...] | None], ...]

# Logical axis -> mesh axes. Rules are tried in order; a mesh axis already used by an
# earlier dimension of the same tensor is skipped, so activations [batch, length, embed]
# shard the batch over (data, fsdp) and leave embed whole, while parameters
# [embed, mlp] shard embed over fsdp (ZeRO-3 style) and mlp over tensor (Megatron).
DEFAULT_RULES: Rules = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("cache_length", None),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("vocab", "tensor"),
    ("patches", None),
    ("patch_in", None),
    ("layers", None),
)


def make_mesh(axes: Sequence[tuple[str, int]], devices: Sequence[jax.Device] | None = None
              ) -> Mesh:
  """A mesh from a config list of `(axis, size)`; one size may be -1 (all the rest).

  Axes are Auto-typed: sharding follows the logical rules and XLA's propagation
  (jax 0.10's `make_mesh` default is Explicit, which logical rules do not drive).

  Args:
    axes: e.g. `[('data', -1), ('fsdp', 2), ('tensor', 2)]`; names from `MESH_AXES`.
    devices: the devices to use; all of `jax.devices()` by default.
  """
  devices = list(jax.devices() if devices is None else devices)
  names = [name for name, _ in axes]
  sizes = [int(size) for _, size in axes]
  unknown = sorted(set(names) - set(MESH_AXES))
  if unknown or len(set(names)) != len(names):
    raise ValueError(f"mesh axes must be distinct names from {MESH_AXES}, got {names}")
  if sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
    raise ValueError(f"mesh sizes must be positive, with at most one -1; got {list(axes)}")
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if len(devices) % known:
      raise ValueError(f"{len(devices)} devices do not divide into mesh {list(axes)}")
    sizes[sizes.index(-1)] = len(devices) // known
  if math.prod(sizes) != len(devices):
    raise ValueError(f"mesh {dict(zip(names, sizes))} needs {math.prod(sizes)} devices, "
                     f"there are {len(devices)}")
  return jax.make_mesh(tuple(sizes), tuple(names),
                       axis_types=(jax.sharding.AxisType.Auto,) * len(names),
                       devices=devices)


def validate_rules(rules: Sequence[Sequence[Any]], mesh_axes: Sequence[str] = MESH_AXES
                   ) -> Rules:
  """Rules from config (lists welcome) as a tuple; unknown mesh axes fail by name."""
  out = []
  for rule in rules:
    if len(rule) != 2 or not isinstance(rule[0], str):
      raise ValueError(f"a sharding rule is (logical_axis, mesh_axes), got {rule!r}")
    logical, target = rule
    targets = () if target is None else (target,) if isinstance(target, str) else tuple(target)
    bad = [t for t in targets if t not in mesh_axes]
    if bad:
      raise ValueError(f"rule for {logical!r} names unknown mesh axes {bad}; "
                       f"the mesh has {tuple(mesh_axes)}")
    out.append((logical, target if target is None or isinstance(target, str) else tuple(target)))
  return tuple(out)


def _fit_to_shape(spec: PartitionSpec, shape: Sequence[int], mesh: Mesh) -> PartitionSpec:
  """Drops mesh axes that do not divide a dimension, so odd sizes stay legal.

  E.g. the vision MLP width 3420 on a tensor axis of 8 stays whole on that axis.
  """
  fitted = []
  for dim, entry in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
    axes = () if entry is None else (entry,) if isinstance(entry, str) else tuple(entry)
    kept = []
    for axis in axes:
      if dim % (math.prod(mesh.shape[a] for a in kept) * mesh.shape[axis]) == 0:
        kept.append(axis)
    fitted.append(None if not kept else kept[0] if len(kept) == 1 else tuple(kept))
  return PartitionSpec(*fitted)


def logical_to_mesh_spec(logical: PartitionSpec | Sequence[str | None], shape: Sequence[int],
                         mesh: Mesh, rules: Rules) -> PartitionSpec:
  """The mesh PartitionSpec of one array from its logical axis names."""
  with nn.logical_axis_rules(rules):
    spec = nn.logical_to_mesh(PartitionSpec(*logical))
  return _fit_to_shape(spec, shape, mesh)


def strip_metadata(tree: Any) -> Any:
  """The values of a boxed (flax partitioning metadata) tree, with no constraint applied,
  so it is safe on abstract values and inside an active mesh."""
  return jax.tree.map(
      lambda x: x.unbox(apply_constraint=False) if isinstance(x, nn.LogicallyPartitioned)
      else x.unbox() if isinstance(x, nn.meta.AxisMetadata) else x,
      tree, is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata))


def logical_shardings(abstract_tree: Any, mesh: Mesh, rules: Rules) -> Any:
  """NamedShardings for a (boxed) tree from `jax.eval_shape` of a flax init.

  Leaves without partitioning metadata are replicated.
  """
  specs = nn.get_partition_spec(abstract_tree)
  shapes = strip_metadata(abstract_tree)

  def one(spec, leaf):
    return NamedSharding(mesh, logical_to_mesh_spec(spec, leaf.shape, mesh, rules))

  return jax.tree.map(one, specs, shapes, is_leaf=lambda x: isinstance(x, PartitionSpec))


def init_sharded(init_fn: Callable[..., Any], mesh: Mesh, rules: Rules, *args
                 ) -> tuple[Any, Any]:
  """Runs a flax init so every parameter is born in its target sharding.

  Returns:
    (params, shardings): plain (unboxed) parameter arrays and their NamedShardings.
  """
  abstract = jax.eval_shape(init_fn, *args)
  shardings = logical_shardings(abstract, mesh, rules)
  with activate(mesh, rules):
    params = jax.jit(lambda *a: nn.unbox(init_fn(*a)), out_shardings=shardings)(*args)
  return params, shardings


@contextlib.contextmanager
def activate(mesh: Mesh, rules: Rules) -> Iterator[None]:
  """Makes `mesh` current and `rules` the logical rules (trace jitted steps inside)."""
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    yield


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, rules: Rules, ndim: int, batch_axis: int = 0) -> NamedSharding:
  """The sharding of a host batch array: the batch dimension over the batch rule's axes."""
  logical: list[str | None] = [None] * ndim
  logical[batch_axis] = "batch"
  with nn.logical_axis_rules(rules):
    spec = nn.logical_to_mesh(PartitionSpec(*logical))
  return NamedSharding(mesh, spec)


def is_sharded(sharding: NamedSharding) -> bool:
  """True when at least one dimension is split across more than one device."""
  return any(
      entry is not None
      and np.prod([sharding.mesh.shape[a] for a in ((entry,) if isinstance(entry, str) else entry)])
      > 1
      for entry in sharding.spec)

"""HF safetensors checkpoints <-> our params pytree, tensor by tensor.

A table (`tensor_maps`) names, for every parameter, its HF key (per layer) and how the
HF tensor is laid out relative to ours: reshape the HF tensor to `inter`, then
transpose by `perm`. Import builds each parameter with `jax.make_array_from_callback`
in its target sharding; the callback reads only the rows and columns of the shard it
is asked for (safetensors memory-maps), one layer at a time, so a 72B import never
holds the model, or even one full stacked tensor, on one host. Export writes a
directory (config.json, `*.safetensors`, and the index when sharded) that
`transformers` loads.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from collections.abc import Iterator, Mapping, Sequence

import flax.linen as nn
import jax
import ml_dtypes
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from models import hf_config, vlm
from models.config import ModelConfig

INDEX_FILE = "model.safetensors.index.json"
Path = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class TensorMap:
  """One parameter: its path in our tree, its HF key(s) and the layout between them.

  Attributes:
    path: the path under `params` (e.g. ('decoder', 'layers', 'mlp', 'up', 'kernel')).
    hf_key: the HF name; `{i}` is the layer index when `layers` is set.
    inter: the HF tensor reshaped to this shape ...
    perm: ... then transposed by this permutation gives ours (per layer).
    layers: when set, ours stacks this many layers on a leading axis (scanned layout).
  """

  path: Path
  hf_key: str
  hf_shape: tuple[int, ...]
  inter: tuple[int, ...]
  perm: tuple[int, ...]
  layers: int | None = None

  @property
  def layer_shape(self) -> tuple[int, ...]:
    return tuple(self.inter[p] for p in self.perm)

  @property
  def shape(self) -> tuple[int, ...]:
    return ((self.layers,) if self.layers else ()) + self.layer_shape

  def hf_keys(self) -> list[str]:
    return [self.hf_key.format(i=i) for i in range(self.layers)] if self.layers else [self.hf_key]


def _linear(out: int, inp: int):
  """An nn.Linear weight [out, in] -> our kernel [in, out]."""
  return (out, inp), (out, inp), (1, 0)


def _vector(n: int):
  return (n,), (n,), (0,)


def _stack(maps: list[TensorMap], hf_prefix: str, path_prefix: Path, name: str, count: int,
           entries, scan: bool) -> None:
  for sub_path, hf_suffix, (hf_shape, inter, perm) in entries:
    if scan:
      maps.append(TensorMap(path_prefix + (name,) + sub_path, hf_prefix + "{i}." + hf_suffix,
                            hf_shape, inter, perm, layers=count))
    else:
      maps += [TensorMap(path_prefix + (f"{name}_{i}",) + sub_path,
                         f"{hf_prefix}{i}.{hf_suffix}", hf_shape, inter, perm)
               for i in range(count)]


def tensor_maps(config: ModelConfig) -> list[TensorMap]:
  """Every parameter of `config`'s model, in HF order."""
  t, v = config.text, config.vision
  d, n, k, h, f = (t.hidden_size, t.num_attention_heads, t.num_key_value_heads, t.head_dim,
                   t.intermediate_size)
  maps = [TensorMap(("embed_tokens", "embedding"), "model.embed_tokens.weight",
                    (t.vocab_size, d), (t.vocab_size, d), (0, 1))]
  text_layer = [
      (("input_layernorm", "scale"), "input_layernorm.weight", _vector(d)),
      (("self_attn", "q_proj", "kernel"), "self_attn.q_proj.weight", ((n * h, d), (n, h, d),
                                                                      (2, 0, 1))),
      (("self_attn", "q_proj", "bias"), "self_attn.q_proj.bias", ((n * h,), (n, h), (0, 1))),
      (("self_attn", "k_proj", "kernel"), "self_attn.k_proj.weight", ((k * h, d), (k, h, d),
                                                                      (2, 0, 1))),
      (("self_attn", "k_proj", "bias"), "self_attn.k_proj.bias", ((k * h,), (k, h), (0, 1))),
      (("self_attn", "v_proj", "kernel"), "self_attn.v_proj.weight", ((k * h, d), (k, h, d),
                                                                      (2, 0, 1))),
      (("self_attn", "v_proj", "bias"), "self_attn.v_proj.bias", ((k * h,), (k, h), (0, 1))),
      (("self_attn", "o_proj", "kernel"), "self_attn.o_proj.weight", ((d, n * h), (d, n, h),
                                                                      (1, 2, 0))),
      (("post_attention_layernorm", "scale"), "post_attention_layernorm.weight", _vector(d)),
      (("mlp", "gate", "kernel"), "mlp.gate_proj.weight", _linear(f, d)),
      (("mlp", "up", "kernel"), "mlp.up_proj.weight", _linear(f, d)),
      (("mlp", "down", "kernel"), "mlp.down_proj.weight", _linear(d, f)),
  ]
  _stack(maps, "model.layers.", ("decoder",), "layers", t.num_hidden_layers, text_layer,
         config.scan_layers)
  maps.append(TensorMap(("decoder", "norm", "scale"), "model.norm.weight", *_vector(d)))
  if not t.tie_word_embeddings:
    maps.append(TensorMap(("lm_head", "kernel"), "lm_head.weight", *_linear(t.vocab_size, d)))

  e, vn, vh, vf = v.hidden_size, v.num_heads, v.head_dim, v.intermediate_size
  maps.append(TensorMap(("visual", "patch_embed", "kernel"), "visual.patch_embed.proj.weight",
                        (e, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size),
                        (e, v.patch_dim), (1, 0)))
  vision_block = [
      (("norm1", "scale"), "norm1.weight", _vector(e)),
      (("qkv", "kernel"), "attn.qkv.weight", ((3 * e, e), (3, vn, vh, e), (3, 0, 1, 2))),
      (("qkv", "bias"), "attn.qkv.bias", ((3 * e,), (3, vn, vh), (0, 1, 2))),
      (("proj", "kernel"), "attn.proj.weight", ((e, e), (e, vn, vh), (1, 2, 0))),
      (("proj", "bias"), "attn.proj.bias", _vector(e)),
      (("norm2", "scale"), "norm2.weight", _vector(e)),
      (("mlp", "gate", "kernel"), "mlp.gate_proj.weight", _linear(vf, e)),
      (("mlp", "gate", "bias"), "mlp.gate_proj.bias", _vector(vf)),
      (("mlp", "up", "kernel"), "mlp.up_proj.weight", _linear(vf, e)),
      (("mlp", "up", "bias"), "mlp.up_proj.bias", _vector(vf)),
      (("mlp", "down", "kernel"), "mlp.down_proj.weight", _linear(e, vf)),
      (("mlp", "down", "bias"), "mlp.down_proj.bias", _vector(e)),
  ]
  _stack(maps, "visual.blocks.", ("visual",), "blocks", v.depth, vision_block, config.scan_layers)
  m = v.merge_unit * e
  maps += [
      TensorMap(("visual", "merger", "ln_q", "scale"), "visual.merger.ln_q.weight", *_vector(e)),
      TensorMap(("visual", "merger", "fc1", "kernel"), "visual.merger.mlp.0.weight",
                *_linear(m, m)),
      TensorMap(("visual", "merger", "fc1", "bias"), "visual.merger.mlp.0.bias", *_vector(m)),
      TensorMap(("visual", "merger", "fc2", "kernel"), "visual.merger.mlp.2.weight",
                *_linear(v.out_hidden_size, m)),
      TensorMap(("visual", "merger", "fc2", "bias"), "visual.merger.mlp.2.bias",
                *_vector(v.out_hidden_size)),
  ]
  return maps


# ------------------------------------------------------------------------------ reading


class CheckpointFiles:
  """The tensors of an HF checkpoint directory: key -> file, shape, dtype (headers only)."""

  def __init__(self, directory: str | pathlib.Path):
    self.directory = pathlib.Path(directory)
    if not self.directory.is_dir():
      raise FileNotFoundError(f"checkpoint directory {self.directory} does not exist")
    files = sorted(self.directory.glob("*.safetensors"))
    if not files:
      raise FileNotFoundError(f"no *.safetensors files in {self.directory}")
    index = self.directory / INDEX_FILE
    if index.exists():
      weight_map = json.loads(index.read_text())["weight_map"]
      missing = sorted({name for name in weight_map.values()
                        if not (self.directory / name).exists()})
      if missing:
        raise FileNotFoundError(f"{index} names files that are missing: {missing}")
    self.file_of: dict[str, pathlib.Path] = {}
    self.shape_of: dict[str, tuple[int, ...]] = {}
    self._handles: dict[pathlib.Path, object] = {}
    for path in files:
      handle = self._open(path)
      for key in handle.keys():
        self.file_of[key] = path
        self.shape_of[key] = tuple(handle.get_slice(key).get_shape())

  def _open(self, path: pathlib.Path):
    if path not in self._handles:
      self._handles[path] = safe_open(str(path), framework="numpy")
    return self._handles[path]

  def read(self, key: str, index: Sequence[slice] | None = None) -> np.ndarray:
    """The tensor (or a basic-slice of it) as stored; memory-mapped, so a slice reads
    only its own bytes."""
    sliced = self._open(self.file_of[key]).get_slice(key)
    return sliced[tuple(index)] if index is not None else sliced[:]


def check_against(files: CheckpointFiles, maps: Sequence[TensorMap]) -> None:
  """Fails naming every missing, unexpected and mis-shaped tensor."""
  expected = {key: m.hf_shape for m in maps for key in m.hf_keys()}
  present = set(files.shape_of)
  missing = sorted(set(expected) - present)
  # A tied checkpoint may still carry the (identical) head; it is not needed.
  ignorable = set() if "lm_head.weight" in expected else {"lm_head.weight"}
  unexpected = sorted(present - set(expected) - ignorable)
  misshaped = sorted(f"{key}: checkpoint {files.shape_of[key]}, model {expected[key]}"
                     for key in set(expected) & present if files.shape_of[key] != expected[key])
  problems = []
  if missing:
    problems.append(f"missing tensors ({len(missing)}): {missing}")
  if unexpected:
    problems.append(f"unexpected tensors ({len(unexpected)}): {unexpected}")
  if misshaped:
    problems.append(f"mis-shaped tensors ({len(misshaped)}): {misshaped}")
  if problems:
    raise ValueError(f"checkpoint {files.directory} does not match the model config:\n  "
                     + "\n  ".join(problems))


def _reshape_groups(hf_shape, inter) -> Iterator[tuple[list[int], list[int]]]:
  """Pairs of (hf dims, inter dims) that a reshape maps onto each other."""
  i = j = 0
  while i < len(hf_shape) or j < len(inter):
    hf_dims, inter_dims = [i], [j]
    a, b = hf_shape[i], inter[j]
    while a != b:
      if a < b:
        i += 1
        hf_dims.append(i)
        a *= hf_shape[i]
      else:
        j += 1
        inter_dims.append(j)
        b *= inter[j]
    yield hf_dims, inter_dims
    i, j = i + 1, j + 1


def _read_layer(files: CheckpointFiles, key: str, m: TensorMap,
                index: Sequence[tuple[int, int]]) -> np.ndarray:
  """Our-layout block `index` ((start, stop) per our dim) of one layer's tensor."""
  inter_index = [None] * len(m.inter)
  for ours, inter_dim in enumerate(m.perm):
    inter_index[inter_dim] = index[ours]
  hf_slices = [slice(None)] * len(m.hf_shape)
  read_shape = list(m.inter)
  post = [slice(a, b) for a, b in inter_index]
  for hf_dims, inter_dims in _reshape_groups(m.hf_shape, m.inter):
    if len(hf_dims) == 1:
      # One HF dim splits into several of ours: a slice of the leading one is contiguous.
      first, rest = inter_dims[0], math.prod(m.inter[d] for d in inter_dims[1:])
      a, b = inter_index[first]
      hf_slices[hf_dims[0]] = slice(a * rest, b * rest)
      read_shape[first] = b - a
      post[first] = slice(None)
  block = files.read(key, hf_slices).reshape(read_shape)[tuple(post)]
  return np.transpose(block, m.perm)


def _read_block(files: CheckpointFiles, m: TensorMap, index: tuple[slice, ...],
                dtype) -> np.ndarray:
  bounds = [s.indices(n)[:2] for s, n in zip(index, m.shape)]
  if not m.layers:
    return _read_layer(files, m.hf_key, m, bounds).astype(dtype)
  (l0, l1), rest = bounds[0], bounds[1:]
  return np.stack([_read_layer(files, m.hf_key.format(i=i), m, rest).astype(dtype)
                   for i in range(l0, l1)])


def _set(tree: dict, path: Path, value) -> None:
  for name in path[:-1]:
    tree = tree.setdefault(name, {})
  tree[path[-1]] = value


def _get(tree: Mapping, path: Path):
  for name in path:
    tree = tree[name]
  return tree


def load_config(directory: str | pathlib.Path, **overrides) -> ModelConfig:
  path = pathlib.Path(directory) / "config.json"
  if not path.exists():
    raise FileNotFoundError(f"{path} does not exist")
  return hf_config.config_from_hf(json.loads(path.read_text()), **overrides)


def load_params(directory: str | pathlib.Path, config: ModelConfig, shardings=None) -> dict:
  """Reads an HF checkpoint into our params pytree (`{'params': ...}`).

  Args:
    directory: a directory written by transformers (config.json, safetensors, index).
    config: the model to load into; its architecture must match the checkpoint's.
    shardings: the target NamedShardings (a pytree like the params, e.g. from
      `sharding.logical_shardings`); None puts everything on the default device.
  """
  files = CheckpointFiles(directory)
  maps = tensor_maps(config)
  check_against(files, maps)
  dtype = config.weight_dtype
  params: dict = {}
  for m in maps:
    sharding = (_get(shardings["params"], m.path) if shardings is not None
                else jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    array = jax.make_array_from_callback(
        m.shape, sharding, lambda index, m=m: _read_block(files, m, index, dtype))
    _set(params, m.path, array)
  return {"params": params}


# ------------------------------------------------------------------------------ writing


def _to_hf(block: np.ndarray, m: TensorMap) -> np.ndarray:
  return np.transpose(block, np.argsort(m.perm)).reshape(m.hf_shape)


def save_params(params: Mapping, config: ModelConfig, directory: str | pathlib.Path,
                dtype: str = "float32", max_shard_bytes: int = 4 << 30) -> None:
  """Writes `params` as an HF checkpoint directory that transformers loads.

  Tensors are fetched one layer at a time. Files are split at `max_shard_bytes` with a
  `model.safetensors.index.json`, as transformers does.
  """
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  np_dtype = {"bfloat16": ml_dtypes.bfloat16, "float16": np.float16,
              "float32": np.float32}[dtype]
  tree = nn.unbox(params)["params"]
  shards: list[dict[str, np.ndarray]] = [{}]
  size = 0
  for m in tensor_maps(config):
    array = _get(tree, m.path)
    if tuple(array.shape) != m.shape:
      raise ValueError(f"param {'/'.join(m.path)} has shape {tuple(array.shape)}, the config "
                       f"says {m.shape}")
    for i, key in enumerate(m.hf_keys()):
      block = np.asarray(jax.device_get(array[i] if m.layers else array))
      tensor = np.ascontiguousarray(_to_hf(block, m).astype(np_dtype))
      if size and size + tensor.nbytes > max_shard_bytes:
        shards.append({})
        size = 0
      shards[-1][key] = tensor
      size += tensor.nbytes
  names = (["model.safetensors"] if len(shards) == 1 else
           [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
  for name, shard in zip(names, shards):
    save_file(shard, str(directory / name), metadata={"format": "pt"})
  if len(shards) > 1:
    weight_map = {key: name for name, shard in zip(names, shards) for key in shard}
    total = sum(t.nbytes for shard in shards for t in shard.values())
    (directory / INDEX_FILE).write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
  (directory / "config.json").write_text(
      json.dumps(hf_config.config_to_hf(config, torch_dtype=dtype), indent=2))


def abstract_params(config: ModelConfig):
  """Boxed abstract params (shapes and logical axes) of `config`'s model, no memory."""
  return jax.eval_shape(vlm.init_fn(config), jax.random.key(0))

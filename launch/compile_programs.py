"""The programs the compile check lowers, with abstract sharded arguments (no memory):

  program = build("train", model_config, shapes, mesh, rules)
  compiled = program.lower().compile()

"train" is the RL update of `rl.train_step` (CPGD, AdamW from `rl.optim`, the frozen
reference's log-probs when `kl_coef` > 0), "prefill" and "decode" the sampler's two jitted
programs (`rl.sampler`: B prompts forked G ways, one decode loop over the KV cache) and
"judge" the verdict forward of `verifiers.judges`. Every argument is a
`jax.ShapeDtypeStruct` carrying its NamedSharding: parameters by the logical rules,
optimiser moments like their parameters, rows over the batch axes.

Each program says how many bytes per device of the long-lived buffers (`LONG_LIVED`: the
policy's parameters, its optimiser state, the reference, a judge's parameters) it reads
as arguments, so the fit check can add the rest, which stays on the chips while it runs.

Axis letters: B rows, T tokens, P patch slots, C values per patch, V verdicts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding

from models import hf_checkpoint
from models.config import ModelConfig
from models.inputs import ModelInputs, VisionInputs
from models.kv_cache import KVCache
from rl import losses, optim, sampler, train_step
from rl.sampling_methods import Temperature
from safework.infra import sharding
from verifiers import judges

PROGRAMS = ("train", "prefill", "decode", "judge")
LONG_LIVED = ("params", "opt_state", "reference", "judge_params")


@dataclasses.dataclass(frozen=True)
class Shapes:
  """Batch shapes and step settings of the compiled programs."""

  prompts: int = 2  # Prompts per sampler call.
  samples: int = 4  # G, responses per prompt.
  prompt_tokens: int = 64  # Prompt width, tokens (image tokens included).
  new_tokens: int = 64  # Response width, tokens: the decode budget.
  image_patches: int = 64  # Patch slots per prompt (a multiple of 4); 0: text only.
  train_rows: int = 0  # Sequences per optimiser update; 0: prompts * samples.
  micro_batches: int = 1  # Gradient accumulation steps of one update.
  logits_chunk: int = 0  # Tokens per logits chunk in the train step; 0: all at once.
  kl_coef: float = 1e-3  # > 0: the step also scores the frozen reference.
  reference_dtype: str = "float32"  # Storage dtype of the reference parameters.
  judge_rows: int = 8  # Rows per judge forward.
  judge_tokens: int = 128  # Tokens per judge row.

  def __post_init__(self):
    positive = ("prompts", "samples", "prompt_tokens", "new_tokens", "micro_batches",
                "judge_rows", "judge_tokens")
    bad = {k: getattr(self, k) for k in positive if getattr(self, k) < 1}
    bad.update({k: getattr(self, k) for k in ("train_rows", "logits_chunk", "image_patches")
                if getattr(self, k) < 0})
    if bad:
      raise ValueError(f"Shapes: fields must be positive (train_rows, logits_chunk, "
                       f"image_patches may be 0), got {bad}")
    if self.image_patches % 4:
      raise ValueError(f"Shapes.image_patches={self.image_patches} must be a multiple of 4 "
                       "(2x2 patches merge into one token)")
    if self.rows % self.micro_batches:
      raise ValueError(f"Shapes.train_rows={self.rows} do not split into "
                       f"micro_batches={self.micro_batches}")
    if self.logits_chunk and self.train_tokens % self.logits_chunk:
      raise ValueError(f"Shapes.logits_chunk={self.logits_chunk} must divide the train "
                       f"sequence of prompt_tokens + new_tokens = {self.train_tokens}")
    if self.kl_coef < 0:
      raise ValueError(f"Shapes.kl_coef must be >= 0, got {self.kl_coef}")
    try:
      jnp.dtype(self.reference_dtype)
    except TypeError as e:
      raise ValueError(f"Shapes.reference_dtype={self.reference_dtype!r} is not a dtype") from e

  @property
  def rows(self) -> int:
    return self.train_rows or self.prompts * self.samples

  @property
  def train_tokens(self) -> int:
    return self.prompt_tokens + self.new_tokens


@dataclasses.dataclass(frozen=True)
class Program:
  """A jitted function and the abstract arguments to lower it with."""

  name: str
  fn: Any  # A jax.jit-wrapped function.
  args: tuple
  static: dict  # Keyword arguments passed to `lower` as they are (static ones).
  long_lived: dict[str, int]  # Bytes per device of the LONG_LIVED buffers it reads.

  def lower(self):
    return self.fn.lower(*self.args, **self.static)


def per_device_bytes(tree) -> int:
  """Bytes one device holds of a tree of sharded ShapeDtypeStructs (its largest shard)."""
  return sum(math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize
             for x in jax.tree.leaves(tree))


def _abstract(shape, dtype, mesh: Mesh, rules, logical) -> jax.ShapeDtypeStruct:
  spec = sharding.logical_to_mesh_spec(logical, shape, mesh, rules)
  return jax.ShapeDtypeStruct(shape, dtype, sharding=NamedSharding(mesh, spec))


def _rows(shape, dtype, mesh, rules, axis: int = 0) -> jax.ShapeDtypeStruct:
  """Split on the batch axes where they divide the row count, else replicated."""
  logical = [None] * len(shape)
  logical[axis] = "batch"
  return _abstract(shape, dtype, mesh, rules, logical)


def model_inputs(config: ModelConfig, rows: int, tokens: int, patches: int, mesh, rules
                 ) -> ModelInputs:
  """Abstract ModelInputs [B, T] with `patches` image patch slots per row (none if 0)."""
  r = lambda shape, dtype, axis=0: _rows(shape, dtype, mesh, rules, axis)
  vision = None
  if patches:
    vision = VisionInputs(
        patches=r((rows, patches, config.vision.patch_dim), jnp.float32),
        coords=r((rows, patches, 2), jnp.int32), window_ids=r((rows, patches), jnp.int32),
        frame_ids=r((rows, patches), jnp.int32),
        unpermute=r((rows, patches // config.vision.merge_unit), jnp.int32))
  return ModelInputs(r((rows, tokens), jnp.int32), r((3, rows, tokens), jnp.int32, 1),
                     r((rows, tokens), jnp.int32), vision)


def abstract_params(config: ModelConfig, mesh, rules, dtype=None):
  """The model's parameters as sharded ShapeDtypeStructs (optionally cast to `dtype`)."""
  boxed = hf_checkpoint.abstract_params(config)
  shardings = sharding.logical_shardings(boxed, mesh, rules)
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, dtype or x.dtype, sharding=s),
                      sharding.strip_metadata(boxed), shardings)


def _train(config: ModelConfig, shapes: Shapes, mesh, rules) -> Program:
  params = abstract_params(config, mesh, rules)
  param_sh = jax.tree.map(lambda x: x.sharding, params)
  optimizer = optim.make_optimizer(optim.OptimizerConfig(), params)
  state_sh = train_step.state_shardings(optimizer, params, param_sh, mesh)
  state = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                       jax.eval_shape(lambda p: train_step.TrainState.create(p, optimizer),
                                      params), state_sh)
  reference = None
  if shapes.kl_coef > 0:
    reference = abstract_params(config, mesh, rules, jnp.dtype(shapes.reference_dtype))
  b, t = shapes.rows, shapes.train_tokens
  batch = train_step.RLBatch(
      inputs=model_inputs(config, b, t, shapes.image_patches, mesh, rules),
      old_logp=_rows((b, t), jnp.float32, mesh, rules),
      advantages=_rows((b,), jnp.float32, mesh, rules),
      loss_mask=_rows((b, t), jnp.float32, mesh, rules))
  shardings_of = lambda tree: jax.tree.map(lambda x: x.sharding, tree)
  step = train_step.make_step(
      config, train_step.StepConfig(micro_batches=shapes.micro_batches,
                                    logits_chunk=shapes.logits_chunk),
      optimizer, train_step.rl_objective("cpgd", losses.CPGDConfig(kl_coef=shapes.kl_coef)),
      state_sh, shardings_of(batch), None if reference is None else shardings_of(reference))
  long_lived = {"params": per_device_bytes(state.params),
                "opt_state": per_device_bytes((state.opt_state, state.step, state.skipped))}
  if reference is not None:
    long_lived["reference"] = per_device_bytes(reference)
  return Program("train", step, (state, reference, batch), {}, long_lived)


def _prompt_args(config: ModelConfig, shapes: Shapes, mesh, rules) -> tuple:
  b, rows = shapes.prompts, shapes.prompts * shapes.samples
  key = jax.eval_shape(lambda: jax.random.key(0))
  return (model_inputs(config, b, shapes.prompt_tokens, shapes.image_patches, mesh, rules),
          _rows((b,), jnp.int32, mesh, rules), _rows((rows,), jnp.int32, mesh, rules),
          jax.ShapeDtypeStruct(key.shape, key.dtype, sharding=sharding.replicated(mesh)))


def _prefill(config: ModelConfig, shapes: Shapes, mesh, rules) -> Program:
  params = abstract_params(config, mesh, rules)
  # The sampler's own jitted prefill: exactly the program a rollout runs.
  return Program("prefill", sampler._prefill_jit,  # pylint: disable=protected-access
                 (params,) + _prompt_args(config, shapes, mesh, rules),
                 dict(config=config, num_samples=shapes.samples,
                      max_new_tokens=shapes.new_tokens),
                 {"params": per_device_bytes(params)})


def sampling_state(config: ModelConfig, shapes: Shapes, mesh, rules) -> sampler.SamplingState:
  """The abstract state a prefill hands to decode, in the sampler's training layout."""
  rows, new = shapes.prompts * shapes.samples, shapes.new_tokens
  text = config.text
  cache_shape = (text.num_hidden_layers, rows, shapes.prompt_tokens + new + 1,
                 text.num_key_value_heads, text.head_dim)
  cache = lambda: _abstract(cache_shape, config.compute_dtype, mesh, rules,
                            tuple(KVCache.logical_spec().k))
  r = lambda shape, dtype: _rows(shape, dtype, mesh, rules)
  key = jax.eval_shape(lambda: jax.random.key(0))
  return sampler.SamplingState(
      cache=KVCache(cache(), cache(), r((rows,), jnp.int32)),
      logits_bv=_abstract((rows, text.vocab_size), jnp.float32, mesh, rules, ("batch", "vocab")),
      next_position_b=r((rows,), jnp.int32), tokens_bt=r((rows, new), jnp.int32),
      logprobs_bt=r((rows, new), jnp.float32), sampled_bt=r((rows, new), jnp.bool_),
      length_b=r((rows,), jnp.int32), max_length_b=r((rows,), jnp.int32),
      done_b=r((rows,), jnp.bool_),
      rng=jax.ShapeDtypeStruct(key.shape, key.dtype, sharding=sharding.replicated(mesh)),
      draws=jax.ShapeDtypeStruct((), jnp.int32, sharding=sharding.replicated(mesh)),
      config=config)


def _decode(config: ModelConfig, shapes: Shapes, mesh, rules) -> Program:
  params = abstract_params(config, mesh, rules)
  state = sampling_state(config, shapes, mesh, rules)
  # Decoding never runs the vision tower: jit drops its parameters from the arguments,
  # but they stay on the chips (counted as resident).
  text_params = {k: v for k, v in params["params"].items() if k != "visual"}
  return Program("decode", sampler._decode_jit,  # pylint: disable=protected-access
                 (params, state),
                 dict(method=Temperature(1.0), stop_tokens=(1,), segment_end_tokens=(),
                      max_steps=shapes.new_tokens),
                 {"params": per_device_bytes(text_params)})


def _judge(judge_config: ModelConfig, shapes: Shapes, mesh, rules) -> Program:
  params = abstract_params(judge_config, mesh, rules)
  b = shapes.judge_rows
  inputs = model_inputs(judge_config, b, shapes.judge_tokens, shapes.image_patches, mesh, rules)
  return Program("judge", judges.compiled_forward(mesh, rules),
                 (judge_config, params, inputs, _rows((b,), jnp.int32, mesh, rules),
                  _rows((b, 8), jnp.int32, mesh, rules)),
                 {}, {"judge_params": per_device_bytes(params)})


_BUILDERS: dict[str, Callable[..., Program]] = {
    "train": _train, "prefill": _prefill, "decode": _decode, "judge": _judge}


def build(name: str, config: ModelConfig, shapes: Shapes, mesh: Mesh, rules) -> Program:
  """The program `name` of PROGRAMS for the model `config` (for "judge": the judge's)."""
  if name not in _BUILDERS:
    raise ValueError(f"unknown program {name!r}; known: {list(PROGRAMS)}")
  return _BUILDERS[name](config, shapes, mesh, rules)

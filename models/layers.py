"""Building blocks shared by the vision tower and the decoder.

Axis letters: B batch, T query length, S key length, N query heads, K kv heads,
G query heads per kv head (N = K*G), H head dim, D width, F mlp width.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

_MASKED = -0.7 * float(jnp.finfo(jnp.float32).max)  # Finite: fully masked rows stay NaN-free.


def dense_init(names: Sequence[str | None], stddev: float = 0.02
               ) -> nn.initializers.Initializer:
  """Normal(stddev) as HF's Qwen initialiser (its `initializer_range`), annotated with
  logical axis names."""
  return nn.with_logical_partitioning(nn.initializers.normal(stddev=stddev), tuple(names))


def zeros_init(names: Sequence[str | None]) -> nn.initializers.Initializer:
  return nn.with_logical_partitioning(nn.initializers.zeros_init(), tuple(names))


class Linear(nn.Module):
  """x @ W (+ b) contracting the last `in_axes` dims of x into `features`.

  Like nn.DenseGeneral, but the kernel is created in its full shape, so its logical
  partitioning is valid at every rank (flax's version initialises a flattened kernel,
  whose constraint fails when a mesh is active).
  """

  features: tuple[int, ...]
  names: tuple[str | None, ...]  # Logical axes of the kernel: contracted then features.
  in_axes: int = 1
  use_bias: bool = True
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  init_std: float = 0.02  # The kernel's initial normal standard deviation.

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    in_shape = x.shape[-self.in_axes:]
    kernel = self.param("kernel", dense_init(self.names, self.init_std), in_shape + tuple(self.features),
                        self.param_dtype)
    contract = (tuple(range(x.ndim - self.in_axes, x.ndim)), tuple(range(self.in_axes)))
    y = jax.lax.dot_general(x.astype(self.dtype), kernel.astype(self.dtype), (contract, ((), ())))
    if self.use_bias:
      bias = self.param("bias", zeros_init(self.names[self.in_axes:]), tuple(self.features),
                        self.param_dtype)
      y = y + bias.astype(self.dtype)
    return y


class RMSNorm(nn.Module):
  """Root-mean-square norm; statistics in float32, as the reference computes them."""

  eps: float
  dtype: jnp.dtype
  param_dtype: jnp.dtype

  @nn.compact
  def __call__(self, x_bd: jax.Array) -> jax.Array:
    scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones_init(),
                                                            ("embed",)),
                       (x_bd.shape[-1],), self.param_dtype)
    x32 = x_bd.astype(jnp.float32)
    x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return (scale.astype(self.dtype) * x32.astype(self.dtype)).astype(self.dtype)


class SwiGLU(nn.Module):
  """down(silu(gate(x)) * up(x)); the vision tower's carries biases, the decoder's not."""

  hidden: int
  use_bias: bool
  dtype: jnp.dtype
  param_dtype: jnp.dtype
  init_std: float = 0.02  # The kernels' initial normal standard deviation.

  @nn.compact
  def __call__(self, x_bd: jax.Array) -> jax.Array:
    def proj(features, names, name):
      return nn.Dense(features, use_bias=self.use_bias, dtype=self.dtype,
                      param_dtype=self.param_dtype, kernel_init=dense_init(names, self.init_std),
                      bias_init=zeros_init(names[1:]), name=name)

    gate = proj(self.hidden, ("embed", "mlp"), "gate")(x_bd)
    up = proj(self.hidden, ("embed", "mlp"), "up")(x_bd)
    h_bf = nn.with_logical_constraint(nn.silu(gate) * up, ("batch", "length", "mlp"))
    return proj(x_bd.shape[-1], ("mlp", "embed"), "down")(h_bf)


def rotate_half(x: jax.Array) -> jax.Array:
  x1, x2 = jnp.split(x, 2, axis=-1)
  return jnp.concatenate([-x2, x1], axis=-1)


def apply_rotary(x_btnh: jax.Array, cos_bth: jax.Array, sin_bth: jax.Array) -> jax.Array:
  """Rotates pairs (i, i + H/2) of every head by the given angles (float32 math)."""
  x32 = x_btnh.astype(jnp.float32)
  cos, sin = cos_bth[..., None, :], sin_bth[..., None, :]
  return (x32 * cos + rotate_half(x32) * sin).astype(x_btnh.dtype)


def attention(q_btnh: jax.Array, k_bskh: jax.Array, v_bskh: jax.Array, mask_bts: jax.Array,
              dtype: jnp.dtype) -> jax.Array:
  """Softmax attention with grouped kv heads and a boolean mask (True = attend).

  Scores and softmax are float32 (as the reference's eager path); a query whose keys
  are all masked gets a uniform average instead of NaN, and callers ignore it.
  """
  b, t, n, h = q_btnh.shape
  k = k_bskh.shape[2]
  q_btkgh = q_btnh.reshape(b, t, k, n // k, h)
  scores = jnp.einsum("btkgh,bskh->bkgts", q_btkgh, k_bskh,
                      preferred_element_type=jnp.float32) * (h ** -0.5)
  scores = jnp.where(mask_bts[:, None, None], scores, _MASKED)
  probs = jax.nn.softmax(scores, axis=-1).astype(dtype)
  out_btkgh = jnp.einsum("bkgts,bskh->btkgh", probs, v_bskh.astype(dtype))
  return out_btkgh.reshape(b, t, n, h)


REMAT_POLICIES = {
    "none": None,
    "full": "full",
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_with_no_batch_dims": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


def stack_layers(layer_cls, count: int, scan: bool, remat_policy, name: str, layer_args: tuple,
                 carry, xs, broadcast: tuple, unrolled_xs=None):
  """Applies `count` instances of `layer_cls` in sequence, scanned or unrolled.

  A layer is called as `layer(carry, x_i, *broadcast) -> (carry, y_i)`. Scanned, the
  parameters are stacked on a leading `layers` axis under `name`; unrolled, each layer
  has its own `name_i`. Both give the same outputs for the same weights.

  Args:
    remat_policy: None for no rematerialisation, "full", or a jax.checkpoint policy.
    xs: per-layer inputs with a leading axis of size `count` (or None).
    unrolled_xs: optional per-layer python values used instead of `xs[i]` when unrolled
      (static flags stay static there).

  Returns:
    (carry, ys) with ys stacked on axis 0, or None when every y_i is None.
  """
  cls = layer_cls
  if remat_policy is not None:
    policy = None if remat_policy == "full" else remat_policy
    cls = nn.remat(layer_cls, policy=policy, prevent_cse=not scan)
  if scan:
    # "intermediates" is stacked too, so `capture_intermediates` sees every layer.
    stacked = nn.scan(cls, variable_axes={"params": 0, "intermediates": 0},
                      split_rngs={"params": True},
                      in_axes=(0,) + (nn.broadcast,) * len(broadcast), length=count,
                      metadata_params={nn.PARTITION_NAME: "layers"})
    return stacked(*layer_args, name=name)(carry, xs, *broadcast)
  ys = []
  for i in range(count):
    x_i = unrolled_xs[i] if unrolled_xs is not None else jax.tree.map(lambda a: a[i], xs)
    carry, y = cls(*layer_args, name=f"{name}_{i}")(carry, x_i, *broadcast)
    ys.append(y)
  if all(y is None for y in ys):
    return carry, None
  return carry, jax.tree.map(lambda *a: jnp.stack(a), *ys)

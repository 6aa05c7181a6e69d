"""The decoder's key/value cache: per-row lengths, laid out for the mesh.

Layout: k and v are [L, B, S, K, H] (layers, batch, slots, kv heads, head dim) with
logical axes (layers, batch, cache_length, kv_heads, head_dim). Under the default rules
the batch is split over (data, fsdp) and the kv heads over tensor, exactly like the
activations and the k/v projections of training, so decoding needs no resharding: each
device holds the cache of its own rows and heads, and attention is local to it. Slots
are not split, because every decode step touches a different slot per row.

Row b's valid tokens occupy slots [0, lengths[b]); a new chunk of T tokens is written at
slots lengths[b] .. lengths[b] + T - 1 and, because chunks are right-padded, lengths
advance by the chunk's number of valid tokens. Padding written past that point is
never attended (the mask is `slot <= lengths[b] + t`) and is overwritten by the next
chunk. Row operations (fork for G samples, select for beams) are gathers on axis 1.

A chunk is written with a per-row dynamic-update-slice, which clamps a write that would
run past the last slot (and so shifts it onto valid slots). Writers keep every row's
`lengths[b] + T <= S`: the sampler keeps one spare slot for single-token steps of rows that
are done, and gives a longer chunk room with `pad_slots` before and `trim_slots` after.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

from models.config import ModelConfig

LOGICAL_AXES = ("layers", "batch", "cache_length", "kv_heads", "head_dim")


@flax.struct.dataclass
class KVCache:
  k: jax.Array  # [L, B, S, K, H]
  v: jax.Array  # [L, B, S, K, H]
  lengths: jax.Array  # int32 [B]: valid slots per row.

  @property
  def max_length(self) -> int:
    return self.k.shape[2]

  @property
  def batch_size(self) -> int:
    return self.k.shape[1]

  @classmethod
  def zeros(cls, num_layers: int, batch: int, max_length: int, num_kv_heads: int,
            head_dim: int, dtype: jnp.dtype) -> KVCache:
    shape = (num_layers, batch, max_length, num_kv_heads, head_dim)
    return cls(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype), jnp.zeros((batch,), jnp.int32))

  @classmethod
  def for_model(cls, config: ModelConfig, batch: int, max_length: int) -> KVCache:
    """An empty cache of `max_length` slots for the decoder of `config`, in its compute dtype."""
    text = config.text
    return cls.zeros(text.num_hidden_layers, batch, max_length, text.num_key_value_heads,
                     text.head_dim, config.compute_dtype)

  @staticmethod
  def logical_spec() -> KVCache:
    """Logical PartitionSpecs with the same structure, for `logical_to_mesh_spec`."""
    spec = PartitionSpec(*LOGICAL_AXES)
    return KVCache(spec, spec, PartitionSpec("batch"))

  def take_rows(self, rows_r: jax.Array) -> KVCache:
    """The cache of rows `rows_r` (any length R, repeats allowed): fork and select."""
    return KVCache(jnp.take(self.k, rows_r, axis=1), jnp.take(self.v, rows_r, axis=1),
                   jnp.take(self.lengths, rows_r, axis=0))

  def put_rows(self, rows_r: jax.Array, other: KVCache) -> KVCache:
    """This cache with row `rows_r[r]` replaced by row r of `other` (same slots); an
    index past the last row drops that row of `other`."""
    put = lambda x, y, axis: x.at[(slice(None),) * axis + (rows_r,)].set(y, mode="drop")
    return KVCache(put(self.k, other.k, 1), put(self.v, other.v, 1),
                   put(self.lengths, other.lengths, 0))

  def repeat_rows(self, times: int) -> KVCache:
    """Each row repeated `times` times, consecutively: row b becomes rows b*G .. b*G+G-1."""
    return self.take_rows(jnp.asarray(np.repeat(np.arange(self.batch_size), times)))

  def pad_slots(self, extra: int) -> KVCache:
    """The same cache with `extra` empty slots appended (S -> S + extra); lengths unchanged."""
    widths = ((0, 0), (0, 0), (0, extra), (0, 0), (0, 0))
    return KVCache(jnp.pad(self.k, widths), jnp.pad(self.v, widths), self.lengths)

  def trim_slots(self, max_length: int) -> KVCache:
    """The first `max_length` slots; the caller guarantees no row is longer."""
    return KVCache(self.k[:, :, :max_length], self.v[:, :, :max_length], self.lengths)

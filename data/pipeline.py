"""The grain pipeline: examples -> shuffled, sharded, tokenised, packed static batches.

    pipeline = Pipeline(world.split("sft"), tokenizer, PipelineConfig(batch_size=8, pack=True))
    it = iter(pipeline)
    batch = next(it)               # Batch: .arrays (see data.pipeline_batch), .rows
    state = it.get_state()         # JSON-serialisable
    it2 = iter(pipeline); it2.set_state(state)   # continues with the same next batch

A grain `MapDataset` over example indices does the random access, the per-host sharding
and the per-epoch seeded shuffle, then maps the tokenising transform. The iterator reads
that stream in order; its state is the stream position of the first example not yet in
a batch (an example that did not fit waits for the next batch) plus the skip counters,
so a restored iterator yields exactly the batches the original would have.

An example that cannot be used (`ExampleError`: a corrupt image, a missing field, over a
budget) is logged and counted in `skips` by reason, then skipped. `validate` checks a
whole source up front and raises the first such error naming the example.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
from collections.abc import Sequence
from typing import Any

import grain

from data.example import Example
from data.pipeline_batch import Batch, RowPacker
from data.pipeline_config import PipelineConfig
from data.pipeline_encode import Encoded, encode
from data.pipeline_errors import REASONS, ExampleError
from data.tokenizer import Tokenizer

_STATE_VERSION = 1


def _load(source: Sequence[Example], index: int, tokenizer: Tokenizer,
          config: PipelineConfig) -> Encoded | ExampleError:
  try:
    return encode(source[index], tokenizer, config)
  except ExampleError as e:
    return e


def validate(source: Sequence[Example], tokenizer: Tokenizer, config: PipelineConfig, *,
             collect: bool = False) -> list[ExampleError]:
  """Encodes every example of `source` under `config`.

  Returns:
    the errors found (an empty list when all are usable); only with `collect`.

  Raises:
    ExampleError: the first unusable example (naming its uid and position), unless
      `collect`.
  """
  errors = []
  for index in range(len(source)):
    result = _load(source, index, tokenizer, config)
    if isinstance(result, ExampleError):
      if not collect:
        raise ExampleError(result.uid, result.reason,
                           f"at position {index}: {result.detail}") from result
      errors.append(result)
  return errors


class Pipeline:
  """An iterable of `Batch`es over `source`; each `iter()` starts at the beginning."""

  def __init__(self, source: Sequence[Example], tokenizer: Tokenizer, config: PipelineConfig):
    self.source, self.tokenizer, self.config = source, tokenizer, config
    per_shard = len(source) // config.shard_count
    if per_shard == 0:
      raise ValueError(f"Pipeline: {len(source)} examples cannot fill {config.shard_count} "
                       "shards")
    indices = grain.MapDataset.range(per_shard * config.shard_count)
    indices = indices[config.shard_index::config.shard_count]
    if config.shuffle:
      indices = indices.shuffle(seed=config.seed)
    self.dataset = indices.map(lambda i: _load(source, i, tokenizer, config))
    self.examples_per_epoch = per_shard

  def __iter__(self) -> BatchIterator:
    return BatchIterator(self)


class BatchIterator:
  """Yields `Batch`es; `get_state`/`set_state` checkpoint it as JSON-serialisable dicts."""

  def __init__(self, pipeline: Pipeline):
    self._pipeline = pipeline
    config = pipeline.config
    self._end = (None if config.num_epochs is None
                 else config.num_epochs * pipeline.examples_per_epoch)
    self._position = 0
    self._skips = collections.Counter()
    self._pending: dict[int, Any] = {}
    self._pool = (concurrent.futures.ThreadPoolExecutor(config.num_threads)
                  if config.num_threads else None)

  @property
  def skips(self) -> dict[str, int]:
    """Examples skipped so far, by reason (every reason of `REASONS` present)."""
    return {reason: self._skips[reason] for reason in REASONS}

  @property
  def position(self) -> int:
    """Stream position of the next example to read (epoch × examples per epoch + offset)."""
    return self._position

  def _exhausted(self, position: int) -> bool:
    return self._end is not None and position >= self._end

  def _get(self, position: int) -> Encoded | ExampleError:
    if self._pool is not None:
      window = 4 * self._pipeline.config.num_threads
      for ahead in range(position, position + window):
        if ahead not in self._pending and not self._exhausted(ahead):
          self._pending[ahead] = self._pool.submit(self._pipeline.dataset.__getitem__, ahead)
    item = self._pending.get(position)
    if item is None:
      item = self._pipeline.dataset[position]
      self._pending[position] = item
    return item.result() if isinstance(item, concurrent.futures.Future) else item

  def _consume(self, position: int) -> None:
    self._pending.pop(position, None)
    self._position = position + 1

  def __iter__(self) -> BatchIterator:
    return self

  def __next__(self) -> Batch:
    config = self._pipeline.config
    packer = RowPacker(config)
    while not self._exhausted(self._position):
      item = self._get(self._position)
      if isinstance(item, ExampleError):
        self._skips[item.reason] += 1
        logging.warning("pipeline: skipping %s", item)
        self._consume(self._position)
        continue
      if not packer.try_add(item):
        break
      self._consume(self._position)
      if not config.pack and packer.full:
        break
    if not len(packer) or (config.drop_remainder and not packer.full
                           and self._exhausted(self._position)):
      raise StopIteration
    return packer.batch(self._pipeline.tokenizer.special.pad)

  def get_state(self) -> dict[str, Any]:
    """The iterator's state: plain ints and strings only."""
    c = self._pipeline.config
    return {"version": _STATE_VERSION, "position": self._position, "skips": self.skips,
            "examples_per_epoch": self._pipeline.examples_per_epoch, "seed": c.seed,
            "shard_index": c.shard_index, "shard_count": c.shard_count}

  def set_state(self, state: dict[str, Any]) -> None:
    """Restores a state from `get_state` of a pipeline over the same data and config."""
    expected = self.get_state()
    for key in ("version", "examples_per_epoch", "seed", "shard_index", "shard_count"):
      if state.get(key) != expected[key]:
        raise ValueError(f"BatchIterator.set_state: state has {key}={state.get(key)!r} but "
                         f"this pipeline has {expected[key]!r}")
    self._position = int(state["position"])
    self._skips = collections.Counter({k: int(v) for k, v in state["skips"].items()})
    self._pending.clear()

  def close(self) -> None:
    """Stops the encoding threads (if any)."""
    if self._pool is not None:
      self._pool.shutdown(wait=False, cancel_futures=True)

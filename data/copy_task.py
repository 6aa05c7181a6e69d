"""(ours) In-context copying rows, appended to CoT-SFT batches when the policy starts from
random init.

A pretrained base model can copy any token of its vocabulary from its context: an
entity's name from the question into a search query, a value from a search result into
the answer. The tiny runlocal policy starts from random init and has neither the circuit
nor trained embeddings for the names it never sees before search RL (the search-only
entities' names are whole-word pieces that no CoT-SFT trace contains), so it cannot
search for them. Each copy row packs segments `x_1 … x_n x_1 … x_n` of random non-special
ids, the loss on `x_2 … x_n` of the repeat (the repeat's first token cannot be known from
the context). Every copyable id is drawn, so every embedding is trained to be copied, and
no fact of the world is taught.

Measured: with spans of 4-20 the rows do not teach copying in the demo's CoT-SFT budget
(800 updates). On held-out copy rows, a copied token's probability is 0.013 after CoT-SFT
with 2 rows and alphabet 6 (0.001 without copy rows; chance is 1/2,500). Dense rows do form
the copy, but not within the demo's budget: 32 rows of 96 tokens a step (spans 4-16, lr
1e-3, cosine over 1,200 updates) at `model.initializer_range` 0.07 reach 0.016 after 400
updates, 0.21 after 700, 0.70 after 1,000 and 0.84 after 1,200 (435 s on 2 cores). What
is slow is finding a token's earlier occurrence; a copy at a fixed distance is learnt in
about a hundred updates. So the runlocal world puts each token a search trace copies at a
fixed distance (data/world/knowledge_base.py), and its CoT-SFT appends 2 rows a batch
whose spans all have that length (`min_span` = `max_span`, `sft.copy_span`): the policy
then writes the held-out entity's name in its query (teacher-forced p 0.0003 -> 0.99).

  batches = WithCopyRows(iter(pipeline), copyable_ids(tokenizer), CopyTaskConfig(rows=2),
                         tokenizer.special.pad)

Rows are a function of (seed, batch index), so a resumed run appends the same rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from data.pipeline_batch import Batch


@dataclasses.dataclass(frozen=True)
class CopyTaskConfig:
  rows: int = 2  # Copy rows appended to each batch.
  min_span: int = 4  # Shortest span to copy, tokens.
  max_span: int = 20  # Longest span to copy, tokens.
  # Loss mask value of a copied token (the SFT loss is a mask-weighted token mean): a
  # copy row has about twice an SFT row's assistant tokens, so at 1 copying would take
  # most of the gradient.
  weight: float = 1.0
  # Spans drawn from a small random alphabet of this many ids (0: from all ids), with
  # probability `alphabet_share`. A repeated id makes the one-token prefix ambiguous, so
  # the copy has to match a longer prefix, as "The capital of Noko is ___" needs after a
  # search result listing several capitals.
  alphabet: int = 0
  alphabet_share: float = 0.5
  seed: int = 0

  def __post_init__(self):
    if (self.rows < 1 or not 2 <= self.min_span <= self.max_span or self.weight <= 0
        or self.alphabet < 0 or not 0 <= self.alphabet_share <= 1):
      raise ValueError(f"CopyTaskConfig: rows >= 1, 2 <= min_span <= max_span, weight > 0, "
                       f"alphabet >= 0 and alphabet_share in [0, 1]; got {self}")


def copyable_ids(tokenizer) -> np.ndarray:
  """Every id of the tokenizer's vocabulary except the special tokens, sorted."""
  special = tokenizer.special.all()
  return np.array([i for i in range(tokenizer.vocab_size) if i not in special], np.int32)


def copy_rows(ids: np.ndarray, rows: int, max_tokens: int, min_span: int, max_span: int,
              rng: np.random.Generator, pad_id: int = 0, alphabet: int = 0,
              alphabet_share: float = 0.5) -> dict[str, np.ndarray]:
  """`rows` rows of `max_tokens`: tokens, segment_ids (one segment per span and its
  repeat, 0 on padding) and loss_mask (1 on the repeat's tokens after its first). With
  `alphabet`, a share of the spans draw from `alphabet` ids of their own."""
  if alphabet > len(ids):
    raise ValueError(f"copy_rows: alphabet {alphabet} is larger than the {len(ids)} ids")
  if 2 * min_span > max_tokens:
    raise ValueError(f"copy_rows: a span of {min_span} and its repeat do not fit in "
                     f"{max_tokens} tokens")
  tokens = np.full((rows, max_tokens), pad_id, np.int32)
  segments = np.zeros((rows, max_tokens), np.int32)
  mask = np.zeros((rows, max_tokens), np.float32)
  for row in range(rows):
    start, segment = 0, 1
    while True:
      span = int(rng.integers(min_span, max_span + 1))
      if start + 2 * span > max_tokens:
        span = (max_tokens - start) // 2  # Fill the row's tail if a short span still fits.
        if span < min_span:
          break
      pool = ids
      if alphabet and rng.random() < alphabet_share:
        pool = rng.choice(ids, alphabet, replace=False)
      x = rng.choice(pool, span)
      tokens[row, start:start + span] = tokens[row, start + span:start + 2 * span] = x
      segments[row, start:start + 2 * span] = segment
      mask[row, start + span + 1:start + 2 * span] = 1.0
      start, segment = start + 2 * span, segment + 1
  return {"tokens": tokens, "segment_ids": segments, "loss_mask": mask}


class WithCopyRows(Iterator[Batch]):
  """Appends `config.rows` copy rows to every batch of an SFT-mode iterator (with
  `get_state`/`set_state`). The rows have no images."""

  def __init__(self, batches, ids: np.ndarray, config: CopyTaskConfig, pad_id: int):
    if not len(ids):
      raise ValueError("WithCopyRows: no copyable ids")
    self._batches, self._ids, self._config = batches, np.asarray(ids, np.int32), config
    self._pad_id = pad_id
    self._index = 0

  def __next__(self) -> Batch:
    batch = next(self._batches)
    c, arrays = self._config, dict(batch.arrays)
    rng = np.random.default_rng([c.seed, self._index])
    extra = copy_rows(self._ids, c.rows, arrays["tokens"].shape[1], c.min_span, c.max_span, rng,
                      self._pad_id, c.alphabet, c.alphabet_share)
    extra["loss_mask"] *= c.weight
    for key in ("patches", "grids"):
      extra[key] = np.zeros((c.rows,) + arrays[key].shape[1:], arrays[key].dtype)
    self._index += 1
    return Batch({key: np.concatenate([value, extra[key].astype(value.dtype)])
                  for key, value in arrays.items()}, batch.rows + ((),) * c.rows)

  def get_state(self) -> dict[str, Any]:
    return {"batches": self._batches.get_state(), "copy_index": self._index}

  def set_state(self, state: dict[str, Any]) -> None:
    self._batches.set_state(state["batches"])
    self._index = int(state["copy_index"])

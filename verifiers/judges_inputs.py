"""Judging requests to static-shape host batches.

A request (template, question, text to judge, gold, images) renders to the chat of
`judges_prompts`, ending with the assistant turn opened. Batches have fixed shapes so one
compiled forward serves every call (B rows, T tokens, P patches, I images per row):

  tokens       int32   [B, T]        the prompt, then pad ids;
  segment_ids  int32   [B, T]        1 on the prompt, 0 on padding (an empty row holds
                                     one pad token, so no row is fully masked);
  patches      float32 [B, P, 1176]  the row's images' patches, zero-padded;
  grids        int32   [B, I, 3]     the row's image grids, zero rows for none;
  read_at      int32   [B]           the prompt's last position: its logits give the
                                     first assistant token, the verdict;
  verdict_ids  int32   [B, 8]        the row's verdict token ids, padded with the first;
  loss_mask    float32 [B, T]        training only: 1 on the appended verdict token.

A prompt longer than T is cut from the end of the judged text (tokens dropped, the rest
decoded and rendered again); if even an empty text does not fit, or the text to judge is
empty, or a needed gold answer is missing, or the images exceed the budgets, the request
fails with a reason and the judge gives that response its fallback score.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from data import chat
from data import images as images_lib
from data import tokenizer as tokenizer_lib
from models import inputs as model_inputs
from models.config import ModelConfig
from safework.infra import config as infra_config
from verifiers import judges_prompts

MAX_VERDICTS = 8  # Verdict columns per row; every score map has at most this many.
PATCH_DIM = images_lib.ImageSettings().patch_dim
FAILURES = ("empty", "missing_gold", "too_long", "image")


@dataclasses.dataclass(frozen=True)
class InputConfig:
  """The static shapes of judge batches and how images are shown.

  Attributes:
    batch_size: rows per forward pass (B); a multiple of the mesh's batch shards.
    max_tokens: tokens per row (T).
    max_patches: image patches per row (P).
    max_images: images per row (I); a request with more fails.
    images: show the prompt's images to the judge (METHOD.md §3: judges see the image).
    min_pixels, max_pixels: image resizing bounds, None for `data.images` defaults.
  """

  batch_size: int = 16
  max_tokens: int = 256
  max_patches: int = 256
  max_images: int = 1
  images: bool = True
  min_pixels: int | None = None
  max_pixels: int | None = None

  def __post_init__(self):
    for name in ("batch_size", "max_tokens", "max_patches", "max_images"):
      if getattr(self, name) < 1:
        raise ValueError(f"InputConfig.{name} must be >= 1, got {getattr(self, name)}")
    if self.max_patches % 4:
      raise ValueError(f"InputConfig.max_patches must be a multiple of 4 (the merge unit), got "
                       f"{self.max_patches}")

  @classmethod
  def from_config(cls, cfg: Any, path: str = "judges.inputs") -> InputConfig:
    return infra_config.from_config(cls, cfg, path)


@dataclasses.dataclass(frozen=True)
class JudgeRequest:
  """One text to judge under one template."""

  template: judges_prompts.JudgeTemplate
  question: str
  text: str
  gold: str | None = None
  images: tuple[np.ndarray, ...] = ()


@dataclasses.dataclass(frozen=True)
class Encoded:
  """A rendered request: ids int32 [L], patches float32 [n, 1176], grids int32 [k, 3]."""

  ids: np.ndarray
  patches: np.ndarray
  grids: np.ndarray
  truncated: bool


class RequestError(ValueError):
  """A request the judge cannot score; `reason` is one of `FAILURES`."""

  def __init__(self, reason: str, message: str):
    super().__init__(f"{reason}: {message}")
    self.reason = reason


def _render(request: JudgeRequest, text: str, grids, tokenizer) -> np.ndarray:
  turns = [chat.Turn("system", request.template.system),
           chat.Turn("user", (*(chat.ImageSlot(g) for g in grids),
                              request.template.user_text(request.question, text, request.gold)))]
  return chat.render(turns, tokenizer, add_generation_prompt=True).ids


def encode(request: JudgeRequest, tokenizer: tokenizer_lib.Tokenizer, config: InputConfig,
           reserve: int = 0) -> Encoded:
  """Renders one request within `config.max_tokens - reserve` tokens.

  Raises:
    RequestError: by the rules of the module docstring.
  """
  if not request.text.strip():
    raise RequestError("empty", "there is no text to judge")
  if request.template.uses_gold and request.gold is None:
    raise RequestError("missing_gold", f"template {request.template.name!r} needs a gold answer")
  patches, grids = [], []
  if config.images and request.images:
    if len(request.images) > config.max_images:
      raise RequestError("image", f"{len(request.images)} images > max_images "
                         f"{config.max_images}")
    for image in request.images:
      try:
        p, grid = images_lib.preprocess_image(image, config.min_pixels, config.max_pixels)
      except (TypeError, ValueError) as e:
        raise RequestError("image", str(e)) from None
      patches.append(p)
      grids.append(grid)
    if sum(len(p) for p in patches) > config.max_patches:
      raise RequestError("image", f"{sum(len(p) for p in patches)} patches > max_patches "
                         f"{config.max_patches}")
  limit = config.max_tokens - reserve
  ids = _render(request, request.text, grids, tokenizer)
  truncated = False
  if len(ids) > limit:
    text_ids = tokenizer.encode(request.text)
    keep = len(text_ids) - (len(ids) - limit)
    while len(ids) > limit:
      if keep <= 0:
        raise RequestError("too_long", f"the prompt needs {len(ids)} tokens with the judged text "
                           f"cut to {max(keep, 0)} tokens; the budget is {limit}")
      ids = _render(request, tokenizer.decode(text_ids[:keep]), grids, tokenizer)
      keep -= max(len(ids) - limit, 1)
    truncated = True
  return Encoded(
      ids.astype(np.int32),
      np.concatenate(patches).astype(np.float32) if patches
      else np.zeros((0, PATCH_DIM), np.float32),
      np.asarray(grids, np.int32).reshape(-1, 3), truncated)


@dataclasses.dataclass(frozen=True)
class HostBatch:
  """Numpy arrays of one batch (see the module docstring)."""

  tokens: np.ndarray
  segment_ids: np.ndarray
  patches: np.ndarray
  grids: np.ndarray
  read_at: np.ndarray
  verdict_ids: np.ndarray
  loss_mask: np.ndarray


def assemble(rows: Sequence[Encoded | None], verdict_ids: Sequence[Sequence[int] | None],
             config: InputConfig, pad_id: int, targets: Sequence[int] | None = None
             ) -> HostBatch:
  """Packs up to B encoded requests (None: an empty row) into one static batch.

  Args:
    rows: the encoded requests, at most `config.batch_size`.
    verdict_ids: each row's verdict token ids (None for an empty row).
    config: the shapes.
    pad_id: the tokenizer's pad id.
    targets: training: each row's verdict token id, appended after the prompt with loss
      mask 1 (rows must have been encoded with `reserve=1`).
  """
  b, t, p, k = config.batch_size, config.max_tokens, config.max_patches, config.max_images
  if len(rows) > b:
    raise ValueError(f"assemble: {len(rows)} rows for a batch of {b}")
  tokens = np.full((b, t), pad_id, np.int32)
  segment_ids = np.zeros((b, t), np.int32)
  segment_ids[:, 0] = 1
  patches = np.zeros((b, p, PATCH_DIM), np.float32)
  grids = np.zeros((b, k, 3), np.int32)
  read_at = np.zeros((b,), np.int32)
  verdicts_bv = np.zeros((b, MAX_VERDICTS), np.int32)
  loss_mask = np.zeros((b, t), np.float32)
  for r, row in enumerate(rows):
    if row is None:
      continue
    ids = row.ids
    if targets is not None:
      ids = np.append(ids, np.int32(targets[r]))
      loss_mask[r, len(ids) - 1] = 1.0
    if len(ids) > t:
      raise ValueError(f"assemble: row {r} has {len(ids)} tokens > max_tokens {t}")
    tokens[r, :len(ids)] = ids
    segment_ids[r, :len(ids)] = 1
    patches[r, :len(row.patches)] = row.patches
    grids[r, :len(row.grids)] = row.grids
    read_at[r] = len(row.ids) - 1
    v = list(verdict_ids[r])
    if not 0 < len(v) <= MAX_VERDICTS:
      raise ValueError(f"assemble: row {r} has {len(v)} verdicts; 1 to {MAX_VERDICTS} allowed")
    verdicts_bv[r] = v + [v[0]] * (MAX_VERDICTS - len(v))
  return HostBatch(tokens, segment_ids, patches, grids, read_at, verdicts_bv, loss_mask)


def pack_training(queue: Sequence[tuple[Encoded, Sequence[int], int]], config: InputConfig,
                  pad_id: int, lookahead: int | None = None
                  ) -> tuple[HostBatch, list[int]]:
  """Packs training requests first-fit into one static batch, several to a row.

  Each request is (encoded with `reserve=1`, its verdict ids, its target verdict id); it
  takes its prompt's tokens plus the target, its images and its patches in the first row
  with room for all three, as its own segment (ids 1, 2, ... in the row; positions
  restart in each, so a packed row computes what separate rows would). The loss mask is
  1 on every target. `read_at` and `verdict_ids` describe each row's first request only
  (training reads neither).

  Args:
    queue: candidate requests in order of preference.
    config: the batch shapes; `max_images` and `max_patches` bound a whole row.
    pad_id: the tokenizer's pad id.
    lookahead: how many of `queue` to try (default all); the first always fits.

  Returns:
    the batch and the indices into `queue` it took (in the order taken).

  Raises:
    ValueError: the first request fits no empty row.
  """
  b, t, p, k = config.batch_size, config.max_tokens, config.max_patches, config.max_images
  tokens = np.full((b, t), pad_id, np.int32)
  segment_ids = np.zeros((b, t), np.int32)
  patches = np.zeros((b, p, PATCH_DIM), np.float32)
  grids = np.zeros((b, k, 3), np.int32)
  read_at = np.zeros((b,), np.int32)
  verdicts_bv = np.zeros((b, MAX_VERDICTS), np.int32)
  loss_mask = np.zeros((b, t), np.float32)
  used_t, used_p, used_i, segs = (np.zeros((b,), np.int64) for _ in range(4))
  taken = []
  for index in range(len(queue) if lookahead is None else min(lookahead, len(queue))):
    encoded, verdict_ids, target = queue[index]
    n, n_p, n_i = len(encoded.ids) + 1, len(encoded.patches), len(encoded.grids)
    fits = np.flatnonzero((used_t + n <= t) & (used_p + n_p <= p) & (used_i + n_i <= k))
    if not len(fits):
      if index == 0:
        raise ValueError(f"pack_training: a request of {n} tokens, {n_p} patches and {n_i} "
                         f"images fits no row of {t} tokens, {p} patches, {k} images")
      continue
    r = fits[0]
    start = used_t[r]
    tokens[r, start:start + n - 1] = encoded.ids
    tokens[r, start + n - 1] = target
    segs[r] += 1
    segment_ids[r, start:start + n] = segs[r]
    loss_mask[r, start + n - 1] = 1.0
    patches[r, used_p[r]:used_p[r] + n_p] = encoded.patches
    grids[r, used_i[r]:used_i[r] + n_i] = encoded.grids
    if segs[r] == 1:
      read_at[r] = n - 2
      v = list(verdict_ids)
      verdicts_bv[r] = v + [v[0]] * (MAX_VERDICTS - len(v))
    used_t[r] += n
    used_p[r] += n_p
    used_i[r] += n_i
    taken.append(index)
  empty = used_t == 0
  segment_ids[empty, 0] = 1  # No fully masked row (as `assemble`).
  verdicts_bv[empty] = verdicts_bv[0]
  return HostBatch(tokens, segment_ids, patches, grids, read_at, verdicts_bv, loss_mask), taken


def model_inputs_of(batch: HostBatch, config: ModelConfig, images: bool = True
                    ) -> model_inputs.ModelInputs:
  """The model's inputs (numpy); with `images` the vision inputs are always present, so
  batches with and without images share one compiled forward."""
  inputs, _ = model_inputs.make_inputs(batch.tokens, batch.segment_ids, config,
                                       batch.patches if images else None,
                                       batch.grids if images else None)
  return inputs

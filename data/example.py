"""The one example type every source (the world, users' JSONL, benchmark readers) yields."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

# Labels route a prompt to its reward recipe (METHOD.md §3). Others are allowed and get
# the format reward only.
LABELS = ("general", "safety", "value", "knowledge", "instruction")


@dataclasses.dataclass(frozen=True)
class Example:
  """One prompt, its images, its gold information and, for SFT data, a response.

  Attributes:
    uid: a stable unique id (the source's own id where it has one).
    label: the reward-recipe label, usually one of `LABELS`.
    question: the user's text. Images are placed before it in the user turn, in order.
    images: uint8 arrays [height, width, 3].
    gold: the gold answer where there is one (general, knowledge, value, benchmarks).
    response: the assistant text for SFT and judge data, `<think>...</think> answer`.
    system: the system prompt, or None for the template's default.
    meta: source-specific fields (e.g. `harmful`, `jailbreak`, `choices`, `verdict`,
      `search_only`, `benchmark`); JSON-serialisable values only.
  """

  uid: str
  label: str
  question: str
  images: tuple[np.ndarray, ...] = ()
  gold: str | None = None
  response: str | None = None
  system: str | None = None
  meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if not self.uid:
      raise ValueError("Example.uid must be a non-empty string")
    if not isinstance(self.question, str) or not self.question.strip():
      raise ValueError(f"Example {self.uid!r}: `question` must be a non-empty string")
    for i, image in enumerate(self.images):
      if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"Example {self.uid!r}: image {i} must be uint8 [height, width, 3], "
                         f"got {image.dtype} {image.shape}")

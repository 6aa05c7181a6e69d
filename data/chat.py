"""The Qwen2.5-VL chat template, rendered straight to token ids with an SFT loss mask.

A conversation renders as

  <|im_start|>system\\n{system}<|im_end|>\\n
  <|im_start|>user\\n<|vision_start|><|image_pad|>*n<|vision_end|>{text}<|im_end|>\\n
  <|im_start|>assistant\\n{response}<|im_end|>\\n

with the default system turn when the first turn is not a system one, and each image's
pad run as long as the number of LM tokens its patch grid merges into. The ids equal
those of Qwen's jinja template applied by an HF tokenizer to the same conversation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from data import example as example_lib
from data import tokenizer as tokenizer_lib

DEFAULT_SYSTEM = "You are a helpful assistant."
ROLES = ("system", "user", "assistant")


@dataclasses.dataclass(frozen=True)
class ImageSlot:
  """An image's place in a turn, by its patch grid (t, h, w) from `data.images`."""

  grid_thw: tuple[int, int, int]

  def __post_init__(self):
    grid = tuple(self.grid_thw)
    if len(grid) != 3 or any(not isinstance(v, (int, np.integer)) or v <= 0 for v in grid):
      raise ValueError(f"ImageSlot.grid_thw must be 3 positive ints (t, h, w), got {grid}")
    object.__setattr__(self, "grid_thw", tuple(int(v) for v in grid))

  def num_tokens(self, merge_size: int) -> int:
    """How many image-pad tokens stand for this image: t*h*w / merge_size²."""
    t, h, w = self.grid_thw
    if h % merge_size or w % merge_size:
      raise ValueError(f"image grid {self.grid_thw} is not divisible by merge_size {merge_size}")
    return t * h * w // merge_size**2


@dataclasses.dataclass(frozen=True)
class Turn:
  """One message: a role and its content, text and (user turns only) images in order."""

  role: str
  content: tuple[str | ImageSlot, ...] | str

  def __post_init__(self):
    if self.role not in ROLES:
      raise ValueError(f"Turn.role must be one of {ROLES}, got {self.role!r}")
    content = (self.content,) if isinstance(self.content, str) else tuple(self.content)
    for part in content:
      if not isinstance(part, (str, ImageSlot)):
        raise TypeError(f"Turn.content parts must be str or ImageSlot, got {type(part).__name__}")
      if isinstance(part, ImageSlot) and self.role != "user":
        raise ValueError(f"a {self.role} turn cannot hold an image; only user turns can")
    object.__setattr__(self, "content", content)


@dataclasses.dataclass(frozen=True)
class Rendered:
  """A rendered conversation.

  Attributes:
    ids: int32 [T] token ids.
    loss_mask: int32 [T]; 1 on assistant content tokens (any token holding part of an
      assistant turn's text, a forced prefix included) and each assistant turn's closing
      <|im_end|>, 0 elsewhere.
  """

  ids: np.ndarray
  loss_mask: np.ndarray


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
  n = 0
  while n < min(len(a), len(b)) and a[n] == b[n]:
    n += 1
  return n


class _Builder:
  """Appends id runs and their mask values."""

  def __init__(self, tokenizer: tokenizer_lib.Tokenizer):
    self.tok = tokenizer
    self.ids: list[int] = []
    self.mask: list[int] = []

  def add(self, ids: Sequence[int], mask: int) -> None:
    self.ids.extend(ids)
    self.mask.extend([mask] * len(ids))

  def add_assistant_text(self, text: str) -> None:
    """Appends `assistant\\n{text}` tokenized as one string, as the reference does; the
    mask starts at the first token holding a character of `text` (a token may merge the
    header's newline with the text's start)."""
    header = "assistant\n"
    whole = self.tok.encode(header + text)
    start = _common_prefix(whole, self.tok.encode(header))
    self.add(whole[:start], 0)
    self.add(whole[start:], 1)

  def add_turn_content(self, turn: Turn, merge_size: int) -> None:
    """Appends `{role}\\n{content}`; special ids split the text, so pieces encode alone."""
    special = self.tok.special
    text = turn.role + "\n"
    for part in turn.content:
      if isinstance(part, str):
        text += part
        continue
      self.add(self.tok.encode(text), 0)
      text = ""
      self.add([special.vision_start] + [special.image_pad] * part.num_tokens(merge_size)
               + [special.vision_end], 0)
    self.add(self.tok.encode(text), 0)


def render(turns: Sequence[Turn], tokenizer: tokenizer_lib.Tokenizer, *,
           add_generation_prompt: bool = False, assistant_prefix: str | None = None,
           merge_size: int = 2) -> Rendered:
  """Renders a conversation with the Qwen2.5-VL template.

  Args:
    turns: the messages in order; a system turn first replaces the default system prompt.
    tokenizer: any `data.tokenizer.Tokenizer`.
    add_generation_prompt: end with an opened assistant turn, `<|im_start|>assistant\\n`.
    assistant_prefix: forced-prefix mode: end with an assistant turn opened and started
      with this text (kept exactly, whitespace included), not closed. Excludes
      `add_generation_prompt`.
    merge_size: the vision merger's side; each image has t*h*w/merge_size² pad tokens.

  Returns:
    The ids and the assistant loss mask.
  """
  if not turns and assistant_prefix is None and not add_generation_prompt:
    raise ValueError("render: the conversation is empty")
  if add_generation_prompt and assistant_prefix is not None:
    raise ValueError("render: give add_generation_prompt or assistant_prefix, not both")
  special = tokenizer.special
  out = _Builder(tokenizer)
  newline = tokenizer.encode("\n")
  if not turns or turns[0].role != "system":
    turns = [Turn("system", DEFAULT_SYSTEM), *turns]
  for turn in turns:
    out.add([special.im_start], 0)
    if turn.role == "assistant":
      out.add_assistant_text("".join(turn.content))
      out.add([special.im_end], 1)
    else:
      out.add_turn_content(turn, merge_size)
      out.add([special.im_end], 0)
    out.add(newline, 0)
  if add_generation_prompt or assistant_prefix is not None:
    out.add([special.im_start], 0)
    out.add_assistant_text(assistant_prefix or "")
  return Rendered(np.asarray(out.ids, np.int32), np.asarray(out.mask, np.int32))


def example_turns(example: example_lib.Example, grids: Sequence[tuple[int, int, int]],
                  with_response: bool = False) -> list[Turn]:
  """The turns of an `Example`: its system prompt (or the default), a user turn with its
  images (grids in the same order) before the question, and optionally its response."""
  if len(grids) != len(example.images):
    raise ValueError(f"Example {example.uid!r}: {len(example.images)} images but "
                     f"{len(grids)} grids")
  turns = [Turn("system", example.system)] if example.system is not None else []
  turns.append(Turn("user", (*(ImageSlot(tuple(g)) for g in grids), example.question)))
  if with_response:
    if example.response is None:
      raise ValueError(f"Example {example.uid!r}: with_response asks for a response, "
                       "but `response` is None")
    turns.append(Turn("assistant", example.response))
  return turns


def encode_example(example: example_lib.Example, tokenizer: tokenizer_lib.Tokenizer,
                   grids: Sequence[tuple[int, int, int]], *, with_response: bool = False,
                   assistant_prefix: str | None = None, merge_size: int = 2) -> Rendered:
  """Ids of an `Example`: the prompt with the generation prompt (or the forced prefix), or,
  with `with_response`, the whole SFT conversation with its loss mask."""
  if with_response and assistant_prefix is not None:
    raise ValueError(f"Example {example.uid!r}: with_response and assistant_prefix exclude "
                     "each other")
  turns = example_turns(example, grids, with_response)
  return render(turns, tokenizer, add_generation_prompt=not with_response and
                assistant_prefix is None, assistant_prefix=assistant_prefix,
                merge_size=merge_size)

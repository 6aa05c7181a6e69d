"""Tokenizers: one interface, two backends (a SentencePiece model trained in-process, and
an HF `tokenizer.json` such as Qwen's real one).

Every backend maps each string of `data.special_tokens` to one id, reported in
`SpecialIds`, and `encode` turns those strings inside ordinary text into their single ids.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import os
import pathlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol, runtime_checkable

import sentencepiece as spm
import tokenizers

from data import special_tokens

# SpecialIds field -> the token string it holds.
_SPECIAL_FIELDS = {
    "pad": special_tokens.PAD,
    "im_start": special_tokens.IM_START,
    "im_end": special_tokens.IM_END,
    "think_open": special_tokens.THINK_OPEN,
    "think_close": special_tokens.THINK_CLOSE,
    "vision_start": special_tokens.VISION_START,
    "vision_end": special_tokens.VISION_END,
    "image_pad": special_tokens.IMAGE_PAD,
    "video_pad": special_tokens.VIDEO_PAD,
    "tool_call_open": special_tokens.TOOL_CALL_OPEN,
    "tool_call_close": special_tokens.TOOL_CALL_CLOSE,
    "tool_response_open": special_tokens.TOOL_RESPONSE_OPEN,
    "tool_response_close": special_tokens.TOOL_RESPONSE_CLOSE,
    "confidence_open": special_tokens.CONFIDENCE_OPEN,
    "confidence_close": special_tokens.CONFIDENCE_CLOSE,
}


@dataclasses.dataclass(frozen=True)
class SpecialIds:
  """The id of every special token of `data.special_tokens`, one field per string."""

  pad: int
  im_start: int
  im_end: int
  think_open: int
  think_close: int
  vision_start: int
  vision_end: int
  image_pad: int
  video_pad: int
  tool_call_open: int
  tool_call_close: int
  tool_response_open: int
  tool_response_close: int
  confidence_open: int
  confidence_close: int

  @classmethod
  def lookup(cls, token_to_id: Callable[[str], int | None], source: str) -> SpecialIds:
    """Looks every special string up; raises ValueError naming all that `source` lacks."""
    ids = {field: token_to_id(token) for field, token in _SPECIAL_FIELDS.items()}
    missing = [_SPECIAL_FIELDS[field] for field, i in ids.items() if i is None]
    if missing:
      raise ValueError(f"{source}: the vocabulary lacks the special tokens {missing}")
    return cls(**ids)

  def all(self) -> frozenset[int]:
    """The set of all special ids."""
    return frozenset(dataclasses.astuple(self))

  def token_of(self) -> dict[int, str]:
    """Id -> special-token string."""
    return {getattr(self, field): token for field, token in _SPECIAL_FIELDS.items()}


if set(_SPECIAL_FIELDS.values()) != set(special_tokens.ALL):
  raise ImportError("data.tokenizer: SpecialIds does not cover data.special_tokens.ALL")


@runtime_checkable
class Tokenizer(Protocol):
  """What every backend offers. Ids are Python ints in [0, vocab_size)."""

  special: SpecialIds

  @property
  def vocab_size(self) -> int:
    """The number of ids, special tokens included."""

  def encode(self, text: str) -> list[int]:
    """Token ids of `text`; each special-token string in it becomes its single id."""

  def decode(self, ids: Sequence[int], skip_special: bool = False) -> str:
    """The text of `ids`; with `skip_special`, the ids of `special` are left out."""

  def token_to_id(self, token: str) -> int:
    """The id of one vocabulary entry; KeyError when there is none."""

  def id_to_token(self, token_id: int) -> str:
    """The vocabulary entry of one id; IndexError when out of range."""


def _check_ids(ids: Sequence[int], vocab_size: int) -> list[int]:
  ids = [int(i) for i in ids]
  bad = [i for i in ids if not 0 <= i < vocab_size]
  if bad:
    raise IndexError(f"token ids {bad[:5]} are outside [0, {vocab_size})")
  return ids


_CACHED_CHARS = 200  # SentencePieceTokenizer.encode remembers strings up to this long ...
_CACHED_STRINGS = 1 << 16  # ... this many at a time.


class SentencePieceTokenizer:
  """A SentencePiece model with every special token as one user-defined piece."""

  MODEL_FILE = "tokenizer.model"

  def __init__(self, model_proto: bytes, path: pathlib.Path | None = None):
    self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
    self.model_proto = model_proto
    # The model file (e.g. for seqio.SentencePieceVocabulary); None when built in memory.
    self.path = path
    self.special = SpecialIds.lookup(self._lookup, str(path or "<memory>"))
    self._special_ids = self.special.all()
    # Short strings recur (chat roles, system prompts, template fragments): rendering the
    # 48,000 judge prompts of the world made 670,000 calls, most of them repeats.
    self._short: dict[str, tuple[int, ...]] = {}

  @classmethod
  def from_file(cls, path: str | os.PathLike[str]) -> SentencePieceTokenizer:
    """Loads a `.model` file written by `train_sentencepiece` (or any with our specials)."""
    path = pathlib.Path(path)
    if not path.is_file():
      raise FileNotFoundError(f"SentencePiece model {path} does not exist")
    return cls(path.read_bytes(), path=path)

  def _lookup(self, token: str) -> int | None:
    i = self._sp.piece_to_id(token)
    # piece_to_id answers unk for an unknown piece.
    return None if i == self._sp.unk_id() and token != self._sp.id_to_piece(i) else i

  @property
  def vocab_size(self) -> int:
    return self._sp.get_piece_size()

  def encode(self, text: str) -> list[int]:
    if len(text) > _CACHED_CHARS:
      return self._sp.encode(text, out_type=int)
    ids = self._short.get(text)
    if ids is None:
      if len(self._short) >= _CACHED_STRINGS:
        self._short.clear()
      ids = self._short[text] = tuple(self._sp.encode(text, out_type=int))
    return list(ids)

  def decode(self, ids: Sequence[int], skip_special: bool = False) -> str:
    ids = _check_ids(ids, self.vocab_size)
    if skip_special:
      ids = [i for i in ids if i not in self._special_ids]
    return self._sp.decode(ids)

  def token_to_id(self, token: str) -> int:
    i = self._lookup(token)
    if i is None:
      raise KeyError(f"{token!r} is not in the SentencePiece vocabulary")
    return i

  def id_to_token(self, token_id: int) -> str:
    return self._sp.id_to_piece(_check_ids([token_id], self.vocab_size)[0])


# Every special token, and the newline, is one fixed piece: no piece spans a newline, so
# text split at newlines encodes to the same ids as the whole, and training lines suffice.
_USER_SYMBOLS = (*special_tokens.ALL, "\n")
_BYTE_PIECES = 256  # byte_fallback adds <0x00>..<0xFF>.


def _training_lines(texts: Iterable[str]) -> Iterator[str]:
  for text in texts:
    if not isinstance(text, str):
      raise TypeError(f"train_sentencepiece: texts must be strings, got {type(text).__name__}")
    yield from (line for line in text.split("\n") if line)


def train_sentencepiece(texts: Iterable[str], vocab_size: int,
                        model_dir: str | os.PathLike[str],
                        whole_words: Sequence[str] = ()) -> SentencePieceTokenizer:
  """Trains a BPE SentencePiece model in-process and saves it as `model_dir/tokenizer.model`.

  Text is kept as is (identity normalisation, no dummy prefix, whitespace runs kept) so
  `decode(encode(text)) == text` for any text; unseen characters fall back to bytes;
  digits are always single pieces so arithmetic stays learnable. The same texts give the
  same model bytes (one thread, no sampling of sentences).

  Args:
    texts: the training corpus; each text is split at newlines.
    vocab_size: the requested number of ids, special and byte pieces included. A corpus too
      small for it gives a smaller vocabulary (see `.vocab_size`).
    model_dir: the directory to write `tokenizer.model` into (created if missing).
    whole_words: words that are always one piece, as the first word of a line and after
      a space (two pieces each, on top of `vocab_size`). A tiny model copies a name from
      its prompt far more easily as one piece than as the four byte-like pieces a small
      BPE vocabulary gives a rare name.
  """
  words = sorted(set(whole_words))
  bad = [w for w in words if not w or any(c.isspace() for c in w)]
  if bad:
    raise ValueError(f"train_sentencepiece: whole_words must be non-empty words without "
                     f"whitespace, got {bad[:5]}")
  floor = 1 + len(_USER_SYMBOLS) + _BYTE_PIECES + 1
  if vocab_size < floor:
    raise ValueError(f"train_sentencepiece: vocab_size {vocab_size} is below {floor} "
                     "(unk, special tokens, newline, 256 byte pieces and one learnt piece)")
  model = io.BytesIO()
  lines = _training_lines(texts)
  try:
    first = next(lines)
  except StopIteration:
    raise ValueError("train_sentencepiece: the corpus has no non-empty line") from None
  # SentencePiece writes a space as U+2581 before matching user symbols.
  pieces = [p for w in words for p in (w, "\u2581" + w)]
  spm.SentencePieceTrainer.train(
      sentence_iterator=itertools.chain([first], lines), model_writer=model,
      vocab_size=vocab_size + len(pieces), model_type="bpe",
      user_defined_symbols=[*_USER_SYMBOLS, *pieces], byte_fallback=True,
      split_digits=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
      add_dummy_prefix=False, allow_whitespace_only_pieces=True, character_coverage=1.0,
      unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, num_threads=1, input_sentence_size=0,
      shuffle_input_sentence=False, max_sentence_length=1 << 20, hard_vocab_limit=False,
      minloglevel=2)
  model_dir = pathlib.Path(model_dir)
  model_dir.mkdir(parents=True, exist_ok=True)
  path = model_dir / SentencePieceTokenizer.MODEL_FILE
  path.write_bytes(model.getvalue())
  return SentencePieceTokenizer(model.getvalue(), path=path)


class HFTokenizer:
  """A `tokenizers` tokenizer from a `tokenizer.json` (the format of Qwen's own)."""

  def __init__(self, tokenizer: tokenizers.Tokenizer, source: str = "<memory>"):
    self._tok = tokenizer
    self.special = SpecialIds.lookup(tokenizer.token_to_id, source)
    self._special_ids = self.special.all()
    # A string in the vocabulary but not registered as an added token is split by encode.
    split = [token for token in special_tokens.ALL
             if tokenizer.encode(token, add_special_tokens=False).ids
             != [tokenizer.token_to_id(token)]]
    if split:
      raise ValueError(f"{source}: the special tokens {split} are in the vocabulary but are "
                       "not added tokens, so text containing them would not encode to one id")

  @classmethod
  def from_file(cls, path: str | os.PathLike[str],
                add_missing_special: bool = False) -> HFTokenizer:
    """Loads `tokenizer.json`.

    Args:
      path: the file.
      add_missing_special: append the special tokens the file lacks as new added tokens
        (Qwen2.5-VL's real file lacks the think, tool-response and confidence markers; its
        model's embedding has spare rows for them). Otherwise a missing one is an error.
    """
    path = pathlib.Path(path)
    if not path.is_file():
      raise FileNotFoundError(f"tokenizer file {path} does not exist")
    try:
      tok = tokenizers.Tokenizer.from_file(str(path))
    except Exception as e:
      raise ValueError(f"{path}: not a readable tokenizer.json ({e})") from e
    if add_missing_special:
      missing = [t for t in special_tokens.ALL if tok.token_to_id(t) is None]
      tok.add_special_tokens([tokenizers.AddedToken(t, special=True, normalized=False)
                              for t in missing])
    return cls(tok, source=str(path))

  @property
  def vocab_size(self) -> int:
    return self._tok.get_vocab_size(with_added_tokens=True)

  def encode(self, text: str) -> list[int]:
    return self._tok.encode(text, add_special_tokens=False).ids

  def decode(self, ids: Sequence[int], skip_special: bool = False) -> str:
    ids = _check_ids(ids, self.vocab_size)
    if skip_special:
      ids = [i for i in ids if i not in self._special_ids]
    return self._tok.decode(ids, skip_special_tokens=skip_special)

  def token_to_id(self, token: str) -> int:
    i = self._tok.token_to_id(token)
    if i is None:
      raise KeyError(f"{token!r} is not in the tokenizer's vocabulary")
    return i

  def id_to_token(self, token_id: int) -> str:
    return self._tok.id_to_token(_check_ids([token_id], self.vocab_size)[0])

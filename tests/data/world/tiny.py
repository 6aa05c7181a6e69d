"""A tiny world and a SentencePiece tokenizer trained on it, shared by the data tests."""

import functools
import pathlib
import tempfile

from data.tokenizer import SentencePieceTokenizer, train_sentencepiece
from data.world import World, WorldConfig

TINY_CONFIG = WorldConfig(seed=11, sft_examples=160, rl_examples=48, search_rl_examples=12,
                          eval_examples=48, judge_train_examples=64, judge_eval_examples=24,
                          known_entities=6, practice_entities=6, search_rl_entities=3,
                          search_eval_entities=3, distractor_entities=6)
VOCAB_SIZE = 400
# Large enough for exact-rate checks, small enough to generate in about a second.
SMALL_CONFIG = WorldConfig(seed=3, sft_examples=900, rl_examples=300, search_rl_examples=60,
                           eval_examples=300, judge_train_examples=900, judge_eval_examples=300)


@functools.lru_cache(maxsize=None)
def tiny_world() -> World:
  return World(TINY_CONFIG)


@functools.lru_cache(maxsize=None)
def _trained() -> tuple[SentencePieceTokenizer, pathlib.Path]:
  model_dir = pathlib.Path(tempfile.mkdtemp(prefix="tiny_world_spm_"))
  tokenizer = train_sentencepiece(tiny_world().text_corpus(), VOCAB_SIZE, model_dir)
  return tokenizer, model_dir / SentencePieceTokenizer.MODEL_FILE


def tiny_tokenizer() -> SentencePieceTokenizer:
  return _trained()[0]


def tiny_tokenizer_file() -> pathlib.Path:
  """The tokenizer's `.model` file."""
  return _trained()[1]


def tiny_model_config(tokenizer):
  """The `tiny` preset sized to `tokenizer`, its special ids in the model's slots."""
  from models import presets  # Only the model tests need it.

  s = tokenizer.special
  return presets.get_preset("tiny", vocab_size=tokenizer.vocab_size, image_token_id=s.image_pad,
                            video_token_id=s.video_pad, vision_start_token_id=s.vision_start,
                            vision_end_token_id=s.vision_end)

"""Tests of data/tokenizer.py: both backends against the `tokenizers`/transformers reference,
exact round trips, one id per special token, determinism and clear errors."""

import json
import pathlib
import random

import pytest
import tokenizers
import transformers
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

from data import special_tokens
from data import tokenizer as tok_lib

# Qwen2's pre-tokenizer split pattern (the published tokenizer.json's `Split` regex).
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
              r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def world_like_texts(n: int, seed: int = 0) -> list[str]:
  """Prompts and responses shaped like the SafeLadder world's."""
  rng = random.Random(seed)
  colours = ["red", "blue", "green", "yellow"]
  shapes = ["circles", "squares", "triangles", "stars"]
  out = []
  for _ in range(n):
    a, b = rng.randint(0, 999), rng.randint(0, 99)
    c, s = rng.choice(colours), rng.choice(shapes)
    out.append(f"How many {c} {s} are in the image?  Then add {b}.\n"
               f"<think>I count {a} {c} {s}.\n{a} + {b} = {a + b}.</think> \\boxed{{{a + b}}}")
    out.append(f"User:\tplease explain how to store {c} paint safely.\n\n  Sure, keep it cool.")
  return out


def build_hf_tokenizer_json(path: pathlib.Path, texts: list[str],
                            specials=special_tokens.ALL, vocab_size: int = 400) -> pathlib.Path:
  """Writes a tiny byte-level BPE tokenizer.json built like Qwen2's (NFC, Qwen split regex,
  byte-level pieces) with `specials` as added special tokens."""
  tok = tokenizers.Tokenizer(models.BPE())
  tok.normalizer = normalizers.NFC()
  tok.pre_tokenizer = pre_tokenizers.Sequence([
      pre_tokenizers.Split(tokenizers.Regex(QWEN_SPLIT), behavior="isolated"),
      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
  ])
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(texts, trainer=trainer)
  tok.add_special_tokens(list(specials))
  tok.save(str(path))
  return path


@pytest.fixture(scope="module")
def sp_tok(tmp_path_factory):
  return tok_lib.train_sentencepiece(world_like_texts(500), 600,
                                     tmp_path_factory.mktemp("sp"))


@pytest.fixture(scope="module")
def hf_path(tmp_path_factory):
  return build_hf_tokenizer_json(tmp_path_factory.mktemp("hf") / "tokenizer.json",
                                 world_like_texts(300))


ROUND_TRIP = [
    "  leading and trailing spaces  ",
    "tabs\tand\r\nwindows newlines\n\n\nthree newlines",
    "digits 1234567890 and 3.14159 + -2 = 1.14159",
    "unseen characters: 日本語, émigré, 😀, \u00a0no-break, \u200bzero-width",
    "<think>a</think><tool_call>{\"q\": 1}</tool_call><|im_end|>\n<|im_start|>",
    "\n",
    "",
]


@pytest.mark.parametrize("text", ROUND_TRIP + world_like_texts(5, seed=7))
def test_sentencepiece_round_trips_exactly(sp_tok, text):
  assert sp_tok.decode(sp_tok.encode(text)) == text


def test_each_special_string_is_one_id_in_both_backends(sp_tok, hf_path):
  hf_tok = tok_lib.HFTokenizer.from_file(hf_path)
  for tok in (sp_tok, hf_tok):
    assert isinstance(tok, tok_lib.Tokenizer)
    by_id = tok.special.token_of()
    assert sorted(by_id.values()) == sorted(special_tokens.ALL)
    assert len(tok.special.all()) == len(special_tokens.ALL)
    for token_id, token in by_id.items():
      assert tok.token_to_id(token) == token_id
      assert tok.id_to_token(token_id) == token
      ids = tok.encode(f"x{token}y")
      assert ids.count(token_id) == 1
      assert ids == tok.encode("x") + [token_id] + tok.encode("y")


def test_sentencepiece_splits_digits(sp_tok):
  for text in ["1234567890", "x = 9876 + 12"]:
    for i in sp_tok.encode(text):
      piece = sp_tok.decode([i])
      assert not (any(ch.isdigit() for ch in piece) and len(piece) > 1), piece


def test_sentencepiece_is_deterministic_and_loads_from_file(sp_tok, tmp_path):
  again = tok_lib.train_sentencepiece(world_like_texts(500), 600, tmp_path)
  assert again.model_proto == sp_tok.model_proto
  assert again.path == tmp_path / "tokenizer.model"
  loaded = tok_lib.SentencePieceTokenizer.from_file(again.path)
  assert loaded.vocab_size == sp_tok.vocab_size <= 600
  assert loaded.special == sp_tok.special
  text = world_like_texts(1, seed=3)[0]
  assert loaded.encode(text) == sp_tok.encode(text)


def test_whole_words_are_one_piece_at_a_line_start_and_after_a_space(sp_tok, tmp_path):
  words = ["Dosa", "Maviba", "sailor"]
  texts = world_like_texts(500) + ["The capital of Dosa is Maviba.", "The job of Kalo is sailor."]
  tok = tok_lib.train_sentencepiece(texts, 450, tmp_path, whole_words=words)
  for text in ["Dosa was founded.", "The capital of Dosa is Maviba.\nsailor sailor"]:
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    pieces = [tok.decode([i]) for i in ids]
    for word in words:
      assert pieces.count(word) + pieces.count(" " + word) == text.count(word), (word, pieces)
  assert len(sp_tok.encode(" Dosa")) > 1  # Without the option: several pieces.
  # The words come on top of the requested size; the rest of the vocabulary is unchanged.
  plain = tok_lib.train_sentencepiece(texts, 450, tmp_path / "plain")
  assert tok.vocab_size == plain.vocab_size + 2 * len(words)
  assert tok.encode("How many red circles") == [
      tok.token_to_id(plain.id_to_token(i)) for i in plain.encode("How many red circles")]
  with pytest.raises(ValueError, match="without whitespace"):
    tok_lib.train_sentencepiece(texts, 600, tmp_path, whole_words=["two words"])


def test_decode_skips_only_special_ids(sp_tok, hf_path):
  hf_tok = tok_lib.HFTokenizer.from_file(hf_path)
  for tok in (sp_tok, hf_tok):
    ids = tok.encode("<|im_start|>assistant\n<think>x</think> 7<|im_end|>")
    assert tok.decode(ids, skip_special=True) == "assistant\nx 7"


def test_hf_backend_equals_transformers_fast_tokenizer(hf_path):
  ours = tok_lib.HFTokenizer.from_file(hf_path)
  reference = transformers.PreTrainedTokenizerFast(tokenizer_file=str(hf_path))
  assert ours.vocab_size == len(reference)
  for text in ROUND_TRIP + world_like_texts(5, seed=9):
    ids = ours.encode(text)
    assert ids == reference.encode(text, add_special_tokens=False)
    assert ours.decode(ids) == reference.decode(ids)


def test_hf_backend_names_every_missing_special_token(tmp_path):
  lacking = {special_tokens.THINK_OPEN, special_tokens.CONFIDENCE_CLOSE}
  path = build_hf_tokenizer_json(tmp_path / "tokenizer.json", world_like_texts(50),
                                 specials=[t for t in special_tokens.ALL if t not in lacking])
  with pytest.raises(ValueError) as e:
    tok_lib.HFTokenizer.from_file(path)
  assert str(path) in str(e.value)
  assert all(t in str(e.value) for t in lacking)
  added = tok_lib.HFTokenizer.from_file(path, add_missing_special=True)
  assert added.encode(special_tokens.THINK_OPEN) == [added.special.think_open]
  assert added.special.think_open >= added.vocab_size - len(lacking)


def test_hf_backend_rejects_specials_that_are_not_added_tokens(tmp_path):
  path = build_hf_tokenizer_json(tmp_path / "tokenizer.json", world_like_texts(50),
                                 specials=[t for t in special_tokens.ALL if t != "<think>"])
  spec = json.loads(path.read_text())
  spec["model"]["vocab"]["<think>"] = len(spec["model"]["vocab"]) + 100
  path.write_text(json.dumps(spec))
  with pytest.raises(ValueError, match="<think>.*not added tokens"):
    tok_lib.HFTokenizer.from_file(path)


def test_clear_errors(sp_tok, tmp_path):
  with pytest.raises(FileNotFoundError, match="nowhere.json"):
    tok_lib.HFTokenizer.from_file(tmp_path / "nowhere.json")
  (tmp_path / "bad.json").write_text("{not json")
  with pytest.raises(ValueError, match="bad.json"):
    tok_lib.HFTokenizer.from_file(tmp_path / "bad.json")
  with pytest.raises(FileNotFoundError, match="missing.model"):
    tok_lib.SentencePieceTokenizer.from_file(tmp_path / "missing.model")
  with pytest.raises(ValueError, match="vocab_size 100"):
    tok_lib.train_sentencepiece(["abc"], 100, tmp_path)
  with pytest.raises(ValueError, match="no non-empty line"):
    tok_lib.train_sentencepiece(["", "\n"], 600, tmp_path)
  with pytest.raises(KeyError, match="nonexistent-piece"):
    sp_tok.token_to_id("nonexistent-piece")
  with pytest.raises(IndexError, match=str(sp_tok.vocab_size)):
    sp_tok.decode([0, sp_tok.vocab_size])


def test_remembered_short_strings_encode_as_sentencepiece_does(sp_tok, monkeypatch):
  monkeypatch.setattr(tok_lib, "_CACHED_STRINGS", 3)
  texts = ["system", "user", "Is 3 + 4 = 7?", "<think>", "system", "x" * 500, "user"] * 3
  for text in texts:
    first = sp_tok.encode(text)
    first.append(-1)  # A caller's edit of the list it got must not reach the next caller.
    assert sp_tok.encode(text) == sp_tok._sp.encode(text, out_type=int)
    assert len(sp_tok._short) <= 3
  assert "x" * 500 not in sp_tok._short

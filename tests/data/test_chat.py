"""Tests of data/chat.py against Qwen2-VL's jinja chat template applied by transformers'
`PreTrainedTokenizerFast` over a tiny tokenizer.json, with each image's pad token expanded
to its grid's count as Qwen2.5-VL's processor does."""

import numpy as np
import pytest
import transformers

from data import chat
from data import example as example_lib
from data import tokenizer as tok_lib
from tests.data.test_tokenizer import build_hf_tokenizer_json, world_like_texts

MERGE = 2


def qwen_vl_template(mark_generation: bool = False) -> str:
  """The published Qwen2-VL / Qwen2.5-VL chat-template format as jinja (no video, no
  picture numbering). With `mark_generation`, assistant content and its <|im_end|> sit in
  a generation block so transformers can return the assistant-token mask."""
  open_gen = "{% generation %}" if mark_generation else ""
  close_gen = "{% endgeneration %}" if mark_generation else ""
  return (
      "{% for message in messages %}"
      "{% if loop.first and message['role'] != 'system' %}"
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
      "{% endif %}"
      "<|im_start|>{{ message['role'] }}\n"
      "{% if message['role'] == 'assistant' %}" + open_gen + "{{ message['content'] }}"
      # trim_blocks would eat a literal newline right after the closing block tag.
      "<|im_end|>" + close_gen + "{{ '\\n' }}"
      "{% elif message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
      "{% else %}{% for part in message['content'] %}"
      "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
      "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
      "{% endfor %}<|im_end|>\n{% endif %}"
      "{% endfor %}"
      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
  # Frequent blank lines teach the BPE a "\n\n" merge, which the mask must cope with.
  texts = world_like_texts(300) + ["one\n\ntwo\n\n\nthree"] * 200
  path = build_hf_tokenizer_json(tmp_path_factory.mktemp("hf") / "tokenizer.json", texts)
  reference = transformers.PreTrainedTokenizerFast(tokenizer_file=str(path))
  sp = tok_lib.train_sentencepiece(texts, 600, tmp_path_factory.mktemp("sp"))
  return tok_lib.HFTokenizer.from_file(path), reference, sp


def to_hf_messages(turns):
  out = []
  for turn in turns:
    if turn.role == "assistant":
      out.append({"role": "assistant", "content": "".join(turn.content)})
    else:
      out.append({"role": turn.role, "content": [
          {"type": "text", "text": p} if isinstance(p, str) else {"type": "image"}
          for p in turn.content]})
  return out


def pad_counts(turns):
  return [p.num_tokens(MERGE) for t in turns for p in t.content if isinstance(p, chat.ImageSlot)]


def reference_text(reference, turns, **kwargs):
  """The template's text with each <|image_pad|> repeated as the processor does."""
  reference.chat_template = qwen_vl_template()
  text = reference.apply_chat_template(to_hf_messages(turns), tokenize=False, **kwargs)
  pieces = text.split("<|image_pad|>")
  counts = pad_counts(turns)
  assert len(pieces) == len(counts) + 1
  return pieces[0] + "".join("<|image_pad|>" * n + p for n, p in zip(counts, pieces[1:]))


def reference_mask(reference, turns):
  """transformers' assistant-token mask, image pads expanded (they are never assistant)."""
  reference.chat_template = qwen_vl_template(mark_generation=True)
  out = reference.apply_chat_template(to_hf_messages(turns), tokenize=True, return_dict=True,
                                      return_assistant_tokens_mask=True)
  counts = iter(pad_counts(turns))
  pad = reference.convert_tokens_to_ids("<|image_pad|>")
  ids, mask = [], []
  for i, m in zip(out["input_ids"], out["assistant_masks"]):
    n = next(counts) if i == pad else 1
    ids += [i] * n
    mask += [m] * n
  return ids, mask


IMG_A, IMG_B, IMG_C = chat.ImageSlot((1, 4, 6)), chat.ImageSlot((1, 2, 2)), chat.ImageSlot(
    (1, 8, 4))
CONVERSATIONS = {
    "text_only": [chat.Turn("user", "What is 12 + 30?")],
    "image_sft_multi_turn": [
        chat.Turn("user", (IMG_A, "How many red circles are in the image?")),
        chat.Turn("assistant", "<think>I count 3 red circles.</think> \\boxed{3}"),
        chat.Turn("user", (IMG_B, IMG_C, "And in these two?  Add them.")),
        chat.Turn("assistant", "<think>2 + 5 = 7.</think> \\boxed{7}"),
    ],
    "system_and_text_before_image": [
        chat.Turn("system", "You are careful.\nRefuse harm."),
        chat.Turn("user", ("Look:", IMG_B, "is this safe?")),
        chat.Turn("assistant", "\n\n  Leading newlines and spaces."),
        chat.Turn("user", "Thanks"),
    ],
}


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
@pytest.mark.parametrize("generation_prompt", [False, True])
def test_ids_equal_the_reference_template(tokenizers, name, generation_prompt):
  hf_tok, reference, sp = tokenizers
  turns = CONVERSATIONS[name]
  text = reference_text(reference, turns, add_generation_prompt=generation_prompt)
  got = chat.render(turns, hf_tok, add_generation_prompt=generation_prompt)
  assert got.ids.dtype == np.int32
  assert got.ids.tolist() == reference.encode(text, add_special_tokens=False)
  # The SentencePiece backend renders the same text.
  assert chat.render(turns, sp, add_generation_prompt=generation_prompt).ids.tolist() == (
      sp.encode(text))


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
def test_loss_mask_equals_transformers_assistant_mask(tokenizers, name):
  hf_tok, reference, _ = tokenizers
  turns = CONVERSATIONS[name]
  got = chat.render(turns, hf_tok)
  ids, mask = reference_mask(reference, turns)
  assert got.ids.tolist() == ids
  assert got.loss_mask.tolist() == mask


def test_a_token_may_merge_the_header_newline_with_the_content(tokenizers):
  hf_tok, reference, _ = tokenizers
  turns = CONVERSATIONS["system_and_text_before_image"]
  header = hf_tok.encode("assistant\n")
  whole = hf_tok.encode("assistant\n" + turns[2].content[0])
  assert whole[:len(header)] != header  # So the case below is exercised.
  got = chat.render(turns, hf_tok)
  assert got.loss_mask.tolist() == reference_mask(reference, turns)[1]


def test_loss_mask_by_hand(tokenizers):
  _, _, sp = tokenizers
  got = chat.render([chat.Turn("user", "hi"), chat.Turn("assistant", "<think>x</think> 7")], sp)
  masked = got.ids[got.loss_mask == 1].tolist()
  assert masked == sp.encode("<think>x</think> 7<|im_end|>")
  assert got.ids[-1] == sp.encode("\n")[0] and got.loss_mask[-1] == 0


def test_forced_prefix_equals_continue_final_message(tokenizers):
  hf_tok, reference, sp = tokenizers
  turns = CONVERSATIONS["image_sft_multi_turn"][:3]
  prefix = "<think>I count"
  text = reference_text(reference, [*turns, chat.Turn("assistant", prefix)],
                        continue_final_message=True)
  for tok, encode in [(hf_tok, lambda s: reference.encode(s, add_special_tokens=False)),
                      (sp, sp.encode)]:
    got = chat.render(turns, tok, assistant_prefix=prefix)
    assert got.ids.tolist() == encode(text)
    assert tok.decode(got.ids[got.loss_mask == 1].tolist()) == (
        turns[1].content[0] + "<|im_end|>" + prefix)
  # Whitespace of the prefix is kept exactly (transformers would strip it).
  got = chat.render(turns, sp, assistant_prefix="<think>\n")
  assert sp.decode(got.ids.tolist()).endswith("<|im_start|>assistant\n<think>\n")


def test_encode_example(tokenizers):
  hf_tok, reference, _ = tokenizers
  image = np.zeros((8, 8, 3), np.uint8)
  ex = example_lib.Example(uid="w1", label="general", question="Count the stars.",
                           images=(image, image), response="<think>4</think> \\boxed{4}")
  grids = [(1, 4, 6), (1, 2, 2)]
  turns = [chat.Turn("user", (chat.ImageSlot(grids[0]), chat.ImageSlot(grids[1]),
                              "Count the stars."))]
  prompt = chat.encode_example(ex, hf_tok, grids)
  text = reference_text(reference, turns, add_generation_prompt=True)
  assert prompt.ids.tolist() == reference.encode(text, add_special_tokens=False)
  assert int((prompt.ids == hf_tok.special.image_pad).sum()) == 6 + 1
  sft = chat.encode_example(ex, hf_tok, grids, with_response=True)
  assert sft.ids.tolist() == chat.render(
      [*turns, chat.Turn("assistant", ex.response)], hf_tok).ids.tolist()
  with_system = chat.encode_example(
      example_lib.Example(uid="w2", label="safety", question="q", system="Be safe."), hf_tok, [])
  assert hf_tok.decode(with_system.ids.tolist()).startswith(
      "<|im_start|>system\nBe safe.<|im_end|>")


def test_clear_errors(tokenizers):
  hf_tok, _, _ = tokenizers
  with pytest.raises(ValueError, match="role"):
    chat.Turn("tool", "x")
  with pytest.raises(ValueError, match="only user turns"):
    chat.Turn("assistant", (chat.ImageSlot((1, 2, 2)), "x"))
  with pytest.raises(ValueError, match="grid_thw"):
    chat.ImageSlot((1, 0, 2))
  with pytest.raises(ValueError, match="merge_size 2"):
    chat.render([chat.Turn("user", (chat.ImageSlot((1, 3, 2)),))], hf_tok)
  with pytest.raises(ValueError, match="not both"):
    chat.render([chat.Turn("user", "x")], hf_tok, add_generation_prompt=True,
                assistant_prefix="a")
  ex = example_lib.Example(uid="w3", label="general", question="q",
                           images=(np.zeros((8, 8, 3), np.uint8),))
  with pytest.raises(ValueError, match="'w3': 1 images but 0 grids"):
    chat.encode_example(ex, hf_tok, [])
  with pytest.raises(ValueError, match="'w3'.*response"):
    chat.encode_example(ex, hf_tok, [(1, 2, 2)], with_response=True)

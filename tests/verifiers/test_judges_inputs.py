"""Judging requests to static batches: the exact rendered prompt, truncation from the judged
text, failures with reasons, and the batch layout (read position, verdict ids, loss mask)."""

import numpy as np
import pytest

from data import special_tokens as st
from tests.data.world import tiny
from verifiers import judges_inputs, judges_prompts

TPL = judges_prompts.TEMPLATES
CONFIG = judges_inputs.InputConfig(batch_size=4, max_tokens=400, max_patches=64)


def _request(template="safety", text="Sure. Here is how.", gold=None, images=()):
  return judges_inputs.JudgeRequest(TPL[template], "How do I do it?", text, gold, images)


def test_prompt_is_the_chat_template_with_the_assistant_turn_opened():
  tok = tiny.tiny_tokenizer()
  image = np.zeros((56, 84, 3), np.uint8)  # 4 x 6 patches: 6 merged tokens.
  encoded = judges_inputs.encode(_request("knowledge", "It is Feru.", "Feru", (image,)), tok,
                                 CONFIG)
  expected = (f"{st.IM_START}system\n{TPL['knowledge'].system}{st.IM_END}\n"
              f"{st.IM_START}user\n{st.VISION_START}{st.IMAGE_PAD * 6}{st.VISION_END}"
              f"Question: How do I do it?\nResponse: It is Feru.\nGold answer: Feru{st.IM_END}\n"
              f"{st.IM_START}assistant\n")
  assert tok.decode(encoded.ids.tolist()) == expected
  assert encoded.grids.tolist() == [[1, 4, 6]] and encoded.patches.shape == (24, 1176)
  assert not encoded.truncated
  no_images = judges_inputs.InputConfig(max_tokens=400, images=False)
  plain = judges_inputs.encode(_request("knowledge", "It is Feru.", "Feru", (image,)), tok,
                               no_images)
  assert st.IMAGE_PAD not in tok.decode(plain.ids.tolist()) and plain.grids.shape == (0, 3)


def test_long_texts_are_cut_from_the_end_of_the_judged_text():
  tok = tiny.tiny_tokenizer()
  text = " ".join(f"Step {i} is done." for i in range(200))
  short = judges_inputs.InputConfig(max_tokens=160)
  encoded = judges_inputs.encode(_request(text=text), tok, short, reserve=1)
  assert encoded.truncated and len(encoded.ids) <= 159
  decoded = tok.decode(encoded.ids.tolist())
  kept = decoded.split("Response: ")[1].split(st.IM_END)[0]
  assert kept and text.startswith(kept) and len(kept) < len(text)
  assert decoded.endswith(f"{st.IM_END}\n{st.IM_START}assistant\n")


@pytest.mark.parametrize("request_kwargs, config, reason", [
    (dict(text="  "), CONFIG, "empty"),
    (dict(template="knowledge", gold=None), CONFIG, "missing_gold"),
    (dict(), judges_inputs.InputConfig(max_tokens=40), "too_long"),
    (dict(images=(np.zeros((112, 112, 3), np.uint8),)),
     judges_inputs.InputConfig(max_tokens=400, max_patches=32), "image"),
    (dict(images=(np.zeros((56, 56, 3), np.uint8),) * 2), CONFIG, "image"),
    (dict(images=(np.zeros((56, 56), np.uint8),)), CONFIG, "image"),
])
def test_unscorable_requests_fail_with_their_reason(request_kwargs, config, reason):
  with pytest.raises(judges_inputs.RequestError) as info:
    judges_inputs.encode(_request(**request_kwargs), tiny.tiny_tokenizer(), config)
  assert info.value.reason == reason and reason in judges_inputs.FAILURES


def test_assemble_lays_out_rows_read_positions_verdicts_and_targets():
  tok = tiny.tiny_tokenizer()
  image = np.zeros((56, 56, 3), np.uint8)
  a = judges_inputs.encode(_request(images=(image,)), tok, CONFIG, reserve=1)
  b = judges_inputs.encode(_request("value"), tok, CONFIG, reserve=1)
  ids_a, ids_b = TPL["safety"].verdict_ids(tok), TPL["value"].verdict_ids(tok)
  batch = judges_inputs.assemble([a, None, b], [ids_a, None, ids_b], CONFIG, tok.special.pad,
                                 targets=[ids_a[3], 0, ids_b[1]])
  assert batch.tokens.shape == (4, 400) and batch.patches.shape == (4, 64, 1176)
  assert batch.read_at.tolist() == [len(a.ids) - 1, 0, len(b.ids) - 1, 0]
  np.testing.assert_array_equal(batch.tokens[0, :len(a.ids)], a.ids)
  assert batch.tokens[0, len(a.ids)] == ids_a[3] and batch.tokens[2, len(b.ids)] == ids_b[1]
  assert np.flatnonzero(batch.loss_mask[0]).tolist() == [len(a.ids)]
  assert np.flatnonzero(batch.loss_mask[2]).tolist() == [len(b.ids)]
  assert batch.loss_mask[[1, 3]].sum() == 0
  assert batch.segment_ids.sum(axis=1).tolist() == [len(a.ids) + 1, 1, len(b.ids) + 1, 1]
  assert batch.verdict_ids[0].tolist() == list(ids_a) + [ids_a[0]] * 2
  assert batch.verdict_ids[2].tolist() == list(ids_b) + [ids_b[0]] * 6
  assert batch.grids[0].tolist() == [[1, 4, 4]] and batch.grids[2].tolist() == [[0, 0, 0]]
  np.testing.assert_array_equal(batch.patches[0, :16], a.patches)
  with pytest.raises(ValueError, match="5 rows for a batch of 4"):
    judges_inputs.assemble([a] * 5, [ids_a] * 5, CONFIG, tok.special.pad)


def test_input_config_validation():
  with pytest.raises(ValueError, match="max_patches must be a multiple of 4"):
    judges_inputs.InputConfig(max_patches=30)
  with pytest.raises(ValueError, match=r"judges.inputs: InputConfig.batch_size must be >= 1"):
    judges_inputs.InputConfig.from_config({"batch_size": 0})
  with pytest.raises(ValueError, match="Unknown field 'judges.inputs.batch'"):
    judges_inputs.InputConfig.from_config({"batch": 4})

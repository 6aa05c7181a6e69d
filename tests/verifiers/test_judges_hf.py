"""A judge from a tiny random HF Qwen2.5-VL checkpoint and a tokenizer.json scores a batch
end to end; its verdict probabilities equal a transformers forward's."""

import dataclasses

import numpy as np
import pytest
import torch
from transformers import Qwen2_5_VLForConditionalGeneration

from data import special_tokens
from data import tokenizer as tokenizer_lib
from tests.data.test_tokenizer import build_hf_tokenizer_json, world_like_texts
from tests.models import hf_tiny
from tests.verifiers import rollouts
from verifiers import judges, judges_hf, judges_inputs, judges_prompts

INPUTS = judges_inputs.InputConfig(batch_size=4, max_tokens=192, max_patches=64)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  """(directory, transformers model): weights scaled as tests/models/hf_tiny.py does, the
  vocabulary and special ids those of a tiny byte-level BPE tokenizer.json."""
  directory = tmp_path_factory.mktemp("hf_judge")
  build_hf_tokenizer_json(directory / judges_hf.TOKENIZER_FILE, world_like_texts(300))
  tok = tokenizer_lib.HFTokenizer.from_file(directory / judges_hf.TOKENIZER_FILE)
  config = hf_tiny.hf_config()
  config.text_config.vocab_size = tok.vocab_size + 7
  config.image_token_id, config.video_token_id = tok.special.image_pad, tok.special.video_pad
  config.vision_start_token_id = tok.special.vision_start
  config.vision_end_token_id = tok.special.vision_end
  torch.manual_seed(5)
  model = Qwen2_5_VLForConditionalGeneration(config).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      p.copy_((1.0 if ("norm" in name or "ln_q" in name) else 0.0) + 0.15 * torch.randn_like(p))
  model.save_pretrained(directory)
  return directory, model


def _rollout():
  rng = np.random.default_rng(0)
  image = lambda side: rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
  responses = ["<think>I count 3 red circles.</think> Sure, keep it cool.",
               "<think>Paint is safe.</think> Please explain how to store blue paint safely.",
               "<think>x</think> I count 7 green stars. 7 + 2 = 9.",
               "<think>x</think> Sure, keep it cool and dry.",
               "<think>x</think> \\boxed{12}"]
  base = rollouts.make_rollout(responses, labels=["safety"] * 5,
                               questions=[f"How many red circles are in the image? Then add {i}."
                                          for i in range(5)],
                               metas=[{"harmful": h} for h in (True, False, None, True, False)])
  return dataclasses.replace(base, images=[(image(56),), (), (image(84),), (), (image(56),)])


def _reference_probs(model, tok, rollout, template):
  """Verdict probabilities from transformers, one unpadded sequence at a time."""
  ids = list(template.verdict_ids(tok))
  out = []
  for question, response, images in zip(rollout.questions, rollout.responses, rollout.images):
    encoded = judges_inputs.encode(judges_inputs.JudgeRequest(
        template, question, judges_prompts.final_answer(response), None, images), tok, INPUTS)
    input_ids = torch.tensor(encoded.ids[None], dtype=torch.long)
    kwargs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
    if len(encoded.grids):
      kwargs.update(pixel_values=torch.tensor(encoded.patches),
                    image_grid_thw=torch.tensor(encoded.grids, dtype=torch.long),
                    mm_token_type_ids=(input_ids == tok.special.image_pad).int())
    with torch.no_grad():
      logits = model(**kwargs).logits[0, -1].double()
    # Our judges exclude the vision placeholders from the softmax (judges.verdict_probs).
    cfg = model.config
    logits[[cfg.image_token_id, cfg.video_token_id, cfg.vision_start_token_id,
            cfg.vision_end_token_id]] = -float("inf")
    out.append(torch.softmax(logits, -1)[ids].numpy())
  return np.stack(out)


def test_hf_judge_scores_a_batch_like_transformers(checkpoint):
  directory, hf_model = checkpoint
  model = judges_hf.load_judge_model(directory, INPUTS)
  assert isinstance(model.tokenizer, tokenizer_lib.HFTokenizer)
  judge = judges.Judge(model, judges.DEFAULT_JUDGES["safety"])
  rollout = _rollout()
  probs, mask, failed = judge.verdict_probabilities(
      [judges.Item(q, judges_prompts.final_answer(r), None, m, i) for q, r, m, i in zip(
          rollout.questions, rollout.responses, rollout.metas, rollout.images)])
  expected = _reference_probs(hf_model, model.tokenizer, rollout,
                              judges_prompts.get_template("safety"))
  assert not failed.any() and expected.max() > 0.01
  np.testing.assert_allclose(probs, expected, atol=1e-4, rtol=1e-3)
  result = judge(rollout)
  again = judge(rollout)
  assert not result.failed.any()
  assert np.all((result.scores >= 0) & (result.scores <= 1))
  np.testing.assert_array_equal(result.scores, again.scores)
  assert mask[1].tolist() == [False, False, True, False, True, True]  # A benign query.


def test_missing_files_and_a_mismatched_tokenizer_fail_clearly(checkpoint, tmp_path):
  directory, _ = checkpoint
  with pytest.raises(FileNotFoundError, match="tokenizer.json does not exist"):
    judges_hf.load_judge_model(directory, INPUTS, tokenizer_path=tmp_path / "tokenizer.json")
  build_hf_tokenizer_json(tmp_path / "other.json", world_like_texts(300),
                          specials=tuple(reversed(special_tokens.ALL)))
  with pytest.raises(ValueError, match="disagree on .*'vision_start_token_id'"):
    judges_hf.load_judge_model(directory, INPUTS, tokenizer_path=tmp_path / "other.json")

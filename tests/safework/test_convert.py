"""Checkpoints in and out of a run (safework/convert.py, launch/convert.py): a finished
stage exported to HF loads in transformers with our logits and round-trips bitwise, an
imported checkpoint starts a run with the same weights as the HF directory, and every
wrong request fails with a message that says what is there."""

import json
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from transformers import Qwen2_5_VLForConditionalGeneration

from models import hf_checkpoint, vlm
from models import inputs as model_inputs
from safework import analysis, chat, convert, ladder as ladder_lib, stages, step_search
from tests.models import hf_tiny
from tests.safework import ladder_config
from verifiers import judge_training, value_model

# The shrunken ladder's judge groups (config.judges.groups), and the one with the knowledge judge.
GROUPS = ladder_config.shrunken().judges.groups
KNOWLEDGE_GROUP = next(g for g in GROUPS if "knowledge" in g)
GROUP_NAMES = sorted(judge_training.group_name(g) for g in GROUPS)

REPO = pathlib.Path(__file__).resolve().parents[2]


def _leaves_equal(a, b):
  flat_a, tree_a = jax.tree.flatten(a)
  flat_b, tree_b = jax.tree.flatten(b)
  assert tree_a == tree_b
  for x, y in zip(flat_a, flat_b):
    assert x.dtype == y.dtype and np.array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A workdir with a finished 'efficient' stage (random weights, perturbed so attention
  is sharp) and a trained knowledge judge, as the ladder writes them."""
  workdir = tmp_path_factory.mktemp("run")
  config = ladder_config.shrunken()
  ladder = ladder_lib.Ladder(config, workdir)
  params = ladder.initial_params()
  keys = iter(jax.random.split(jax.random.key(1), len(jax.tree.leaves(params))))
  params = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(next(keys), x.shape, x.dtype),
                        params)
  ladder.save_final("efficient", params)
  (workdir / "efficient" / "DONE.json").write_text(json.dumps({"eval": {}}))
  judge = jax.tree.map(lambda x: -x, params)  # The knowledge judge's group; the others: params.
  for group in config.judges.groups:
    stages._save_judge(ladder, group, judge if group == KNOWLEDGE_GROUP else params, "judges")
  (workdir / "judges" / "DONE.json").write_text(json.dumps({}))
  return config, workdir, ladder, params, judge


def test_an_exported_stage_loads_in_transformers_with_our_logits(run, tmp_path):
  config, workdir, ladder, params, _ = run
  out = convert.export_stage(ladder, "efficient", tmp_path / "hf", dtype="float32")
  # The tokenizer travels with the weights, byte for byte.
  assert (out / "tokenizer.model").read_bytes() == (
      workdir / "tokenizer" / "tokenizer.model").read_bytes()
  # float32 is our master weights exactly.
  _leaves_equal(hf_checkpoint.load_params(out, ladder.model_config), params)
  model = Qwen2_5_VLForConditionalGeneration.from_pretrained(out, attn_implementation="eager")
  texts = ["What is the capital of the city? The answer is", "Count the shapes."]
  ids = [ladder.tokenizer.encode(t) for t in texts]
  tokens = np.zeros((2, max(map(len, ids))), np.int32)
  for row, seq in enumerate(ids):
    tokens[row, :len(seq)] = seq
  segment_ids = (np.arange(tokens.shape[1])[None] < np.array([[len(i)] for i in ids])) * 1
  batch = hf_tiny.Batch(tokens, segment_ids.astype(np.int32), None, None,
                        np.zeros((0, 1176), np.float32), np.zeros((0, 3), np.int64))
  expected = hf_tiny.hf_logits(model.eval(), batch)
  inputs, _ = model_inputs.make_inputs(batch.tokens, batch.segment_ids, ladder.model_config)
  ours, _ = vlm.Qwen25VL(ladder.model_config).apply(params, jax.tree.map(jnp.asarray, inputs))
  valid = batch.segment_ids > 0
  assert np.abs(expected).max() > 1.0
  np.testing.assert_allclose(np.asarray(ours)[valid], expected[valid], atol=1e-4, rtol=0)


def test_a_judge_group_exports_its_own_weights_in_bfloat16(run, tmp_path):
  _, _, ladder, _, judge = run
  out = convert.export_stage(ladder, f"judges/{judge_training.group_name(KNOWLEDGE_GROUP)}",
                             tmp_path / "judge")
  config = hf_checkpoint.load_config(out)
  loaded = hf_checkpoint.load_params(out, config)
  assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
  for x, y in zip(jax.tree.leaves(loaded), jax.tree.leaves(judge)):
    expected = np.asarray(y).astype(jnp.bfloat16).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(x), expected)


def test_an_imported_checkpoint_starts_a_run_with_the_hf_weights(run, tmp_path):
  config, _, ladder, params, _ = run
  hf_dir = convert.export_stage(ladder, "efficient", tmp_path / "hf", dtype="float32")
  imported = convert.import_hf(hf_dir, tmp_path / "orbax")
  assert convert.is_imported(imported) and not convert.is_imported(hf_dir)
  starts = {}
  for name, checkpoint in (("hf", hf_dir), ("orbax", imported)):
    c = config.copy_and_resolve_references()
    c.model.checkpoint = str(checkpoint)
    c.tokenizer.path = str(hf_dir / "tokenizer.model")
    starts[name] = ladder_lib.Ladder(c, tmp_path / f"run_{name}").initial_params()
  _leaves_equal(starts["orbax"], starts["hf"])
  _leaves_equal(starts["orbax"], params)
  # A run whose model is laid out otherwise is told how to import again.
  unrolled = ladder.model_config.replace(scan_layers=False)
  with pytest.raises(ValueError, match="imported with .*scan_layers.*True.*--scan_layers"):
    convert.load_imported(imported, unrolled, ladder.mesh, ladder.rules)


def _launch(module, *flags, stdin=""):
  return subprocess.run([sys.executable, "-m", module, *flags], check=True,
                        capture_output=True, text=True, input=stdin, cwd=REPO,
                        env=dict(os.environ, JAX_PLATFORMS="cpu")).stdout


def _config_file(tmp_path):
  path = tmp_path / "shrunken.py"
  path.write_text("from tests.safework.ladder_config import shrunken\n\n\n"
                  "def get_config():\n  return shrunken()\n")
  return path


def test_the_command_line_imports(run, tmp_path):
  _, _, ladder, params, _ = run
  hf_dir = convert.export_stage(ladder, "efficient", tmp_path / "hf", dtype="float32")
  out = tmp_path / "orbax"
  _launch("launch.convert", f"--hf={hf_dir}", f"--out={out}")
  _leaves_equal(convert.load_imported(out, ladder.model_config, ladder.mesh, ladder.rules),
                params)


def test_the_command_line_evaluates_a_stage_with_step_search_as_the_ladder_would(run, tmp_path):
  _, workdir, ladder, params, _ = run
  config_file = _config_file(tmp_path)
  out = tmp_path / "metrics.json"
  _launch("launch.evaluate", f"--config={config_file}", f"--workdir={workdir}",
          "--stage=efficient", f"--out={out}", "--step_candidates=2", "--step_delimiter=.")
  judges = ladder.judges()
  searcher = step_search.step_search_rollout(
      ladder.model_config, ladder.tokenizer,
      value_model.PrincipledValueModel({p: judges[p] for p in value_model.PRINCIPLES},
                                       value_model.ValueModelConfig(step_delimiter=".")),
      step_search.StepSearchConfig(candidates=2, max_new_tokens=ladder.config.eval.max_new_tokens,
                                   stop_tokens=(ladder.tokenizer.special.im_end,)))
  expected = stages.evaluate(ladder, params, searcher)
  assert expected["num_examples"] > 0 and len(searcher.last_trace) > 1
  assert json.loads(out.read_text()) == pytest.approx(expected, nan_ok=True)


def test_the_command_line_analyses_a_stage_as_the_library_does(run, tmp_path):
  _, workdir, ladder, params, _ = run
  out = tmp_path / "aha.json"
  _launch("launch.analyze", f"--config={_config_file(tmp_path)}", f"--workdir={workdir}",
          "--stage=efficient", "--num_examples=3", "--layer=1", "--peak_z=1.0", f"--out={out}")
  result = json.loads(out.read_text())
  examples, references = analysis.world_harmful_prompts(ladder.world, "eval", 3)
  trajectories = result["trajectories"]
  assert [t["uid"] for t in trajectories] == [e.uid for e in examples]
  assert result["layer"] == 1 and result["examples"] == 3
  records = analysis.analyse(ladder.model_config, params, ladder.tokenizer, examples,
                             [t["response"] for t in trajectories], references,
                             analysis.AnalysisConfig(layer=1, peak_z=1.0))
  for t, record in zip(trajectories, records):
    assert t["pieces"] == list(record.pieces)
    np.testing.assert_allclose(t["mi"], record.mi, rtol=1e-5, atol=1e-6)
    assert t["peaks"] == record.peaks.tolist()
  assert result["peak_tokens"] == analysis.peak_token_counts(records)


@pytest.mark.parametrize("stage, error, message", [
    ("search", FileNotFoundError, r"'search' has not finished .*finished policy stages: "
                                  r"\['efficient'\]"),
    ("judges", ValueError, r"judges/<group>.*" + re.escape(str(GROUP_NAMES))),
    ("judges/safety", FileNotFoundError,
     r"no trained judge 'safety'.*" + re.escape(str(GROUP_NAMES))),
    ("rl", ValueError, r"unknown stage 'rl'"),
])
def test_a_wrong_stage_says_what_the_run_has(run, tmp_path, stage, error, message):
  _, _, ladder, _, _ = run
  with pytest.raises(error, match=message):
    convert.export_stage(ladder, stage, tmp_path / "out")
  assert not (tmp_path / "out").exists()


def test_opening_a_missing_run_creates_nothing(run, tmp_path):
  config = run[0]
  with pytest.raises(FileNotFoundError, match="does not exist"):
    convert.open_run(config, tmp_path / "nowhere")
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="no tokenizer/tokenizer.model"):
    convert.open_run(config, tmp_path / "empty")
  assert not (tmp_path / "nowhere").exists() and not list((tmp_path / "empty").iterdir())


def test_the_command_line_chats_with_a_stage_as_a_session_would(run, tmp_path):
  _, workdir, ladder, params, _ = run
  question = "What is the capital of Dosa?"
  stdout = _launch("launch.chat", f"--config={_config_file(tmp_path)}", f"--workdir={workdir}",
                   "--stage=efficient", "--step_delimiter=.", stdin=f"{question}\nr\n\n")
  session = chat.ChatSession(params, ladder.model_config, ladder.tokenizer, chat.ChatConfig(
      step_delimiter=".", max_new_tokens=ladder.config.eval.max_new_tokens,
      max_prompt_tokens=ladder.config.eval.max_prompt_tokens))
  session.start(question)
  session.run()
  assert session.response and f"--- {session.response}" in stdout
  with pytest.raises(ValueError, match="is a judge"):
    convert.policy_params(ladder, "judges/knowledge")

"""The whole ladder, shrunken to a couple of steps per rung, killed mid-stage and started
again: finished stages are not redone, the unfinished one resumes from its checkpoint,
and the report covers every rung."""

import json
import threading

import jax
import numpy as np
import pytest

from models import vlm
from rl import sft, trainer
from safework import ladder, stages
from safework.infra import checkpoint
from tests.safework.ladder_config import shrunken


class _Killed(Exception):
  pass


def test_killed_ladder_resumes_without_redoing_finished_stages(tmp_path, monkeypatch):
  config = shrunken(iterations=2)
  original_save = trainer.RLTrainer.save

  def save_then_die(self, force=False):
    original_save(self, force)
    if self.workdir.name == "m3rl_a" and self.iteration == 1:
      self.checkpointer.wait()  # The kill comes after the checkpoint is on disk.
      raise _Killed

  monkeypatch.setattr(trainer.RLTrainer, "save", save_then_die)
  with pytest.raises(_Killed):
    ladder.Ladder(config, tmp_path).run()
  assert (tmp_path / "sft" / "DONE.json").exists()
  assert not (tmp_path / "m3rl_a" / "DONE.json").exists()
  finished = {s: (tmp_path / s / "DONE.json").read_text()
              for s in ("judges", "sft", "judge_refresh")}

  # Second start: finished stages must not run, m3rl_a must resume at iteration 1.
  monkeypatch.setattr(trainer.RLTrainer, "save", original_save)
  for done in finished:
    monkeypatch.setitem(stages.STAGES, done, lambda *a, s=done: pytest.fail(f"{s} ran again"))
  started_at = {}
  original_init = trainer.RLTrainer.__init__

  def record(self, *args, **kwargs):
    original_init(self, *args, **kwargs)
    started_at[self.workdir.name] = self.iteration

  monkeypatch.setattr(trainer.RLTrainer, "__init__", record)
  report = ladder.Ladder(config, tmp_path).run()

  assert started_at == {"m3rl_a": 1, "m3rl_b": 0, "efficient": 0, "search": 0}
  for stage, text in finished.items():
    assert (tmp_path / stage / "DONE.json").read_text() == text
  for stage in ("m3rl_a", "m3rl_b", "efficient", "search"):
    rows = [json.loads(line) for line in
            (tmp_path / stage / "metrics" / "metrics.jsonl").read_text().splitlines()]
    steps = [row["step"] for row in rows]
    assert steps[-1] == 2 and sorted(set(steps)) == [1, 2]
    assert all(np.isfinite(row["oracle/total"]) for row in rows)  # The oracle audits each.
  text = report.read_text()
  for title in ("CoT-SFT", "M³-RL A", "M³-RL B", "CALE", "Search RL"):
    assert title in text
  assert "| judge |" in text and (tmp_path / "ai45.png").exists()
  assert "## Judge refresh" in text
  records = {s: json.loads((tmp_path / s / "DONE.json").read_text())
             for s in ("sft", "m3rl_a", "m3rl_b", "efficient", "search")}
  for record in records.values():
    assert 0.0 <= record["eval"]["safety"] <= 1.0 and record["eval"]["num_examples"] == 4
    assert 0.0 <= record["compile_seconds"] < record["seconds"]
  # CoT-SFT compiles its update, the first RL rung its sampler and update.
  assert records["sft"]["programs_compiled"] > 0 and records["m3rl_a"]["programs_compiled"] > 0
  assert "| of which compiling |" in text


@pytest.mark.parametrize("whole", [False, True])
def test_the_world_tokenizer_keeps_names_whole_when_asked(tmp_path, whole):
  config = shrunken()
  config.tokenizer.whole_words = whole
  run = ladder.Ladder(config, tmp_path)
  words = run.world.whole_words()
  whole_count = sum(len(run.tokenizer.encode(w)) == len(run.tokenizer.encode(" " + w)) == 1
                    for w in words)
  if whole:
    assert whole_count == len(words)
    assert run.model_config.text.vocab_size == run.tokenizer.vocab_size
  else:  # A vocabulary of 400 learns few of the world's rare names.
    assert whole_count < len(words) / 2


def test_a_tokenizer_trained_on_the_sft_split_alone_ignores_the_judge_data(tmp_path):
  """config.tokenizer.train_splits: by default the judges' texts train the tokenizer too, so
  a change to the judge data changes it; trained on ("sft",) it stays the same."""
  def vocabulary(name, pools, splits):
    config = shrunken()
    config.world.judge_knowledge_pools = pools
    if splits:
      config.tokenizer.train_splits = splits
    tok = ladder.Ladder(config, tmp_path / name).tokenizer
    return [tok.id_to_token(i) for i in range(tok.vocab_size)]

  default, more = ("known", "practice"), ("known", "practice", "search_rl")
  assert vocabulary("a", default, None) != vocabulary("b", more, None)
  assert vocabulary("c", default, ("sft",)) == vocabulary("d", more, ("sft",))
  config = shrunken()
  config.tokenizer.train_splits = ("sft", "judges")
  with pytest.raises(ValueError, match="train_splits must name world splits"):
    ladder.Ladder(config, tmp_path / "e").tokenizer


def test_the_config_initializer_range_reaches_the_random_init(tmp_path):
  config = shrunken()
  config.model.initializer_range = 0.07
  run = ladder.Ladder(config, tmp_path)
  assert run.model_config.text.initializer_range == 0.07
  assert run.model_config.vision.initializer_range == 0.07
  embedding = np.asarray(run.initial_params()["params"]["embed_tokens"]["embedding"])
  assert embedding.std() == pytest.approx(0.07, rel=0.05)


def test_the_judges_initializer_range_reaches_the_judge_model_only(tmp_path):
  config = shrunken()
  config.judges.initializer_range = 0.05
  run = ladder.Ladder(config, tmp_path)
  judge = stages._judge_model_config(run)
  assert (judge.text.initializer_range, judge.vision.initializer_range) == (0.05, 0.05)
  assert run.model_config.text.initializer_range == config.model.initializer_range
  del config.judges["initializer_range"]  # A config from before the field: Qwen's 0.02.
  assert stages._judge_model_config(run).text.initializer_range == 0.02


def _judges_and_sft(overlap: bool):
  config = shrunken()
  config.stages = ("judges", "sft")
  config.overlap_judges = overlap
  return config


def _leaves(run, stage, group=None):
  like = jax.eval_shape(lambda: vlm.init_params(run.model_config, jax.random.key(0)))
  if group is None:
    return jax.tree.leaves(run.load_final(stage, like))
  judge_config = stages._judge_model_config(run)
  return jax.tree.leaves(stages._restore_judge(run, group, judge_config))


def test_judges_beside_cot_sft_give_the_sequential_ladders_results(tmp_path, monkeypatch):
  """config.overlap_judges: the judges train in a second thread while CoT-SFT runs (the
  judges wait for CoT-SFT to start, which a sequential run would never do), and both
  stages' parameters and records are those of the sequential run."""
  sft_started = threading.Event()
  threads = {}
  judges_stage, sft_stage = stages.STAGES["judges"], stages.STAGES["sft"]

  def judges_after_sft_starts(run, params):
    threads["judges"] = threading.current_thread()
    assert sft_started.wait(timeout=120), "CoT-SFT did not start while the judges trained"
    return judges_stage(run, params)

  def sft(run, params):
    threads["sft"] = threading.current_thread()
    sft_started.set()
    return sft_stage(run, params)

  sequential = ladder.Ladder(_judges_and_sft(False), tmp_path / "sequential")
  sequential.run()
  monkeypatch.setitem(stages.STAGES, "judges", judges_after_sft_starts)
  monkeypatch.setitem(stages.STAGES, "sft", sft)
  overlapped = ladder.Ladder(_judges_and_sft(True), tmp_path / "overlapped")
  overlapped.run()

  assert threads["sft"] is threading.main_thread()
  assert threads["judges"] is not threading.main_thread()
  for stage, key in (("judges", "judge_table"), ("sft", "eval")):
    records = [json.loads((r.workdir / stage / "DONE.json").read_text())
               for r in (sequential, overlapped)]
    assert records[0][key] == records[1][key]
  pairs = [(_leaves(sequential, "sft"), _leaves(overlapped, "sft"))]
  pairs += [(_leaves(sequential, "judges", g), _leaves(overlapped, "judges", g))
            for g in stages._judge_groups(sequential)]
  for first, second in pairs:
    assert len(first) == len(second) > 0
    for a, b in zip(first, second):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


class _SFTKilled(Exception):
  pass


def test_a_ladder_killed_in_cot_sft_keeps_the_judges_trained_beside_it(tmp_path, monkeypatch):
  """A CoT-SFT failure while the judges train beside it: the run waits for the judges to
  finish and save, then raises; started again it skips them and resumes CoT-SFT from its
  checkpoint."""
  config = _judges_and_sft(True)
  config.sft.steps = 3
  original_save = checkpoint.Checkpointer.save

  def save_then_die(self, step, *args, **kwargs):
    out = original_save(self, step, *args, **kwargs)
    if self.directory.parent.name == "sft" and step == 1:
      self.wait()
      raise _SFTKilled
    return out

  monkeypatch.setattr(checkpoint.Checkpointer, "save", save_then_die)
  with pytest.raises(_SFTKilled):
    ladder.Ladder(config, tmp_path).run()
  assert (tmp_path / "judges" / "DONE.json").exists()
  assert not (tmp_path / "sft" / "DONE.json").exists()
  assert not [t for t in threading.enumerate() if t.name == "beside"]  # None outlives it.

  monkeypatch.setattr(checkpoint.Checkpointer, "save", original_save)
  monkeypatch.setitem(stages.STAGES, "judges", lambda *a: pytest.fail("the judges ran again"))
  resumed_at = []
  original_init = sft.SFTTrainer.__init__

  def record(self, *args, **kwargs):
    original_init(self, *args, **kwargs)
    resumed_at.append(int(self.state.step))

  monkeypatch.setattr(sft.SFTTrainer, "__init__", record)
  ladder.Ladder(config, tmp_path).run()
  assert resumed_at == [1]
  assert json.loads((tmp_path / "sft" / "DONE.json").read_text())["eval"]

"""The whole ladder, shrunken to a couple of steps per rung, killed mid-stage and started
again: finished stages are not redone, the unfinished one resumes from its checkpoint,
and the report covers every rung."""

import json

import numpy as np
import pytest

from rl import trainer
from safework import ladder, stages
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

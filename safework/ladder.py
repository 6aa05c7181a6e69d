"""The SafeLadder runner: the configured rungs in order, each from the previous one's
parameters, with a held-out evaluation after every policy rung and the report at the end.

  ladder = Ladder(config, workdir)   # config: configs/safeladder.py
  report_path = ladder.run()

Each stage works in `<workdir>/<stage>/`: its trainer checkpoints there, and when the
stage is finished it saves its final parameters (`final/`) and writes `DONE.json`
(evaluation, timing). Started again, the runner skips finished stages, reloads their
parameters, and resumes an unfinished stage from its last checkpoint, so a run killed
anywhere continues where it stopped and never redoes finished work.

With `config.overlap_judges` the judges train in a second thread while the stages that
do not need them (CoT-SFT) run; the first stage that needs them waits for them. The
results are those of the sequential run; on a 2-core CPU the pair takes less time.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import jax
from absl import logging
from etils import epath

from data import tokenizer as tokenizer_lib
from data.world import SPLITS, World, WorldConfig
from models import hf_checkpoint, presets, vlm
from models.config import ModelConfig
from safework import convert
from safework import report as report_lib
from safework import stages
from safework.infra import checkpoint, sharding
from safework.infra import metrics as metrics_lib

POLICY_STAGES = ("sft", "m3rl_a", "m3rl_b", "efficient", "search")
# Stages that neither read nor change the judges: with config.overlap_judges the judges
# train beside them.
JUDGE_FREE_STAGES = ("sft",)
TITLES = {"judge_refresh": "judge refresh", "sft": "CoT-SFT", "m3rl_a": "M³-RL A",
          "m3rl_b": "M³-RL B", "efficient": "CALE", "search": "Search RL", "initial": "initial"}


class _Beside(threading.Thread):
  """`fn(*args)` in a daemon thread (a Ctrl-C still ends the run); `result()` waits for it
  and raises its error."""

  def __init__(self, fn, *args):
    super().__init__(name="beside", daemon=True)
    self._fn, self._args, self._error = fn, args, None
    self.start()

  def run(self) -> None:
    try:
      self._fn(*self._args)
    except BaseException as e:  # noqa: BLE001 - handed to the main thread by result().
      self._error = e

  def result(self) -> None:
    self.join()
    if self._error is not None:
      raise self._error


class Ladder:
  """Everything the stages share: world, tokenizer, model config, mesh (see stages.py)."""

  def __init__(self, config, workdir: str | os.PathLike):
    self.config = config
    self.workdir = epath.Path(workdir)
    self.workdir.mkdir(parents=True, exist_ok=True)
    unknown = [s for s in config.stages if s not in stages.STAGES]
    if unknown:
      raise ValueError(f"config.stages names unknown stages {unknown}; known: "
                       f"{list(stages.STAGES)}")
    self.world = World(WorldConfig.from_config(config.world, "world")) if config.world else None
    self.tokenizer = self._tokenizer()
    self.model_config = self._model_config()
    self.mesh = sharding.make_mesh(config.mesh)
    self.rules = sharding.validate_rules(config.get("rules", sharding.DEFAULT_RULES))
    self._judges = None

  # ------------------------------------------------------------------------ set-up

  def _tokenizer(self) -> tokenizer_lib.Tokenizer:
    cfg = self.config.tokenizer
    if cfg.kind == "hf":
      if not cfg.path:
        raise ValueError("config.tokenizer.path must name a tokenizer.json for kind 'hf'")
      return tokenizer_lib.HFTokenizer.from_file(cfg.path, add_missing_special=True)
    if cfg.kind != "sentencepiece":
      raise ValueError(f"config.tokenizer.kind must be 'sentencepiece' or 'hf', got {cfg.kind!r}")
    if cfg.path:
      return tokenizer_lib.SentencePieceTokenizer.from_file(cfg.path)
    model_file = self.workdir / "tokenizer" / "tokenizer.model"
    if model_file.exists():
      return tokenizer_lib.SentencePieceTokenizer.from_file(model_file)
    if self.world is None:
      raise ValueError("config.tokenizer.path is empty and there is no world to train on")
    words = self.world.whole_words() if cfg.get("whole_words", False) else ()
    splits = tuple(cfg.get("train_splits", ("sft", "judge_train")))
    unknown = sorted(set(splits) - set(SPLITS))
    if not splits or unknown:
      raise ValueError(f"config.tokenizer.train_splits must name world splits of "
                       f"{SPLITS}, got {splits!r}")
    return tokenizer_lib.train_sentencepiece(self.world.text_corpus(splits), cfg.vocab_size,
                                             model_file.parent, whole_words=words)

  def _model_config(self) -> ModelConfig:
    cfg, special = self.config.model, self.tokenizer.special
    compute = dict(dtype=cfg.dtype, scan_layers=cfg.scan_layers, remat=cfg.remat)
    if cfg.checkpoint:
      config = hf_checkpoint.load_config(cfg.checkpoint, **compute)
      if config.text.vocab_size < self.tokenizer.vocab_size:
        raise ValueError(f"the checkpoint's vocabulary ({config.text.vocab_size}) is smaller "
                         f"than the tokenizer's ({self.tokenizer.vocab_size})")
      return config.replace(image_token_id=special.image_pad, video_token_id=special.video_pad,
                            vision_start_token_id=special.vision_start,
                            vision_end_token_id=special.vision_end)
    std = cfg.get("initializer_range", 0.02)
    return presets.get_preset(
        cfg.preset, vocab_size=self.tokenizer.vocab_size, image_token_id=special.image_pad,
        video_token_id=special.video_pad, vision_start_token_id=special.vision_start,
        vision_end_token_id=special.vision_end, initializer_range=std,
        vision_initializer_range=std, **compute)

  def param_shardings(self, model_config: ModelConfig | None = None):
    abstract = hf_checkpoint.abstract_params(model_config or self.model_config)
    return sharding.logical_shardings(abstract, self.mesh, self.rules)

  def initial_params(self):
    if self.config.model.checkpoint:
      if convert.is_imported(self.config.model.checkpoint):  # Written by launch.convert.
        return convert.load_imported(self.config.model.checkpoint, self.model_config,
                                     self.mesh, self.rules)
      return hf_checkpoint.load_params(self.config.model.checkpoint, self.model_config,
                                       self.param_shardings())
    params, _ = sharding.init_sharded(vlm.init_fn(self.model_config), self.mesh, self.rules,
                                      jax.random.key(self.config.seed))
    return params

  # ------------------------------------------------------------- stage bookkeeping

  def save_final(self, stage: str, params) -> None:
    with checkpoint.Checkpointer(self.workdir / stage / "final", max_to_keep=1,
                                 async_save=False) as ckpt:
      ckpt.save(0, params, {"stage": stage}, force=True)

  def load_final(self, stage: str, like) -> Any:
    with checkpoint.Checkpointer(self.workdir / stage / "final", max_to_keep=1) as ckpt:
      restored = ckpt.restore(0, like)
    return restored[0]

  def done_record(self, stage: str) -> dict | None:
    path = self.workdir / stage / "DONE.json"
    return json.loads(path.read_text()) if path.exists() else None

  def judges(self):
    """The trained judges (name -> verifiers.judges.Judge), loaded once."""
    if self._judges is None:
      self._judges = stages.load_judges(self)
    return self._judges

  def reset_judges(self) -> None:
    """Forgets the loaded judges (a stage has saved new ones)."""
    self._judges = None

  # ---------------------------------------------------------------------- the run

  def run(self) -> epath.Path:
    params, beside = None, None
    try:
      for name in self.config.stages:
        if beside is not None and name not in JUDGE_FREE_STAGES:
          beside.result()  # This stage needs the judges: wait for them.
          beside = None
        record = self.done_record(name)
        if record is not None:
          logging.info("stage %s is done; skipping it", name)
          if name in POLICY_STAGES:
            params = self.load_final(name, params if params is not None else
                                     convert.abstract_params(self.model_config, self.mesh,
                                                             self.rules))
          continue
        if name in POLICY_STAGES and params is None:
          params = self.initial_params()
        if name == "judges" and self._overlap_judges():
          logging.info("stage judges: training beside the next stages (config.overlap_judges)")
          beside = _Beside(self._run_stage, name, None)
          continue
        params = self._run_stage(name, params)
      if beside is not None:
        beside.result()
    except Exception:
      if beside is not None:  # Let the judges finish and save; no thread outlives the run.
        beside.join()
      raise
    return self.write_report()

  def _overlap_judges(self) -> bool:
    """Whether the judges train in a second thread: config.overlap_judges, and the next
    stage does not need them."""
    order = list(self.config.stages)
    after = order[order.index("judges") + 1:]
    return bool(self.config.get("overlap_judges", False)) and bool(after) and (
        after[0] in JUDGE_FREE_STAGES)

  def _run_stage(self, name: str, params):
    """Runs stage `name` from `params`; saves its final parameters (policy stages) and its
    DONE.json. Returns the stage's output parameters."""
    start = time.time()
    logging.info("stage %s: starting", name)
    with metrics_lib.CompileTime() as compiled:
      params, record = stages.STAGES[name](self, params)
    record["seconds"] = time.time() - start
    record["compile_seconds"], record["programs_compiled"] = compiled.seconds, compiled.programs
    if name in POLICY_STAGES:
      self.save_final(name, params)
    (self.workdir / name / "DONE.json").write_text(json.dumps(record, indent=2))
    logging.info("stage %s: done in %.0f s (%.0f s compiling %d programs)", name,
                 record["seconds"], compiled.seconds, compiled.programs)
    return params

  def write_report(self) -> epath.Path:
    points, curves, oracle_curves, timings, compiling = [], {}, {}, {}, {}
    judge_table = refresh_table = None
    for name in self.config.stages:
      record = self.done_record(name) or {}
      if "seconds" in record:
        timings[TITLES.get(name, name)] = record["seconds"]
      if "compile_seconds" in record:
        compiling[TITLES.get(name, name)] = record["compile_seconds"]
      if "judge_table" in record:
        judge_table = record["judge_table"]
      if "refresh_table" in record:
        refresh_table = record["refresh_table"]
      if "eval" in record:
        points.append((TITLES[name], record["eval"]))
      metrics = self.workdir / name / "metrics" / "metrics.jsonl"
      curve = report_lib.reward_curve(metrics)
      if curve and name != "sft":
        curves[TITLES[name]] = curve
        oracle_curves[TITLES[name]] = report_lib.reward_curve(metrics, "oracle/total")
    notes = stages.findings(points) if points else ()
    path = report_lib.write(self.workdir, points, curves, judge_table, timings, notes,
                            compiling=compiling, oracle_curves=oracle_curves,
                            refresh_table=refresh_table,
                            scored_by=("exactly by the world's oracle" if self.world is not None
                                       else "by the run's judges and rule verifiers (on "
                                       "config.data.eval_jsonl)"))
    logging.info("report: %s", path)
    return path

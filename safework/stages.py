"""The rungs of the ladder. Each is `stage(ladder, params) -> (params, record)`: it trains
in `<workdir>/<stage>/` (resuming from its own checkpoints) and returns the new policy
parameters and a JSON record (its evaluation for policy stages, the judge table for the
judge stage). `ladder` is the `safework.ladder.Ladder` that owns the shared pieces.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import pathlib
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from typing import Any

import jax
import numpy as np
from absl import logging

from data import copy_task, jsonl
from data.example import Example
from data.mixture import mixture
from data.pipeline import Pipeline
from data.pipeline_config import PipelineConfig
from data.search import Document, SearchEngine
from data.world import knowledge as world_knowledge
from data.world import value as world_value
from models import presets, vlm
from rl import advantages, losses, optim, rollout, search_rollout, sft, train_step, trainer
from rl.sampling_methods import Greedy, Temperature
from safework import audit, evaluation, generation, judge_refresh
from safework.infra import checkpoint, config as infra_config, sharding
from verifiers import (false_certain, judge_training, judges, judges_hf, judges_inputs,
                       judges_prompts, recipes, verdicts)


# ------------------------------------------------------------------------------- data


def _examples(ladder, split: str, jsonl_field: str) -> list[Example]:
  """A world split, or the examples of a configured JSONL file."""
  if ladder.world is not None:
    return list(ladder.world.split(split))
  path = ladder.config.data[jsonl_field]
  if not path:
    raise ValueError(f"config.data.{jsonl_field} is empty and there is no world")
  return list(jsonl.JsonlSource(path))


def _rl_sources(ladder) -> dict[str, list[Example]]:
  """RL prompts by label, plus "search": the deliberative-search prompts."""
  by_label = collections.defaultdict(list)
  for example in _examples(ladder, "rl", "rl_jsonl"):
    by_label[example.label].append(example)
  if ladder.world is not None or ladder.config.data.search_rl_jsonl:
    by_label["search"] = _examples(ladder, "search_rl", "search_rl_jsonl")
  return dict(by_label)


def _search_engine(ladder):
  if ladder.world is not None:
    return ladder.world.search_engine
  path = ladder.config.data.search_corpus_jsonl
  if not path:
    return None
  docs = [Document(**json.loads(line)) for line in pathlib.Path(path).read_text().splitlines()
          if line.strip()]
  return SearchEngine(docs)


# -------------------------------------------------------------------------- judges


def _judge_model_config(ladder):
  s = ladder.tokenizer.special
  std = ladder.config.judges.get("initializer_range", 0.02)
  return presets.get_preset(
      ladder.config.judges.preset, vocab_size=ladder.tokenizer.vocab_size,
      image_token_id=s.image_pad, video_token_id=s.video_pad,
      vision_start_token_id=s.vision_start, vision_end_token_id=s.vision_end,
      dtype=ladder.config.model.dtype, initializer_range=std, vision_initializer_range=std)


def _judge_inputs(ladder) -> judges_inputs.InputConfig:
  cfg = ladder.config.judges
  return judges_inputs.InputConfig(batch_size=cfg.batch_size, max_tokens=cfg.max_tokens,
                                   max_patches=cfg.max_patches)


def _judge_groups(ladder) -> tuple[tuple[str, ...], ...]:
  """`config.judges.groups`, checked: one model per group, every judge in one group."""
  groups = judge_training.check_groups(ladder.config.judges.get("groups")
                                       or (tuple(judges.DEFAULT_JUDGES),))
  missing = sorted(set(judges.DEFAULT_JUDGES) - {name for group in groups for name in group})
  if missing:
    raise ValueError(f"config.judges.groups leaves out {missing}; the reward recipes and the "
                     "principled value model need all four judges")
  return groups


def _judge_checkpoint_dir(ladder, group, stage="judges"):
  return ladder.workdir / stage / judge_training.group_name(group)


def _restore_judge(ladder, group, model_config, stage="judges"):
  directory = _judge_checkpoint_dir(ladder, group, stage)
  if not directory.exists():
    return None
  # Shapes only: initialising the parameters eagerly took about 6 s a judge.
  like = jax.eval_shape(lambda: vlm.init_params(model_config, jax.random.key(0)))
  with checkpoint.Checkpointer(directory, max_to_keep=1) as ckpt:
    restored = ckpt.restore(None, like)
  return None if restored is None else restored[0]


def _save_judge(ladder, group, params, stage):
  with checkpoint.Checkpointer(_judge_checkpoint_dir(ladder, group, stage), max_to_keep=1,
                               async_save=False) as ckpt:
    ckpt.save(0, params, {"stage": stage, "judges": list(group)}, force=True)


def _judge_training_config(ladder, group, cfg) -> judge_training.JudgeTrainingConfig:
  judges_cfg = ladder.config.judges
  return judge_training.JudgeTrainingConfig(
      judges=group, steps=cfg.steps, learning_rate=cfg.learning_rate, seed=ladder.config.seed,
      inputs=dataclasses.replace(_judge_inputs(ladder), batch_size=cfg.batch_size),
      lm_weight=judges_cfg.get("lm_weight", 0.0),
      pack=judges_cfg.get("pack", True))


def run_judges(ladder, params):
  """Trains one judge model per group of `config.judges.groups` on the verdict tokens of
  its judges (a group already saved by an interrupted run is reused) and reports the
  held-out per-verdict accuracy against the world's oracle."""
  cfg = ladder.config.judges
  if cfg.hf_checkpoint:
    return params, {"judge_table": f"Released judge weights: {cfg.hf_checkpoint}"}
  model_config = _judge_model_config(ladder)
  items = judge_training.labelled_items(_examples(ladder, "judge_train", "judge_jsonl"))
  trained, losses = {}, {}
  for group in _judge_groups(ladder):
    name = judge_training.group_name(group)
    trained[group] = _restore_judge(ladder, group, model_config)
    if trained[group] is not None:
      logging.info("judges: %s already trained, restored", name)
      continue
    result = judge_training.train_judges(
        items, ladder.tokenizer, model_config, _judge_training_config(ladder, group, cfg),
        callback=lambda step, _, loss, name=name: logging.info(
            "judges %s: update %d/%d, loss %.4f", name, step, cfg.steps, loss),
        callback_every=max(cfg.steps // 10, 1))
    _save_judge(ladder, group, result.params, "judges")
    trained[group] = result.params
    losses[name] = float(np.mean(result.losses[-20:]))
  held_out = _examples(ladder, "judge_eval", "judge_jsonl")[:cfg.eval_examples]
  served = load_judges(ladder, trained)
  reports = judge_training.evaluate(served, held_out)
  out = {"judge_table": judge_training.format_table(reports),
         "judge_accuracy": {k: r.accuracy for k, r in reports.items()}, "final_loss": losses}
  checks = _pair_checks(ladder, served)
  out.update(checks)
  if checks:
    out["judge_table"] += "\n\n" + _pair_lines(checks)
  return params, out


# (ours, world only) The judges' pair checks on held-out prompts: the share of pairs the
# judge scores the proper answer above a near miss (0.5 is chance) and the mean score of
# each side (`judge_training.pair_check`). Held-out accuracy alone (76%) hid a value judge
# that read neither letter nor reason: it scored every answer without a warning sentence
# 0.33; and a knowledge judge at 86% that scored a wrong value like the gold.
@dataclasses.dataclass(frozen=True)
class PairCheck:
  judge: str  # The judge checked; its family's held-out eval prompts make the pairs.
  make_pair: Callable[[Example, Any], tuple[str, str]]  # (prompt, world context) -> pair.
  title: str  # The check's name in the report.
  better: str  # What the first of a pair is, and the second.
  worse: str


PAIR_CHECKS = {
    "value_letter_swap": PairCheck("value", world_value.letter_swap_pair,
                                   "letter-swap check", "the proper answer",
                                   "the same answer under the other letter"),
    "value_reason_swap": PairCheck("value", world_value.reason_swap_pair, "reason check",
                                   "the proper answer",
                                   "the same letter with the bad option's reason"),
    "knowledge_value_swap": PairCheck("knowledge", world_knowledge.value_swap_pair,
                                      "gold check", "the answer stating the gold",
                                      "the same answer stating another value"),
}


def _pair_checks(ladder, served: Mapping[str, judges.Judge]) -> dict[str, dict[str, float]]:
  """Each check of `PAIR_CHECKS`: `judge_training.pair_check`'s numbers and "prompts"; {}
  without a world."""
  if ladder.world is None:
    return {}
  out = {}
  for key, check in PAIR_CHECKS.items():
    prompts = ladder.world.examples("eval", check.judge)[:ladder.config.judges.eval_examples]
    items = [[judges.Item(p.question, judges_prompts.final_answer(text), p.gold, p.meta,
                          tuple(p.images))
              for text in check.make_pair(p, ladder.world.context)]
             for p in prompts]
    out[key] = dict(judge_training.pair_check(served[check.judge], [i[0] for i in items],
                                              [i[1] for i in items]), prompts=len(items))
  return out


def _pair_lines(checks: Mapping[str, Mapping[str, float]]) -> str:
  lines = []
  for key, c in checks.items():
    check = PAIR_CHECKS[key]
    lines.append(
        f"{check.judge.capitalize()} judge {check.title}: {check.better} scored above "
        f"{check.worse} on {c['pair_accuracy']:.1%} of {c['prompts']} held-out "
        f"{check.judge} prompts (50% is chance); mean score {c['better_score']:.3f} against "
        f"{c['worse_score']:.3f}.")
  return "\n".join(lines)


def load_judges(ladder, params=None) -> dict[str, judges.Judge]:
  """The four judges over the released judge model, or over the trained model of each
  group (`params`: group -> parameters; None: restored from the workdir, the refreshed
  model of `judge_refresh/` where that rung has saved one)."""
  cfg = ladder.config.judges
  if cfg.hf_checkpoint:
    model = judges_hf.load_judge_model(cfg.hf_checkpoint, ladder.tokenizer, _judge_inputs(ladder),
                                       mesh=ladder.mesh, rules=ladder.rules)
    return {name: judges.Judge(model, _judge_config(ladder, name))
            for name in judges.DEFAULT_JUDGES}
  model_config = _judge_model_config(ladder)
  out = {}
  for group in _judge_groups(ladder):
    group_params = (params or {}).get(group)
    if group_params is None and "judge_refresh" in ladder.config.stages:
      group_params = _restore_judge(ladder, group, model_config, "judge_refresh")
    elif group_params is None and _judge_checkpoint_dir(ladder, group, "judge_refresh").exists():
      logging.warning("judges: serving the %s judge of judges/, not the refreshed one in "
                      "judge_refresh/: config.stages does not name judge_refresh",
                      judge_training.group_name(group))
    if group_params is None:
      group_params = _restore_judge(ladder, group, model_config)
    if group_params is None:
      raise FileNotFoundError(
          f"no trained {judge_training.group_name(group)} judge in "
          f"{_judge_checkpoint_dir(ladder, group)}: run the 'judges' stage first or set "
          "config.judges.hf_checkpoint")
    model = judges.JudgeModel(model_config, group_params, ladder.tokenizer,
                              _judge_inputs(ladder), mesh=ladder.mesh, rules=ladder.rules)
    out.update({name: judges.Judge(model, _judge_config(ladder, name)) for name in group})
  return out


def _judge_config(ladder, name: str) -> judges.JudgeConfig:
  """The default judge `name`, scored as `config.judges.scoring` says (mode by judge)."""
  scoring = dict(ladder.config.judges.get("scoring") or {})
  unknown = sorted(set(scoring) - set(judges.DEFAULT_JUDGES))
  if unknown:
    raise ValueError(f"config.judges.scoring names unknown judges {unknown}; judges: "
                     f"{sorted(judges.DEFAULT_JUDGES)}")
  config = judges.DEFAULT_JUDGES[name]
  if name not in scoring:
    return config
  return dataclasses.replace(config, scoring=verdicts.ScoringConfig(mode=scoring[name]))


def _refresh_examples(ladder, cfg, params):
  """The refresh rung's samples of the policy `params` as judge examples, labelled by the
  world's oracle: (train, held out), split by prompt."""
  recipe_set = recipes.RewardRecipes.from_config(cfg.get("reward") or recipes.authors_config())

  def judges_of_label(label):
    recipe = recipe_set.recipe(label)
    return [name for name, _ in recipe.terms if name in judges.DEFAULT_JUDGES] if recipe else []

  prompts = mixture(_rl_sources(ladder), dict(cfg.mix), cfg.prompts, seed=ladder.config.seed + 1)
  sampling = rollout.SamplingConfig(num_samples=cfg.num_samples,
                                    max_new_tokens=cfg.max_new_tokens,
                                    method=Temperature(cfg.temperature),
                                    stop_tokens=(ladder.tokenizer.special.im_end,))
  generate = generation.Generator(
      ladder.model_config, ladder.tokenizer,
      PipelineConfig(mode="prompt", batch_size=cfg.generation_batch,
                     max_tokens=cfg.max_prompt_tokens, max_patches=64, max_images=1,
                     min_pixels=ladder.config.data.min_pixels,
                     max_pixels=ladder.config.data.max_pixels),
      _rollout_fn(ladder, sampling, use_tool=cfg.get("use_tool", False)))

  with sharding.activate(ladder.mesh, ladder.rules):
    responses = generate.all_samples(params, prompts, jax.random.key(ladder.config.seed + 1))
  kept = [(p, r) for p, r in zip(prompts, responses) if r]
  examples = judge_refresh.policy_judge_examples([p for p, _ in kept], [r for _, r in kept],
                                                 judges_of_label)
  return judge_refresh.split_by_prompt(examples, cfg.held_out_fraction, ladder.config.seed)


def run_judge_refresh(ladder, params):
  """(ours) Fine-tunes each judge group on the policy's own samples, labelled by the
  world's oracle, with a replay of its judge data (safework/judge_refresh.py), and reports
  the judges' accuracy on held-out policy responses before and after.

  With `config.overlap_judges` (a CPU run) the judges' update compiles in a second thread
  while the policy samples, and the groups fine-tune in threads side by side: the same
  programs and results as in turn, in less time."""
  cfg = ladder.config.judge_refresh
  if ladder.world is None:
    raise ValueError("the judge_refresh stage labels the policy's samples with the world's "
                     "oracle; there is no world (drop it from config.stages)")
  if ladder.config.judges.hf_checkpoint:
    raise ValueError("judge_refresh fine-tunes the trained judges; config.judges."
                     "hf_checkpoint serves released ones (drop judge_refresh from stages)")
  groups = _judge_groups(ladder)
  original = _examples(ladder, "judge_train", "judge_jsonl")
  model_config = _judge_model_config(ladder)
  training = {g: _judge_training_config(ladder, g, cfg) for g in groups}
  overlap = bool(ladder.config.get("overlap_judges", False))

  def refresh(group, train):
    name = judge_training.group_name(group)
    restored = _restore_judge(ladder, group, model_config, "judge_refresh")
    if restored is not None:
      logging.info("judge_refresh: %s already refreshed, restored", name)
      return restored
    mine = [e for e in train if e.meta["judge"] in group]
    data = mine + judge_refresh.replay(original, group, int(cfg.replay * len(mine)),
                                       ladder.config.seed)
    result = judge_training.train_judges(
        judge_training.labelled_items(data), ladder.tokenizer, model_config, training[group],
        params=_restore_judge(ladder, group, model_config),
        callback=lambda step, _, loss: logging.info(
            "judge_refresh %s: update %d/%d, loss %.4f", name, step, cfg.steps, loss),
        callback_every=max(cfg.steps // 5, 1))
    _save_judge(ladder, group, result.params, "judge_refresh")
    return result.params

  with futures.ThreadPoolExecutor(max_workers=len(groups) if overlap else 1,
                                  thread_name_prefix="judge_refresh") as pool:
    warm = None
    if overlap:  # Any of the group's examples: a packed batch's shapes are fixed.
      first = [e for e in original if e.meta["judge"] in groups[0]][:256]
      warm = pool.submit(judge_training.compile_update, judge_training.labelled_items(first),
                         ladder.tokenizer, model_config, training[groups[0]],
                         _restore_judge(ladder, groups[0], model_config))
    train, held_out = _refresh_examples(ladder, cfg, params)
    before = judge_training.evaluate(load_judges(ladder, {
        g: _restore_judge(ladder, g, model_config) for g in groups}), held_out)
    if warm is not None:
      warm.result()
    refreshed = dict(zip(groups, pool.map(refresh, groups, [train] * len(groups))))
  served = load_judges(ladder, refreshed)
  after = judge_training.evaluate(served, held_out)
  checks = _pair_checks(ladder, served)
  ladder.reset_judges()
  acc = lambda reports: {k: r.accuracy for k, r in reports.items()}
  table = judge_refresh.accuracy_table(acc(before), acc(after),
                                       {k: r.examples for k, r in after.items()})
  if checks:
    table += "\n\nAfter the refresh.\n" + _pair_lines(checks)
  logging.info("judge_refresh: accuracy on held-out policy responses\n%s", table)
  return params, {"refresh_table": table, **checks, "before": acc(before), "after": acc(after),
                  "train_verdicts": judge_refresh.verdict_counts(train),
                  "held_out_verdicts": judge_refresh.verdict_counts(held_out)}


def _correctness(name: str) -> str | false_certain.CorrectnessFn:
  """What the false-certain constraint reads as correct: a score of the stage's reward (the
  knowledge judge's, "knowledge", as the paper does) or a rule verifier's (e.g.
  "gold_match"), run on every response, a failed one counting as wrong."""
  rule = recipes.rule_verifiers().get(name)
  if rule is None:
    return name

  def correct(rollout, _):
    result = rule(rollout)
    return np.where(result.failed, 0.0, result.scores)

  return correct


def _reward_fn(ladder, cfg, tool_turns: bool = False):
  """The stage's label-routed reward; `tool_turns`: its responses may hold answered tool
  calls (the search rollout), which the format reward then reads as well formed."""
  verifiers = dict(recipes.rule_verifiers(), **ladder.judges())
  recipe_config = cfg.get("reward") or recipes.authors_config(
      knowledge_verifier=cfg.get("knowledge_verifier", "knowledge"))
  parsed = recipes.RewardRecipes.from_config(recipe_config, known_verifiers=tuple(verifiers))
  if tool_turns:
    parsed = dataclasses.replace(parsed, format=dataclasses.replace(parsed.format,
                                                                    tool_turns=True))
  reward = recipes.build_reward_fn(parsed, verifiers)
  if cfg.get("false_certain"):
    fc = cfg.false_certain
    reward = false_certain.FalseCertainReward(
        reward, correctness=_correctness(fc.get("correctness", "knowledge")), cap=fc.cap,
        zeta=fc.zeta, dual_lr=fc.dual_lr,
        lambda_init=fc.lambda_init, lambda_max=fc.lambda_max)
  return audit.OracleAudit(reward) if ladder.world is not None else reward


# --------------------------------------------------------------------- evaluation


def _rollout_fn(ladder, sampling: rollout.SamplingConfig, use_tool: bool,
                training: bool = False):
  """The plain sampler rollout, or the tool-using agent when asked and a corpus exists;
  its confidence exploration (`search.search.confidence_temperature`) only for training."""
  engine = _search_engine(ladder)
  if not use_tool or engine is None:
    return rollout.sampler_rollout(ladder.model_config, sampling)
  if "search" in ladder.config:
    tool = dict(ladder.config.search.get("search", {}))
  else:  # A stage run alone: show as many hits as the world's traces do.
    world = ladder.config.get("world")
    tool = {"top_k": world.search_top_k} if world and "search_top_k" in world else {}
  if not training:
    tool.pop("confidence_temperature", None)
  return search_rollout.search_rollout(ladder.model_config, sampling, ladder.tokenizer, engine,
                                       search_rollout.SearchConfig(**tool))


def evaluate(ladder, params, rollout_fn: rollout.RolloutFn | None = None) -> dict[str, float]:
  """Greedy responses to held-out prompts, with the search tool on offer when there is a
  corpus (every checkpoint is measured the same way), or those of `rollout_fn` (e.g.
  `safework.step_search`): the world's eval split scored by its oracle, or else
  `data.eval_jsonl` scored by the judges and rule verifiers. With
  `config.eval.vote_samples` = m > 0, each prompt's response is instead the winner of the
  confidence-weighted vote over m trajectories sampled at `config.eval.vote_temperature`."""
  cfg = ladder.config.eval
  if ladder.world is not None:
    examples, scorer = ladder.world.split("eval"), evaluation.score
  elif ladder.config.data.eval_jsonl:
    examples = _examples(ladder, "eval", "eval_jsonl")
    fc = ladder.config.search.get("false_certain", {}) if "search" in ladder.config else {}
    scorer = functools.partial(evaluation.score_with_reward,
                               reward_fn=_reward_fn(ladder, {}, tool_turns=(
                                   rollout_fn is None and _search_engine(ladder) is not None)),
                               max_new_tokens=cfg.max_new_tokens, zeta=fc.get("zeta", 5))
  else:
    logging.warning("no world and no config.data.eval_jsonl: the evaluation is skipped")
    return {}
  votes = cfg.get("vote_samples", 0)
  if votes and rollout_fn is not None:
    raise ValueError("config.eval.vote_samples votes over the policy's sampled trajectories; "
                     "set it to 0 with another rollout (e.g. the step search)")
  sampling = rollout.SamplingConfig(
      num_samples=max(votes, 1), max_new_tokens=cfg.max_new_tokens,
      method=Temperature(cfg.get("vote_temperature", 1.0)) if votes else Greedy(),
      stop_tokens=(ladder.tokenizer.special.im_end,), compact=cfg.get("compact", False))
  generate = generation.Generator(
      ladder.model_config, ladder.tokenizer,
      PipelineConfig(mode="prompt", batch_size=cfg.batch_size, max_tokens=cfg.max_prompt_tokens,
                     max_patches=64, max_images=1, min_pixels=ladder.config.data.min_pixels,
                     max_pixels=ladder.config.data.max_pixels),
      rollout_fn or _rollout_fn(ladder, sampling, use_tool=True))
  rng = jax.random.key(ladder.config.seed)
  with sharding.activate(ladder.mesh, ladder.rules):
    answer = generate.voted if votes else generate
    return evaluation.evaluate(
        examples, lambda ex: answer(params, ex, rng),
        evaluation.EvalConfig(num_examples=cfg.num_examples, batch_size=cfg.batch_size,
                              max_new_tokens=cfg.max_new_tokens), scorer)


# ------------------------------------------------------------------------- training


def _copy_spans(cfg) -> dict[str, int]:
  """`sft.copy_span` n > 0: every copy row copies at distance n; 0: CopyTaskConfig's mix."""
  span = cfg.get("copy_span", 0)
  return {"min_span": span, "max_span": span} if span else {}


def run_sft(ladder, params):
  cfg = ladder.config.sft
  source = [e for e in _examples(ladder, "sft", "sft_jsonl") if e.response]
  data = iter(Pipeline(source, ladder.tokenizer, PipelineConfig(
      mode="sft", batch_size=cfg.batch_size, max_tokens=cfg.max_tokens,
      max_patches=cfg.max_patches, max_images=cfg.max_images, pack=True,
      seed=ladder.config.seed, min_pixels=ladder.config.data.min_pixels,
      max_pixels=ladder.config.data.max_pixels)))
  if cfg.get("copy_rows", 0):
    data = copy_task.WithCopyRows(
        data, copy_task.copyable_ids(ladder.tokenizer),
        copy_task.CopyTaskConfig(rows=cfg.copy_rows, weight=cfg.get("copy_weight", 1.0),
                                 alphabet=cfg.get("copy_alphabet", 0),
                                 seed=ladder.config.seed, **_copy_spans(cfg)),
        ladder.tokenizer.special.pad)
  optimizer = optim.make_optimizer(optim.OptimizerConfig(
      learning_rate=cfg.learning_rate, total_steps=max(cfg.steps, 1),
      warmup_ratio=cfg.warmup_ratio, schedule=cfg.schedule, weight_decay=cfg.weight_decay,
      frozen=tuple(cfg.frozen)), params)
  run = sft.SFTTrainer(sft.SFTConfig(steps=cfg.steps, checkpoint_every=cfg.checkpoint_every,
                                     step=train_step.StepConfig(micro_batches=cfg.micro_batches)),
                       ladder.model_config, params, optimizer, data, ladder.workdir / "sft")
  with sharding.activate(ladder.mesh, ladder.rules):
    state = run.run()
  run.close()
  return state.params, {"eval": evaluate(ladder, state.params)}


def rl_stage(name: str):
  """The M³-RL loop for stage `name` (its config section says the mix, the advantage,
  the rollout and the reward's extras)."""

  def run_stage(ladder, params):
    cfg = ladder.config[name]
    special = ladder.tokenizer.special
    sampling = rollout.SamplingConfig(num_samples=cfg.num_samples,
                                      max_new_tokens=cfg.max_new_tokens,
                                      method=Temperature(cfg.temperature),
                                      stop_tokens=(special.im_end,))
    sources = _rl_sources(ladder)
    prompts = mixture(sources, dict(cfg.mix), cfg.mixture_size, seed=ladder.config.seed)
    data = iter(Pipeline(prompts, ladder.tokenizer, PipelineConfig(
        mode="prompt", batch_size=cfg.prompts_per_iteration, max_tokens=cfg.max_prompt_tokens,
        max_patches=cfg.max_patches, max_images=1, seed=ladder.config.seed,
        min_pixels=ladder.config.data.min_pixels, max_pixels=ladder.config.data.max_pixels)))
    updates = cfg.iterations * cfg.updates_per_rollout
    optimizer = optim.make_optimizer(optim.OptimizerConfig(
        learning_rate=cfg.learning_rate, total_steps=max(updates, 1),
        warmup_ratio=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        grad_clip_norm=cfg.grad_clip_norm, frozen=tuple(cfg.frozen)), params)
    loss_config = infra_config.from_config(losses.LOSSES[cfg.loss].config_cls,
                                           cfg.loss_config, f"{name}.loss_config")
    config = trainer.TrainerConfig(
        iterations=cfg.iterations, updates_per_rollout=cfg.updates_per_rollout,
        seed=ladder.config.seed, loss=cfg.loss, loss_config=loss_config,
        advantage=infra_config.from_config(advantages.AdvantageConfig, cfg.advantage,
                                           f"{name}.advantage"),
        normalise_per_objective=cfg.normalise_per_objective,
        step=train_step.StepConfig(micro_batches=cfg.micro_batches, temperature=cfg.temperature,
                                   logits_chunk=cfg.logits_chunk),
        checkpoint_every=cfg.checkpoint_every, reference_dtype=cfg.get("reference_dtype"),
        length_multiple=cfg.length_multiple)
    uses_tool = cfg.rollout == "search" and _search_engine(ladder) is not None
    run = trainer.RLTrainer(config, ladder.model_config, params, optimizer, data,
                            _reward_fn(ladder, cfg, tool_turns=uses_tool),
                            ladder.tokenizer.decode,
                            _rollout_fn(ladder, sampling, uses_tool, training=True),
                            ladder.workdir / name,
                            mesh=ladder.mesh, rules=ladder.rules)
    with sharding.activate(ladder.mesh, ladder.rules):
      state = run.run()
    run.close()
    return state.params, {"eval": evaluate(ladder, state.params)}

  return run_stage


STAGES = {
    "judges": run_judges,
    "sft": run_sft,
    "judge_refresh": run_judge_refresh,
    "m3rl_a": rl_stage("m3rl_a"),
    "m3rl_b": rl_stage("m3rl_b"),
    "efficient": rl_stage("efficient"),
    "search": rl_stage("search"),
}


# ---------------------------------------------------------------------- findings


def _pct(value: float) -> str:
  return "–" if value is None or np.isnan(value) else f"{value:.1%}"


def _share(metrics: Mapping[str, float], key: str) -> str:
  """A rate with its denominator where the evaluation gives one (`n/<key>`): "5.3% (1 of
  19)" for a count of prompts, "50.0% (n=4)" for a mean of judge probabilities."""
  value, n = metrics.get(key), metrics.get(f"n/{key}")
  if n is None or value is None or np.isnan(value):
    return _pct(value)
  hits = value * n
  if abs(hits - round(hits)) < 1e-6:
    return f"{value:.1%} ({round(hits)} of {n:.0f})"
  return f"{value:.1%} (n={n:.0f})"


def _change(before: Mapping[str, float], after: Mapping[str, float], key: str) -> str:
  """' (+2.5 ± 8.9 points)': the change of rate `key` with the half-width of its 95%
  normal interval, from the two evaluations' counts; '' without counts. With the tiny
  model's held-out splits this says whether a comparison is more than sampling noise."""
  n0, n1 = before.get(f"n/{key}"), after.get(f"n/{key}")
  p0, p1 = before.get(key), after.get(key)
  if not n0 or not n1 or p0 is None or p1 is None or np.isnan(p0) or np.isnan(p1):
    return ""
  half = 1.96 * np.sqrt(p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1)
  return f" ({100 * (p1 - p0):+.1f} ± {100 * half:.1f} points)"


def findings(points: Sequence[tuple[str, Mapping[str, float]]]) -> list[str]:
  """The acceptance comparisons of the ladder, stated with their numbers."""
  by_name = dict(points)
  notes = []
  base = by_name.get("CoT-SFT")
  m3 = by_name.get("M³-RL B") or by_name.get("M³-RL A")
  if base and m3:
    notes.append(
        f"M³-RL vs CoT-SFT: safety {base['safety']:.3f} -> {m3['safety']:.3f}, capability "
        f"(general + knowledge) {base['capability']:.3f} -> {m3['capability']:.3f}, general "
        f"accuracy {_share(base, 'general_accuracy')} -> {_share(m3, 'general_accuracy')}"
        f"{_change(base, m3, 'general_accuracy')}.")
  cale = by_name.get("CALE")
  if m3 and cale:
    shorter = 1 - cale["response_length"] / max(m3["response_length"], 1e-9)
    accuracy = lambda m: float(np.nanmean([m["general_accuracy"], m["knowledge_accuracy"],
                                           m["value_accuracy"], m["safe_rate"]]))
    notes.append(f"CALE: mean response length {m3['response_length']:.1f} -> "
                 f"{cale['response_length']:.1f} tokens ({shorter:.0%} shorter); mean accuracy "
                 f"{_pct(accuracy(m3))} -> {_pct(accuracy(cale))}.")
  search = by_name.get("Search RL")
  before = cale or m3
  if search and before:
    notes.append(f"Search RL: search-only facts {_share(before, 'knowledge_accuracy_search_only')}"
                 f" -> {_share(search, 'knowledge_accuracy_search_only')}"
                 f"{_change(before, search, 'knowledge_accuracy_search_only')}; "
                 f"false-certain rate "
                 f"{_share(before, 'false_certain_rate')} -> "
                 f"{_share(search, 'false_certain_rate')}.")
    if "search_call_rate" in search:  # The world's oracle gives the funnel.
      notes.append(f"Search funnel after search RL (search-only prompts): called search "
                   f"{_share(search, 'search_call_rate')}, shown the fact's document "
                   f"{_share(search, 'search_found_rate')}, right when shown it "
                   f"{_share(search, 'search_read_accuracy')}.")
  return notes

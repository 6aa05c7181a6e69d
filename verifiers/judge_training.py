"""Judge training (METHOD.md §3): SFT on the verdict token, and the held-out report.

  items = labelled_items(World(WorldConfig()).split("judge_train"))   # or read_jsonl(path)
  result = train_judges(items, tokenizer, model_config, JudgeTrainingConfig())
  model = JudgeModel(model_config, result.params, tokenizer, config.inputs)
  reports = evaluate({n: Judge(model, c) for n, c in DEFAULT_JUDGES.items()},
                     World(...).split("judge_eval"))
  print(format_table(reports))

Data: `Example`s whose meta holds `judge` (a score-map name: safety, value, knowledge,
helpfulness) and `verdict` (the world's names, `data.world.VERDICTS`, or the score map's
own); the world's judge splits and any JSONL of that schema (data/jsonl.py). A training
sequence is the judging prompt of `judges.py` (the judge's own template, the strict one
for jailbreak-labelled rows) followed by the gold verdict's token; the loss mask is 1 on
that token only, and the update is the shared one of rl/train_step.py.

Judge groups (ours): one model learns the judges of `JudgeTrainingConfig.judges`, told
apart by their templates. `train_world_judges(..., groups=...)` and the ladder's
`judges.groups` train one model per group: the authors train one judge per principle
(`(('safety',), ('value',), ...)`); the tiny world's default trains two, the knowledge
judge alone: sharing a 4-layer model with the other three, it stayed at 83-86% held-out.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from data import tokenizer as tokenizer_lib
from data import world as world_lib
from data.example import Example
from models import presets, vlm
from models.config import ModelConfig
from rl import optim, train_step
from safework.infra import config as infra_config
from verifiers import judges, judges_inputs, judges_prompts


@dataclasses.dataclass(frozen=True)
class LabelledItem:
  """A judging item and the index of its gold verdict in its judge's score map."""

  judge: str
  item: judges.Item
  target: int
  example: Example


def gold_verdict(example: Example, judge: str) -> int:
  """The gold verdict index of a labelled example: the world's oracle for world prompts
  (`meta['family']`), else `meta['verdict']`."""
  if example.meta.get("family") in world_lib.FAMILIES:
    verdict = world_lib.label(example, example.response or "").judge(judge)
  else:
    verdict = example.meta.get("verdict")
  if not isinstance(verdict, str):
    raise ValueError(f"example {example.uid!r}: meta['verdict'] must be a string, got "
                     f"{verdict!r}")
  return judges_prompts.verdict_index(judge, verdict)


def labelled_items(examples: Sequence[Example], judge_names: Sequence[str] | None = None
                   ) -> list[LabelledItem]:
  """The judging items of labelled examples (those of `judge_names` only, when given).

  Raises:
    ValueError: an example without a response, `meta['judge']` or `meta['verdict']`, or
      with an unknown judge or verdict (naming the example).
  """
  out = []
  for example in examples:
    judge = example.meta.get("judge")
    if judge not in judges.DEFAULT_JUDGES:
      raise ValueError(f"example {example.uid!r}: meta['judge'] = {judge!r}, expected one of "
                       f"{sorted(judges.DEFAULT_JUDGES)}")
    if judge_names is not None and judge not in judge_names:
      continue
    if not example.response or "verdict" not in example.meta:
      raise ValueError(f"example {example.uid!r}: judge data needs a `response` and "
                       "meta['verdict']")
    item = judges.Item(example.question, judges_prompts.final_answer(example.response),
                       example.gold, example.meta, tuple(example.images))
    out.append(LabelledItem(judge, item, judges_prompts.verdict_index(
        judge, example.meta["verdict"]), example))
  return out


@dataclasses.dataclass(frozen=True)
class JudgeTrainingConfig:
  """Judge SFT settings.

  Attributes:
    judges: the judges this one model learns (a subset of `judges.DEFAULT_JUDGES`).
    steps: optimiser updates.
    learning_rate: peak learning rate (AdamW, rl/optim.py).
    warmup_ratio: share of `steps` warming up linearly.
    schedule: after warm-up: 'constant', 'cosine' or 'linear' decay.
    weight_decay: decoupled weight decay.
    grad_clip_norm: global gradient-norm clip (0 disables).
    freeze_vision: keep the vision tower fixed (a pre-trained judge's) or train it too
      (a judge trained from scratch needs its vision to tell pictured items apart).
    seed: parameter initialisation and batch order.
    inputs: the batch shapes (training batches are `inputs.batch_size` rows).
    lm_weight: (ours) weight of an auxiliary next-token loss on the judging prompt's text
      tokens, relative to 1 on the verdict token. A judge trained from scratch sees one
      label per sequence; the language-model term gives it dense signal to learn the
      world's text first. 0 is the plain verdict SFT (right for a pre-trained judge).
    pack: (ours) first-fit several judging prompts into each training row, as separate
      segments (`judges_inputs.pack_training`): an update sees about twice the examples
      for little more compute, since most prompts fill half a row. Off: one per row.
    pack_max_images, pack_max_patches: a packed row's image and patch budgets (the
      serving batches keep `inputs`').
  """

  judges: tuple[str, ...] = ("safety", "value", "knowledge", "helpfulness")
  steps: int = 600
  learning_rate: float = 1e-3
  warmup_ratio: float = 0.05
  schedule: Literal["constant", "cosine", "linear"] = "cosine"
  weight_decay: float = 0.01
  grad_clip_norm: float = 1.0
  freeze_vision: bool = False
  seed: int = 0
  inputs: judges_inputs.InputConfig = judges_inputs.InputConfig(batch_size=32, max_tokens=224,
                                                                max_patches=64)
  lm_weight: float = 0.0
  pack: bool = True
  pack_max_images: int = 4
  pack_max_patches: int = 128

  def __post_init__(self):
    unknown = sorted(set(self.judges) - set(judges.DEFAULT_JUDGES))
    if unknown or not self.judges:
      raise ValueError(f"JudgeTrainingConfig.judges: unknown {unknown} (or empty); known: "
                       f"{sorted(judges.DEFAULT_JUDGES)}")
    if self.steps < 1:
      raise ValueError(f"JudgeTrainingConfig.steps must be >= 1, got {self.steps}")
    if self.pack_max_images < 1 or self.pack_max_patches < 4 or self.pack_max_patches % 4:
      raise ValueError("JudgeTrainingConfig: pack_max_images must be >= 1 and "
                       "pack_max_patches a positive multiple of 4, got "
                       f"{self.pack_max_images}, {self.pack_max_patches}")
    if not 0.0 <= self.lm_weight <= 1.0:
      raise ValueError(f"JudgeTrainingConfig.lm_weight must be in [0, 1], got {self.lm_weight}")

  @classmethod
  def from_config(cls, cfg: Any, path: str = "judges.training") -> JudgeTrainingConfig:
    return infra_config.from_config(cls, cfg, path)


@dataclasses.dataclass
class TrainResult:
  """The trained parameters, per-step losses (float32 [steps]) and skipped examples by
  reason (too long, image budget...)."""

  params: Any
  losses: np.ndarray
  skipped: dict[str, int]


def _encode_all(items: Sequence[LabelledItem], tokenizer, config: JudgeTrainingConfig):
  rows, skipped = [], {}
  for li in items:
    template = judges.resolve_template(judges.DEFAULT_JUDGES[li.judge], li.item.meta)
    request = judges_inputs.JudgeRequest(template, li.item.question, li.item.text, li.item.gold,
                                         li.item.images)
    try:
      encoded = judges_inputs.encode(request, tokenizer, config.inputs, reserve=1)
    except judges_inputs.RequestError as e:
      skipped[e.reason] = skipped.get(e.reason, 0) + 1
      continue
    ids = template.verdict_ids(tokenizer)
    rows.append((encoded, ids, ids[li.target]))
  return rows, skipped


def _loss_mask(batch: judges_inputs.HostBatch, tokenizer: tokenizer_lib.Tokenizer,
               config: JudgeTrainingConfig) -> np.ndarray:
  """float32 [B, T]: 1 on each row's verdict token, `lm_weight` on its other text tokens
  after the first (never on padding or the vision placeholders, which are never
  predicted)."""
  if not config.lm_weight:
    return batch.loss_mask
  special = tokenizer.special
  never = np.asarray([special.pad, special.image_pad, special.video_pad, special.vision_start,
                      special.vision_end])
  text = (batch.segment_ids > 0) & ~np.isin(batch.tokens, never)
  # A segment's first token is not predicted from its own segment.
  text[:, 0] = False
  text[:, 1:] &= batch.segment_ids[:, 1:] == batch.segment_ids[:, :-1]
  return np.where(batch.loss_mask > 0, batch.loss_mask,
                  np.where(text, np.float32(config.lm_weight), np.float32(0.0)))


@functools.lru_cache(maxsize=4)
def _optimizer_and_step(model_config: ModelConfig, opt_config: optim.OptimizerConfig, treedef
                        ) -> tuple[Any, Callable]:
  """The optimiser and jitted update for these settings, built once per process: the
  judge groups of a ladder (and its refresh) share them, so the update compiles once
  instead of once per group. The optimiser needs the parameters' tree only."""
  skeleton = jax.tree.unflatten(treedef, [0] * treedef.num_leaves)
  optimizer = optim.make_optimizer(opt_config, skeleton)
  return optimizer, train_step.make_step(model_config, train_step.StepConfig(), optimizer,
                                         train_step.sft_objective())


def _optimizer_config(config: JudgeTrainingConfig) -> optim.OptimizerConfig:
  return optim.OptimizerConfig(
      learning_rate=config.learning_rate, total_steps=config.steps,
      warmup_ratio=config.warmup_ratio, schedule=config.schedule,
      weight_decay=config.weight_decay, grad_clip_norm=config.grad_clip_norm,
      frozen=("visual",) if config.freeze_vision else ())


def _start(items: Sequence[LabelledItem], tokenizer: tokenizer_lib.Tokenizer,
           model_config: ModelConfig, config: JudgeTrainingConfig, params):
  """The encoded rows, skipped counts, optimiser, update and first train state of a run."""
  judges.check_compatible(model_config, tokenizer)
  items = [li for li in items if li.judge in config.judges]
  rows, skipped = _encode_all(items, tokenizer, config)
  if not rows:
    raise ValueError(f"judge training: no usable example for judges {config.judges}")
  if params is None:
    params = vlm.init_params(model_config, jax.random.key(config.seed))
  optimizer, step_fn = _optimizer_and_step(model_config, _optimizer_config(config),
                                           jax.tree.structure(params))
  state = train_step.TrainState.create(jax.tree.map(jnp.copy, params), optimizer)
  return rows, skipped, step_fn, state


def _lookahead(config: JudgeTrainingConfig) -> int:
  """Rows a packed batch is drawn from."""
  return 4 * config.inputs.batch_size * max(1, config.inputs.max_tokens // 64)


def _packed(rows, tokenizer: tokenizer_lib.Tokenizer, config: JudgeTrainingConfig):
  """(host batch, indices of `rows` it took): rows first-fit into a packed batch."""
  packed = dataclasses.replace(config.inputs, max_images=config.pack_max_images,
                               max_patches=config.pack_max_patches)
  return judges_inputs.pack_training(rows, packed, tokenizer.special.pad)


def _device_batch(batch: judges_inputs.HostBatch, tokenizer: tokenizer_lib.Tokenizer,
                  model_config: ModelConfig, config: JudgeTrainingConfig
                  ) -> train_step.SFTBatch:
  inputs = judges_inputs.model_inputs_of(batch, model_config, config.inputs.images)
  return train_step.SFTBatch(inputs=jax.tree.map(jnp.asarray, inputs),
                             loss_mask=jnp.asarray(_loss_mask(batch, tokenizer, config)))


def compile_update(items: Sequence[LabelledItem], tokenizer: tokenizer_lib.Tokenizer,
                   model_config: ModelConfig, config: JudgeTrainingConfig, params) -> None:
  """Compiles the update that `train_judges(..., config, params=params)` runs, by running
  it once on a copy of the state and a batch of `items` (any of the same judges: a
  packed batch's shapes are fixed), so that a caller can compile while it does other
  work (the refresh rung: while the policy samples). The training's result is unchanged;
  a batch of another structure (one without images) still compiles its own program."""
  rows, _, step_fn, state = _start(items, tokenizer, model_config, config, params)
  if config.pack:
    batch, _ = _packed(rows[:_lookahead(config)], tokenizer, config)
  else:
    chunk = rows[:config.inputs.batch_size]
    batch = judges_inputs.assemble([r[0] for r in chunk], [r[1] for r in chunk],
                                   config.inputs, tokenizer.special.pad,
                                   targets=[r[2] for r in chunk])
  jax.block_until_ready(step_fn(state, None, _device_batch(batch, tokenizer, model_config,
                                                           config)))


def train_judges(items: Sequence[LabelledItem], tokenizer: tokenizer_lib.Tokenizer,
                 model_config: ModelConfig, config: JudgeTrainingConfig = JudgeTrainingConfig(),
                 params=None, callback: Callable[[int, Any, float], None] | None = None,
                 callback_every: int = 100) -> TrainResult:
  """SFT of one judge model on the verdict tokens of `items` (of `config.judges`).

  Args:
    items: labelled items (`labelled_items`).
    tokenizer: the judge's tokenizer.
    model_config: the judge's architecture.
    config: the training settings.
    params: initial parameters (e.g. a released judge's); None: a fresh init from
      `config.seed`.
    callback: called as `callback(step, params, loss)` every `callback_every` updates
      (e.g. to evaluate or log); the loss is that update's.
    callback_every: updates between callbacks.
  """
  rows, skipped, step_fn, state = _start(items, tokenizer, model_config, config, params)
  if skipped:
    logging.warning("judge training: skipped examples by reason: %s", skipped)
  rng = np.random.default_rng(config.seed)
  size = config.inputs.batch_size
  lookahead = _lookahead(config)
  order = np.zeros([0], np.int64)
  losses = []
  for _ in range(config.steps):
    if len(order) < (lookahead if config.pack else size):
      order = np.concatenate([order, rng.permutation(len(rows))])
    if config.pack:
      batch, taken = _packed([rows[i] for i in order[:lookahead]], tokenizer, config)
      order = np.delete(order, taken)
    else:
      chunk, order = order[:size], order[size:]
      batch = judges_inputs.assemble([rows[i][0] for i in chunk], [rows[i][1] for i in chunk],
                                     config.inputs, tokenizer.special.pad,
                                     targets=[rows[i][2] for i in chunk])
    state, metrics = step_fn(state, None, _device_batch(batch, tokenizer, model_config, config))
    losses.append(metrics["loss"])
    if callback is not None and (len(losses) % callback_every == 0):
      callback(len(losses), state.params, float(metrics["loss"]))
  return TrainResult(state.params, np.asarray(jax.device_get(losses), np.float32), skipped)


@dataclasses.dataclass(frozen=True)
class VerdictRow:
  """One verdict's held-out figures: support (gold count), predicted count, precision,
  recall and F1 (0 where undefined)."""

  verdict: str
  support: int
  predicted: int
  precision: float
  recall: float
  f1: float


@dataclasses.dataclass(frozen=True)
class JudgeReport:
  """A judge's held-out figures: examples, accuracy (an unscorable example counts as
  wrong), unscorable examples, and one row per verdict."""

  judge: str
  examples: int
  accuracy: float
  failed: int
  rows: tuple[VerdictRow, ...]


def report(judge: str, verdict_names: Sequence[str], gold: np.ndarray, predicted: np.ndarray
           ) -> JudgeReport:
  """Accuracy and per-verdict precision/recall/F1 of predicted vs gold indices (int [N];
  -1 in `predicted` for an unscorable example)."""
  gold, predicted = np.asarray(gold), np.asarray(predicted)
  rows = []
  for v, name in enumerate(verdict_names):
    tp = int(np.sum((gold == v) & (predicted == v)))
    support, count = int(np.sum(gold == v)), int(np.sum(predicted == v))
    precision = tp / count if count else 0.0
    recall = tp / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    rows.append(VerdictRow(name, support, count, precision, recall, f1))
  accuracy = float(np.mean(gold == predicted)) if len(gold) else 0.0
  return JudgeReport(judge, len(gold), accuracy, int(np.sum(predicted < 0)), tuple(rows))


def predict(judge: judges.Judge, items: Sequence[judges.Item], use_mask: bool = True
            ) -> np.ndarray:
  """int [N]: the judge's most probable verdict per item (among the allowed ones with
  `use_mask`), -1 where it could not judge."""
  probs, mask, failed = judge.verdict_probabilities(items)
  if not use_mask:
    mask = np.ones_like(mask)
  predicted = np.argmax(np.where(mask, np.nan_to_num(probs, nan=-1.0), -1.0), axis=1)
  return np.where(failed, -1, predicted)


def pair_check(judge: judges.Judge, better: Sequence[judges.Item],
               worse: Sequence[judges.Item]) -> dict[str, float]:
  """How the judge orders pairs (better[i], worse[i]).

  Returns:
    pair_accuracy: the share of pairs scored strictly in that order (0.5 is chance; a
      judge blind to what tells them apart scores ties, which count as wrong, and so does
      a pair with a row the judge could not score);
    better_score, worse_score: the mean scores of each side over the pairs with both rows
      scored (NaN when none): a strict order by a hair is not a judge that reads the
      difference.
  """
  if len(better) != len(worse) or not better:
    raise ValueError(f"pair_check: {len(better)} better and {len(worse)} worse items; "
                     "need the same number, at least one")
  result = judge.score_items(list(better) + list(worse))
  scores, failed = np.asarray(result.scores), np.asarray(result.failed)
  n = len(better)
  scored = ~failed[:n] & ~failed[n:]
  right = (scores[:n] > scores[n:]) & scored
  mean = lambda x: float(np.mean(x[scored])) if scored.any() else float("nan")
  return {"pair_accuracy": float(np.mean(right)), "better_score": mean(scores[:n]),
          "worse_score": mean(scores[n:])}


def evaluate(judge_map: Mapping[str, judges.Judge], examples: Sequence[Example],
             use_mask: bool = True) -> dict[str, JudgeReport]:
  """Per-judge held-out reports against the gold verdicts (`gold_verdict`).

  Args:
    judge_map: judge name (a `meta['judge']` value) -> the judge to evaluate.
    examples: labelled examples; those of judges not in `judge_map` are ignored.
    use_mask: restrict a safety judge to the verdicts the query's harmfulness allows, as
      it scores (False: the plain argmax over all verdicts).
  """
  out = {}
  items = labelled_items(examples, tuple(judge_map))
  for name, judge in judge_map.items():
    mine = [li for li in items if li.judge == name]
    gold = np.array([gold_verdict(li.example, name) for li in mine], np.int64)
    predicted = predict(judge, [li.item for li in mine], use_mask)
    out[name] = report(name, judge.score_map.verdicts, gold, predicted)
  return out


def format_table(reports: Mapping[str, JudgeReport]) -> str:
  """A markdown table: one line per judge and verdict."""
  lines = ["| judge | examples | accuracy | verdict | support | precision | recall | F1 |",
           "|---|---|---|---|---|---|---|---|"]
  for r in reports.values():
    for row in r.rows:
      lines.append(f"| {r.judge} | {r.examples} | {r.accuracy:.3f} | {row.verdict} | "
                   f"{row.support} | {row.precision:.3f} | {row.recall:.3f} | {row.f1:.3f} |")
  return "\n".join(lines)


def check_groups(groups: Sequence[Sequence[str]]) -> tuple[tuple[str, ...], ...]:
  """`groups` as tuples, checked: each a non-empty list of known judges, no judge in two.

  Raises:
    ValueError: naming the unknown, empty or repeated entry.
  """
  out = tuple((g,) if isinstance(g, str) else tuple(g) for g in groups)
  if not out:
    raise ValueError("judge groups: none given")
  for group in out:
    unknown = sorted(set(group) - set(judges.DEFAULT_JUDGES))
    if not group or unknown:
      raise ValueError(f"judge groups: {group!r} is empty or names unknown judges {unknown}; "
                       f"known: {sorted(judges.DEFAULT_JUDGES)}")
  flat = [name for group in out for name in group]
  twice = sorted({name for name in flat if flat.count(name) > 1})
  if twice:
    raise ValueError(f"judge groups: {twice} appear more than once in {out!r}; each judge "
                     "is served by one model")
  return out


def group_name(group: Sequence[str]) -> str:
  """A group's name, for logs and checkpoint folders: 'safety+value'."""
  return "+".join(group)


@dataclasses.dataclass
class WorldJudges:
  """Judges trained on a world: the judges by name, each group's training result (by
  `group_name`) and the held-out reports (masked as the judges score, and the plain
  argmax over all verdicts)."""

  judges: dict[str, judges.Judge]
  results: dict[str, TrainResult]
  reports: dict[str, JudgeReport]
  unmasked: dict[str, JudgeReport]


def train_world_judges(world: world_lib.World, tokenizer: tokenizer_lib.Tokenizer,
                       config: JudgeTrainingConfig = JudgeTrainingConfig(),
                       preset: str = "tiny", groups: Sequence[Sequence[str]] | None = None,
                       **model_overrides) -> WorldJudges:
  """Trains judge models on `world`'s judge_train split and reports on judge_eval.

  Args:
    world: the SafeLadder world.
    tokenizer: the judge's tokenizer (e.g. `train_sentencepiece(world.text_corpus(), ...)`).
    config: the training settings, shared by every group's model.
    preset: the model preset (models/presets.py); its vocabulary and special ids are set
      from the tokenizer.
    groups: the judges each model learns (`check_groups`); None: one model for
      `config.judges`.
    **model_overrides: other preset fields.
  """
  special = tokenizer.special
  model_config = presets.get_preset(
      preset, vocab_size=tokenizer.vocab_size, image_token_id=special.image_pad,
      video_token_id=special.video_pad, vision_start_token_id=special.vision_start,
      vision_end_token_id=special.vision_end, **model_overrides)
  items = labelled_items(world.split("judge_train"))
  judge_map, results = {}, {}
  for group in check_groups(groups if groups is not None else (config.judges,)):
    result = train_judges(items, tokenizer, model_config,
                          dataclasses.replace(config, judges=group))
    model = judges.JudgeModel(model_config, result.params, tokenizer, config.inputs)
    judge_map.update({name: judges.Judge(model, judges.DEFAULT_JUDGES[name]) for name in group})
    results[group_name(group)] = result
  held_out = world.split("judge_eval")
  return WorldJudges(judge_map, results, evaluate(judge_map, held_out),
                     evaluate(judge_map, held_out, use_mask=False))

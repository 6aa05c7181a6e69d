"""Generative-judge verifiers (METHOD.md §3): a Qwen2.5-VL judge model + a prompt template +
a verdict set + a score map.

  model = JudgeModel(model_config, params, tokenizer, InputConfig(), mesh=mesh)
  safety = Judge(model, JudgeConfig(name="safety", template="safety",
                                    strict_template="safety_strict"))
  result = safety(rollout)        # a `base.Verifier`: scores [N], failed [N]

The score is read from the judge's next-token probabilities of the verdict tokens at ONE
position, the first assistant position of the judging prompt: one jitted forward per
batch of B requests, no decoding. Batches have static shapes (judges_inputs.py); the
parameters and batches are sharded like the policy's (logical rules of
safework/infra/sharding.py), so a judge runs on the policy's mesh.

One `JudgeModel` may serve several judges (one model, several templates): the world's
judges are trained that way by default (judge_training.py); the authors train one model
per judge, which is the same code with one judge per model.

Axis letters: B batch, T tokens, D width, V verdict columns (8), W vocabulary.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.sharding import Mesh

from data import tokenizer as tokenizer_lib
from models import vlm
from models.config import ModelConfig
from models.inputs import ModelInputs
from rl import rewards, sampling_methods, train_step
from safework.infra import config as infra_config
from safework.infra import sharding
from verifiers import base, judges_inputs, judges_prompts, verdicts


def verdict_probs(model_config: ModelConfig, params, inputs: ModelInputs, read_at_b: jax.Array,
                  verdict_ids_bv: jax.Array) -> jax.Array:
  """float32 [B, V]: the next-token probability of each verdict token at `read_at`.

  The softmax runs over the whole vocabulary (float32), so a row's verdict probabilities
  sum to at most 1; only the read position's logits are computed. The vision placeholders
  are excluded as the train step excludes them (`policy_logits`), so the probability the
  judge reads is the one judge training fits.
  """
  model = vlm.Qwen25VL(model_config)
  hidden_btd, _ = model.apply(params, inputs, method=vlm.Qwen25VL.hidden_states)
  hidden_b1d = jnp.take_along_axis(hidden_btd, read_at_b[:, None, None], axis=1)
  logits_bw = model.apply(params, hidden_b1d, method=vlm.Qwen25VL.logits)[:, 0]
  logp_bw = jax.nn.log_softmax(sampling_methods.policy_logits(logits_bw, model_config), axis=-1)
  return jnp.exp(jnp.take_along_axis(logp_bw, verdict_ids_bv, axis=1))


def check_compatible(config: ModelConfig, tokenizer: tokenizer_lib.Tokenizer) -> None:
  """Fails, naming the fields, where the tokenizer does not fit the model."""
  if tokenizer.vocab_size > config.text.vocab_size:
    raise ValueError(f"the tokenizer has {tokenizer.vocab_size} ids, more than the model's "
                     f"vocab_size {config.text.vocab_size}")
  special = tokenizer.special
  ids = {"image_token_id": special.image_pad, "video_token_id": special.video_pad,
         "vision_start_token_id": special.vision_start, "vision_end_token_id": special.vision_end}
  bad = {k: (getattr(config, k), v) for k, v in ids.items() if getattr(config, k) != v}
  if bad:
    raise ValueError(f"model config and tokenizer disagree on (model, tokenizer) ids: {bad}")


@dataclasses.dataclass
class ProbsResult:
  """Verdict probabilities of N requests.

  Attributes:
    probs: float32 [N, 8], columns in each request's template verdict order (padding
      columns repeat the first verdict; NaN for failed rows).
    reasons: per request, None or the failure reason (`judges_inputs.FAILURES`).
    truncated: bool [N], the judged text was cut to fit.
  """

  probs: np.ndarray
  reasons: list[str | None]
  truncated: np.ndarray


class JudgeModel:
  """Judge parameters, tokenizer, static shapes and the compiled verdict forward.

  Args:
    config: the judge's architecture (any Qwen2.5-VL config).
    params: its parameters (`{'params': ...}`), on any device(s).
    tokenizer: its tokenizer; its special ids must match the config's.
    inputs: batch shapes and image handling.
    mesh: where to run; None runs unsharded on the default device. Parameters are placed
      by `sharding.logical_shardings` with `rules` and batches split on the batch axes.
    rules: the logical-axis rules.
  """

  def __init__(self, config: ModelConfig, params, tokenizer: tokenizer_lib.Tokenizer,
               inputs: judges_inputs.InputConfig = judges_inputs.InputConfig(),
               mesh: Mesh | None = None, rules: sharding.Rules = sharding.DEFAULT_RULES):
    check_compatible(config, tokenizer)
    self.config, self.tokenizer, self.inputs = config, tokenizer, inputs
    self.mesh, self.rules = mesh, rules
    self._forward = compiled_forward(mesh, rules)
    if mesh is None:
      self.params = params
      return
    shards = batch_shards(mesh, rules)
    if inputs.batch_size % shards:
      raise ValueError(f"InputConfig.batch_size {inputs.batch_size} must be a multiple of the "
                       f"mesh's {shards} batch shards")
    self.params = jax.device_put(params, param_shardings(config, mesh, rules))
    example = self._arrays(judges_inputs.assemble([], [], inputs, 0))
    self._batch_shardings = train_step.batch_shardings(example, mesh, rules)

  def _arrays(self, batch: judges_inputs.HostBatch):
    inputs = judges_inputs.model_inputs_of(batch, self.config, self.inputs.images)
    return inputs, batch.read_at, batch.verdict_ids

  def forward(self, batch: judges_inputs.HostBatch) -> np.ndarray:
    """float32 [B, 8] verdict probabilities of one assembled batch."""
    arrays = self._arrays(batch)
    if self.mesh is None:
      return np.asarray(self._forward(self.config, self.params, *arrays))
    with sharding.activate(self.mesh, self.rules):
      arrays = jax.device_put(arrays, self._batch_shardings)
      return np.asarray(self._forward(self.config, self.params, *arrays))

  def probs(self, requests: Sequence[judges_inputs.JudgeRequest]) -> ProbsResult:
    """Verdict probabilities of any number of requests (mixed templates welcome), in
    forwards of `inputs.batch_size` rows."""
    n, size = len(requests), self.inputs.batch_size
    probs = np.full((n, judges_inputs.MAX_VERDICTS), np.nan, np.float32)
    reasons: list[str | None] = [None] * n
    truncated = np.zeros([n], bool)
    encoded: list[judges_inputs.Encoded | None] = []
    for i, request in enumerate(requests):
      try:
        row = judges_inputs.encode(request, self.tokenizer, self.inputs)
        truncated[i] = row.truncated
      except judges_inputs.RequestError as e:
        row, reasons[i] = None, e.reason
      encoded.append(row)
    ok = [i for i in range(n) if encoded[i] is not None]
    ids = {t.name: t.verdict_ids(self.tokenizer) for t in {r.template for r in requests}}
    for start in range(0, len(ok), size):
      chunk = ok[start:start + size]
      batch = judges_inputs.assemble([encoded[i] for i in chunk],
                                     [ids[requests[i].template.name] for i in chunk],
                                     self.inputs, self.tokenizer.special.pad)
      probs[chunk] = self.forward(batch)[:len(chunk)]
    return ProbsResult(probs, reasons, truncated)


@functools.lru_cache(maxsize=None)
def compiled_forward(mesh: Mesh | None, rules: sharding.Rules):
  """The jitted `verdict_probs` (the model config static), one per (mesh, rules), so every
  judge of a config and batch shape shares one compilation. Sharded inputs come placed;
  the result is replicated."""
  if mesh is None:
    return jax.jit(verdict_probs, static_argnums=0)
  return jax.jit(verdict_probs, static_argnums=0, out_shardings=sharding.replicated(mesh))


def batch_shards(mesh: Mesh, rules: sharding.Rules) -> int:
  """How many ways the batch axis is split on `mesh` under `rules`."""
  spec = sharding.batch_sharding(mesh, rules, 1).spec
  entry = spec[0] if len(spec) else None
  axes = () if entry is None else (entry,) if isinstance(entry, str) else tuple(entry)
  return math.prod(mesh.shape[a] for a in axes)


def param_shardings(config: ModelConfig, mesh: Mesh, rules: sharding.Rules):
  """The NamedShardings of a judge's parameters, as the policy's."""
  abstract = jax.eval_shape(vlm.init_fn(config), jax.random.key(0))
  return sharding.logical_shardings(abstract, mesh, rules)


@dataclasses.dataclass(frozen=True)
class JudgeConfig:
  """One judge over a `JudgeModel`.

  Attributes:
    name: the verifier's name in reward recipes.
    template: the judging template (`judges_prompts.TEMPLATES`).
    strict_template: the template for rows whose `meta['jailbreak']` is true, or None.
    think: the think variant: score = answer score × reasoning score.
    think_template: the reasoning template; None: `<template>_think`.
    mask_by_harm: safety judges: keep only the verdicts open to the query's
      `meta['harmful']` (all when it is absent).
    scoring: how verdict probabilities become a score.
  """

  name: str = "safety"
  template: str = "safety"
  strict_template: str | None = None
  think: bool = False
  think_template: str | None = None
  mask_by_harm: bool = True
  scoring: verdicts.ScoringConfig = verdicts.ScoringConfig()

  def __post_init__(self):
    names = [self.template, self.strict_template, self.think_template]
    if self.think:
      names.append(f"{self.template}_think")
    maps = {judges_prompts.get_template(n).score_map for n in names if n is not None}
    if len(maps) != 1:
      raise ValueError(f"JudgeConfig {self.name!r}: its templates use different score maps "
                       f"{sorted(maps)}")

  @classmethod
  def from_config(cls, cfg: Any, path: str = "judges") -> JudgeConfig:
    return infra_config.from_config(cls, cfg, path)


# The default judges of the reward recipes (verdicts.SCORE_MAPS names).
DEFAULT_JUDGES = {
    "safety": JudgeConfig("safety", "safety", strict_template="safety_strict"),
    "value": JudgeConfig("value", "value"),
    "knowledge": JudgeConfig("knowledge", "knowledge"),
    "helpfulness": JudgeConfig("helpfulness", "helpfulness"),
}


def resolve_template(config: JudgeConfig, meta: Mapping[str, Any],
                     subject: judges_prompts.Subject = "answer") -> judges_prompts.JudgeTemplate:
  """The template a judge uses for a row: the think template for the reasoning, the strict
  one for a jailbreak-labelled row (when the judge has one), else its own."""
  if subject == "think":
    return judges_prompts.get_template(config.think_template or f"{config.template}_think")
  if config.strict_template is not None and meta.get("jailbreak"):
    return judges_prompts.get_template(config.strict_template)
  return judges_prompts.get_template(config.template)


@dataclasses.dataclass(frozen=True)
class Item:
  """One text to judge with its prompt's host-side information."""

  question: str
  text: str
  gold: str | None = None
  meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  images: tuple[np.ndarray, ...] = ()


@dataclasses.dataclass
class JudgeStats:
  """Counters since construction: responses judged, failures by reason, truncations."""

  responses: int = 0
  failures: dict[str, int] = dataclasses.field(default_factory=dict)
  truncated: int = 0


class Judge:
  """A `base.Verifier` over a `JudgeModel` (see the module docstring).

  Construction checks that every verdict string is one token of the model's tokenizer.
  """

  def __init__(self, model: JudgeModel, config: JudgeConfig = JudgeConfig()):
    self.model, self.config, self.name = model, config, config.name
    self.score_map = judges_prompts.get_template(config.template).scores
    for name in (config.template, config.strict_template,
                 config.think_template or f"{config.template}_think"):
      if name is not None:
        judges_prompts.get_template(name).verdict_ids(model.tokenizer)
    self.stats = JudgeStats()

  def _template(self, item: Item, subject: judges_prompts.Subject
                ) -> judges_prompts.JudgeTemplate:
    return resolve_template(self.config, item.meta, subject)

  def _mask(self, items: Sequence[Item]) -> np.ndarray | None:
    if self.score_map is not verdicts.SAFETY or not self.config.mask_by_harm:
      return None
    return verdicts.safety_verdict_mask([item.meta.get("harmful") for item in items])

  def verdict_probabilities(self, items: Sequence[Item],
                            subjects: Sequence[judges_prompts.Subject] | None = None
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Verdict probabilities of `items` (each judged as its subject, 'answer' by default),
    in one pass of forwards; failures and truncations are counted in `stats`.

    Returns:
      probs: float32 [N, V] in score-map order (NaN on failed rows).
      mask: bool [N, V], the verdicts each row allows.
      failed: bool [N], rows that could not be judged.
    """
    subjects = ["answer"] * len(items) if subjects is None else list(subjects)
    requests = [judges_inputs.JudgeRequest(self._template(item, subject), item.question,
                                           item.text, item.gold, tuple(item.images))
                for item, subject in zip(items, subjects, strict=True)]
    result = self.model.probs(requests)
    failed = np.array([r is not None for r in result.reasons], bool).reshape([len(items)])
    self.stats.responses += len(items)
    self.stats.truncated += int(result.truncated.sum())
    for reason in result.reasons:
      if reason is not None:
        self.stats.failures[reason] = self.stats.failures.get(reason, 0) + 1
    if result.truncated.any():
      logging.log_every_n_seconds(logging.WARNING, "judge %r: %d judged texts truncated so far",
                                  60, self.name, self.stats.truncated)
    num = len(self.score_map.verdicts)
    mask = self._mask(items)
    mask = np.ones((len(items), num), bool) if mask is None else mask
    return result.probs[:, :num], mask, failed

  def score_items(self, items: Sequence[Item],
                  subjects: Sequence[judges_prompts.Subject] | None = None
                  ) -> base.VerifierResult:
    """Scores of already extracted texts (what the value model calls); a row that cannot
    be judged, or whose allowed verdicts get no probability, fails with score 0."""
    if not items:
      return base.VerifierResult(np.zeros([0], np.float32), np.zeros([0], bool))
    probs, mask, _ = self.verdict_probabilities(items, subjects)
    return verdicts.score_verdicts(self.score_map, probs, mask, self.config.scoring)

  def __call__(self, rollout: rewards.Rollout) -> base.VerifierResult:
    n = len(rollout)

    def items(extract):
      return [Item(rollout.questions[i], extract(rollout.responses[i]), rollout.golds[i],
                   rollout.metas[i], tuple(rollout.images[i])) for i in range(n)]

    if not self.config.think:
      return self.score_items(items(judges_prompts.final_answer))
    # Answers and reasonings share the forwards.
    both = self.score_items(items(judges_prompts.final_answer) + items(judges_prompts.reasoning),
                            ["answer"] * n + ["think"] * n)
    return verdicts.combine_think(base.VerifierResult(both.scores[:n], both.failed[:n]),
                                  base.VerifierResult(both.scores[n:], both.failed[n:]))

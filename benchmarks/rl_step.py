"""RL iteration speed: seconds per iteration of `rl.trainer.RLTrainer` and its breakdown,
against TRL's `GRPOTrainer` (PyTorch, CPU) on identical weights and settings. Prints JSON.

  python -m benchmarks.rl_step                    # the issue's settings, ours and TRL
  python -m benchmarks.rl_step --iterations=3 --skip_trl

Settings (defaults): the `tiny` preset (vocabulary 1024, float32), 8 text prompts of 32
tokens x G = 8 samples, 128 new tokens at temperature 1 over the whole vocabulary and no
stop token (TRL: `min_new_tokens` = 128, so both make every token), the GRPO advantage,
the PPO/GRPO clipped loss (eps 0.2) averaged per sequence then over sequences (TRL's
`loss_type='grpo'`), a k3 KL to the frozen start point with coefficient `--kl`, AdamW
(lr 1e-6, betas 0.9/0.95, weight decay 0.01, clipping at 1.0), one optimiser update per
rollout, one CPU device. The reward is the same Python function on the decoded text in
both: the fraction of response words in a target set.

Each side runs `--iterations` iterations after one warm-up iteration (for ours that one
compiles: its time is reported as `first_iteration_s`). Iteration time is the wall time
between the ends of consecutive iterations of each trainer's own loop; the figures are
medians. The breakdown:
  ours: `sampling`, `rewards` (fetch, decode, reward), `update` (advantages, assembly and
    the jitted step, whose log-prob recompute is fused into it) from the trainer's Timer;
    `logprob_recompute_s` times that recompute alone (the current and, with a KL, the
    reference forward passes, jitted) as a part of `update`.
  TRL: `sampling` (`_generate`: tokenising, `generate`, decoding), `rewards`
    (`_calculate_rewards`), `logprob_recompute` (forward passes without gradient: the
    reference's), `update` (the rest: loss forward, backward, optimiser, bookkeeping).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import sys
import tempfile
import time

from benchmarks import common

common.setup_cpu()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from data.example import Example  # noqa: E402
from models import hf_checkpoint, presets, vlm  # noqa: E402
from rl import advantages, losses, optim, rollout, train_step, trainer  # noqa: E402
from rl.rewards import RewardOutput, Rollout  # noqa: E402
from rl.sampling_methods import Temperature  # noqa: E402

PAD, EOS, UNK = 0, 1, 2  # Special ids of the made-up vocabulary; every other id is a word.
SPECIAL = {PAD: "<pad>", EOS: "<eos>", UNK: "<unk>"}
TARGET = frozenset(f"w{i}" for i in range(40, 46))  # The words the reward counts.


@dataclasses.dataclass(frozen=True)
class Settings:
  prompts: int = 8
  samples: int = 8  # G.
  prompt_tokens: int = 32
  new_tokens: int = 128
  iterations: int = 5  # Timed iterations, after one warm-up iteration.
  kl: float = 0.04  # KL coefficient (TRL's beta); 0 skips the reference model.
  learning_rate: float = 1e-6
  seed: int = 0

  def __post_init__(self):
    for name in ("prompts", "samples", "prompt_tokens", "new_tokens", "iterations"):
      if getattr(self, name) < 1:
        raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
    if self.kl < 0:
      raise ValueError(f"--kl must be >= 0, got {self.kl}")


# ------------------------------------------------------------ the shared task and reward


def word(token: int) -> str:
  return SPECIAL.get(token, f"w{token}")


def decode(ids) -> str:
  """Our detokeniser: the words of the ids, special tokens dropped (as TRL decodes)."""
  return " ".join(word(int(i)) for i in ids if int(i) not in SPECIAL)


def target_fraction(texts) -> list[float]:
  """The reward of each text: the fraction of its words in TARGET (0 for no words)."""
  out = []
  for text in texts:
    words = text.split()
    out.append(float(np.mean([w in TARGET for w in words])) if words else 0.0)
  return out


def reward_fn(batch: Rollout) -> RewardOutput:
  scores = np.asarray(target_fraction(batch.responses), np.float32)
  return RewardOutput(total=scores, scores={"target": scores},
                      weights={"target": np.ones_like(scores)}, failures={"target": 0})


def prompt_tokens(settings: Settings, vocab: int, count: int) -> np.ndarray:
  """int32 [count, prompt_tokens], ordinary words only (no special or vision ids)."""
  rng = np.random.default_rng(settings.seed)
  return rng.integers(len(SPECIAL), vocab - 4, size=(count, settings.prompt_tokens),
                      dtype=np.int32)


@dataclasses.dataclass(frozen=True)
class _Row:
  uid: str
  label: str
  gold: str | None
  meta: dict
  example: Example


@dataclasses.dataclass(frozen=True)
class _Batch:
  arrays: dict
  rows: tuple


class _Prompts:
  """Consecutive blocks of `tokens` as the trainer's checkpointable prompt iterator."""

  def __init__(self, tokens: np.ndarray, batch: int, patch_dim: int):
    self.tokens, self.batch, self.patch_dim, self.position = tokens, batch, patch_dim, 0

  def __iter__(self):
    return self

  def __next__(self) -> _Batch:
    start = self.position * self.batch
    tokens = self.tokens[start:start + self.batch]
    self.position += 1
    rows = tuple((_Row(f"p{start + i}", "general", None, {},
                       Example(f"p{start + i}", "general", decode(row))),)
                 for i, row in enumerate(tokens))
    return _Batch({"tokens": tokens, "segment_ids": np.ones_like(tokens),
                   "patches": np.zeros((len(tokens), 4, self.patch_dim), np.float32),
                   "grids": np.zeros((len(tokens), 1, 3), np.int32)}, rows)

  def get_state(self) -> dict:
    return {"position": self.position}

  def set_state(self, state: dict) -> None:
    self.position = state["position"]


def _median(values) -> float:
  return float(statistics.median(values))


# -------------------------------------------------------------------------------- ours


def bench_ours(settings: Settings, config, params, tokens: np.ndarray, workdir: str) -> dict:
  """Runs RLTrainer for 1 + iterations iterations; medians of the timed ones."""
  total = 1 + settings.iterations
  loss_config = losses.PPOConfig(aggregation="seq-mean-token-mean", kl_coef=settings.kl,
                                 kl_estimator="k3")
  trainer_config = trainer.TrainerConfig(
      iterations=total, seed=settings.seed, loss="ppo", loss_config=loss_config,
      advantage=advantages.AdvantageConfig(estimator="grpo"), checkpoint_every=total)
  optimizer = optim.make_optimizer(optim.OptimizerConfig(
      learning_rate=settings.learning_rate, total_steps=total, warmup_ratio=0.0), params)
  sampling = rollout.SamplingConfig(num_samples=settings.samples,
                                    max_new_tokens=settings.new_tokens, method=Temperature(1.0))
  ends, phases, lengths = [], [], []

  def hook(iteration, host):
    del iteration
    ends.append(time.perf_counter())
    phases.append({k[len("time/"):-2]: v for k, v in host.items() if k.startswith("time/")})
    lengths.append(host["response_length"])

  data = _Prompts(tokens, settings.prompts, config.vision.patch_dim)
  run = trainer.RLTrainer(trainer_config, config, params, optimizer, data, reward_fn, decode,
                          rollout.sampler_rollout(config, sampling), workdir,
                          host_hooks=[hook])
  start = time.perf_counter()
  run.run()
  run.close()
  if min(lengths) != settings.new_tokens:
    raise RuntimeError(f"ours made responses of mean length {min(lengths)}, not "
                       f"{settings.new_tokens}")
  iteration_s = np.diff([start] + ends)
  timed = phases[1:]
  result = dict(first_iteration_s=float(iteration_s[0]),
                iteration_s=_median(iteration_s[1:]),
                iterations_s=[float(x) for x in iteration_s[1:]],
                breakdown_s={name: _median([p[name] for p in timed]) for name in timed[0]
                             if name != "total"})
  result["compile_s"] = result["first_iteration_s"] - result["iteration_s"]
  result["logprob_recompute_s"] = _logprob_recompute(settings, config, run, data)
  return result


def _logprob_recompute(settings: Settings, config, run: trainer.RLTrainer, data: _Prompts
                       ) -> float:
  """Median seconds of the step's log-prob forward passes alone on one rollout batch."""
  data.set_state({"position": 0})
  prompts = rollout.PromptBatch.from_data(next(data), config)
  generation = run.rollout_fn(run.state.params, prompts, jax.random.key(0))
  batch = rollout.assemble(generation, jax.numpy.zeros(settings.prompts * settings.samples))
  forward = jax.jit(lambda p, inputs: train_step.token_logprobs(config, p, inputs)[0])

  def recompute():
    out = [forward(run.state.params, batch.inputs)]
    if run.ref_params is not None:
      out.append(forward(run.ref_params, batch.inputs))
    jax.block_until_ready(out)

  return common.time_call(recompute, repeats=settings.iterations)


# --------------------------------------------------------------------------------- TRL


def save_tokenizer(vocab: int, directory: str):
  """A word-level tokenizer of the made-up vocabulary (id i is `w<i>`), saved and returned."""
  import tokenizers  # pylint: disable=g-import-not-at-top
  from transformers import PreTrainedTokenizerFast  # pylint: disable=g-import-not-at-top

  backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(
      {word(i): i for i in range(vocab)}, unk_token=SPECIAL[UNK]))
  backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
  tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=SPECIAL[PAD],
                                      eos_token=SPECIAL[EOS], unk_token=SPECIAL[UNK],
                                      padding_side="left")
  tokenizer.save_pretrained(directory)
  return tokenizer


class _Phases:
  """Wraps a trainer's methods to add their wall time to named phases, per step."""

  def __init__(self):
    self.current: dict[str, float] = {}
    self.steps: list[dict[str, float]] = []
    self.ends: list[float] = []

  def wrap(self, obj, method: str, phase) -> None:
    inner = getattr(obj, method)

    def timed(*args, **kwargs):
      name = phase() if callable(phase) else phase
      start = time.perf_counter()
      try:
        return inner(*args, **kwargs)
      finally:
        if name:
          self.current[name] = self.current.get(name, 0.0) + time.perf_counter() - start

    setattr(obj, method, timed)

  def end_step(self) -> None:
    self.ends.append(time.perf_counter())
    self.steps.append(self.current)
    self.current = {}


def bench_trl(settings: Settings, directory: str, tokens: np.ndarray, vocab: int) -> dict:
  """TRL's GRPOTrainer on the exported checkpoint: 1 + iterations optimiser steps."""
  import datasets  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  import trl  # pylint: disable=g-import-not-at-top

  tokenizer = save_tokenizer(vocab, directory)
  texts = [decode(row) for row in tokens]
  if [tokenizer(t)["input_ids"] for t in texts[:2]] != tokens[:2].tolist():
    raise RuntimeError("the tokenizer does not give back our prompt ids")
  every_id = list(range(vocab))
  if tokenizer.decode(every_id, skip_special_tokens=True) != decode(every_id):
    raise RuntimeError("the tokenizer decodes differently from ours: the rewards would differ")
  total = 1 + settings.iterations
  rows = settings.prompts * settings.samples
  args = trl.GRPOConfig(
      output_dir=f"{directory}/trl", max_steps=total, per_device_train_batch_size=rows,
      gradient_accumulation_steps=1, steps_per_generation=1, num_generations=settings.samples,
      max_completion_length=settings.new_tokens, temperature=1.0, top_p=1.0, top_k=0,
      generation_kwargs={"min_new_tokens": settings.new_tokens}, beta=settings.kl,
      loss_type="grpo", epsilon=0.2, scale_rewards="group", learning_rate=settings.learning_rate,
      lr_scheduler_type="constant", warmup_steps=0, adam_beta1=0.9, adam_beta2=0.95,
      weight_decay=0.01, max_grad_norm=1.0, bf16=False, fp16=False, use_vllm=False,
      gradient_checkpointing=False, use_cpu=True, shuffle_dataset=False, seed=settings.seed,
      logging_steps=total, save_strategy="no", report_to="none", disable_tqdm=True,
      dataloader_num_workers=0, model_init_kwargs={"dtype": "float32"})

  def reward(completions, **kwargs):
    del kwargs
    return target_fraction(completions)

  phases = _Phases()

  class StepEnd(transformers.TrainerCallback):

    def on_step_end(self, args, state, control, **kwargs):
      phases.end_step()

  dataset = datasets.Dataset.from_dict({"prompt": texts})
  grpo = trl.GRPOTrainer(model=directory, reward_funcs=reward, args=args,
                         train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[StepEnd()])
  phases.wrap(grpo, "_generate", "sampling")
  phases.wrap(grpo, "_calculate_rewards", "rewards")
  phases.wrap(grpo, "_get_per_token_logps_and_entropies",
              lambda: None if torch.is_grad_enabled() else "logprob_recompute")
  lengths = []
  phases.wrap(grpo, "_generate_and_score_completions", None)
  inner = grpo._generate_and_score_completions  # pylint: disable=protected-access

  def scored(*a, **kw):
    out = inner(*a, **kw)
    lengths.append(int(out["completion_mask"].sum(1).min()))
    return out

  grpo._generate_and_score_completions = scored  # pylint: disable=protected-access
  start = time.perf_counter()
  grpo.train()
  if min(lengths) != settings.new_tokens:
    raise RuntimeError(f"TRL made a response of {min(lengths)} tokens, not {settings.new_tokens}")
  iteration_s = np.diff([start] + phases.ends)
  timed = list(zip(iteration_s[1:], phases.steps[1:]))
  names = ("sampling", "rewards", "logprob_recompute")
  breakdown = {name: _median([p.get(name, 0.0) for _, p in timed]) for name in names}
  breakdown["update"] = _median([s - sum(p.get(n, 0.0) for n in names) for s, p in timed])
  return dict(first_iteration_s=float(iteration_s[0]), iteration_s=_median(iteration_s[1:]),
              iterations_s=[float(x) for x in iteration_s[1:]], breakdown_s=breakdown,
              trl=trl.__version__, torch=torch.__version__, torch_threads=torch.get_num_threads(),
              attention=grpo.model.config._attn_implementation)  # pylint: disable=protected-access


# -------------------------------------------------------------------------------- main


def run(settings: Settings, with_trl: bool) -> dict:
  config = presets.get_preset("tiny", dtype="float32")
  vocab = config.text.vocab_size
  params = vlm.init_params(config, jax.random.key(settings.seed))
  tokens = prompt_tokens(settings, vocab, settings.prompts * (1 + settings.iterations))
  result = dict(preset="tiny", parameters=sum(x.size for x in jax.tree.leaves(params)),
                settings=dataclasses.asdict(settings), machine=common.machine(),
                load_average=list(os.getloadavg()))
  with tempfile.TemporaryDirectory() as directory:
    # Our trainer logs to stderr; stdout carries only the JSON.
    with contextlib.redirect_stdout(sys.stderr):
      hf_checkpoint.save_params(params, config, f"{directory}/hf")
      result["ours"] = bench_ours(settings, config, params, tokens, f"{directory}/ours")
      if with_trl:
        result["trl"] = bench_trl(settings, f"{directory}/hf", tokens, vocab)
  if with_trl:
    result["ratio_trl_over_ours"] = result["trl"]["iteration_s"] / result["ours"]["iteration_s"]
  return result


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  defaults = Settings()
  for field in dataclasses.fields(Settings):
    parser.add_argument(f"--{field.name}", type=type(getattr(defaults, field.name)),
                        default=getattr(defaults, field.name))
  parser.add_argument("--skip_trl", action="store_true")
  args = vars(parser.parse_args())
  skip = args.pop("skip_trl")
  common.emit(run(Settings(**args), not skip))


if __name__ == "__main__":
  main()

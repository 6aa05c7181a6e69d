"""Speed of the generative judges on this machine, and (optionally) the held-out accuracy
of judges trained on the SafeLadder world.

  python -m benchmarks.judges [--batch 16] [--length 256] [--responses 64]
  python -m benchmarks.judges --accuracy [--steps 600] [--learning_rate 3e-3] [--lm_weight 0.1]
                                        [--one_model]

Prints JSON. Speed: for the `tiny` judge (random weights: speed does not depend on them)
over world judge_eval responses (images included), the compile seconds, seconds per
forward of one static batch, and judged responses/s end to end (host rendering and image
preprocessing included). With --accuracy: judge models trained on the default world's
judge_train split (verifiers/judge_training.py), one per group of the runlocal ladder's
`judges.groups` (--one_model: one model for all four), their per-judge, per-verdict
held-out table on judge_eval (masked by the query's harmfulness as the judges score, and
the plain argmax) and the training seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from benchmarks import common
from configs import base as configs_base
from configs import judges as configs_judges

common.setup_cpu()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from data import tokenizer as tokenizer_lib  # noqa: E402
from data.world import World, WorldConfig  # noqa: E402
from models import presets, vlm  # noqa: E402
from rl import rewards  # noqa: E402
from verifiers import judge_training, judges, judges_inputs, judges_prompts  # noqa: E402


def _tokenizer(world: World, vocab_size: int) -> tokenizer_lib.Tokenizer:
  return tokenizer_lib.train_sentencepiece(world.text_corpus(), vocab_size, tempfile.mkdtemp())


def _rollout(examples) -> rewards.Rollout:
  n = len(examples)
  return rewards.Rollout(
      questions=[e.question for e in examples], responses=[e.response for e in examples],
      labels=[e.label for e in examples], golds=[e.gold for e in examples],
      metas=[e.meta for e in examples], images=[tuple(e.images) for e in examples],
      group_ids=np.arange(n, dtype=np.int32), response_lengths=np.full([n], 32, np.int32),
      truncated=np.zeros([n], bool))


def measure_speed(batch: int, length: int, responses: int) -> dict:
  world = World(WorldConfig(sft_examples=400, judge_train_examples=400,
                            judge_eval_examples=max(responses, 8)))
  tok = _tokenizer(world, 1000)
  special = tok.special
  config = presets.get_preset("tiny", vocab_size=tok.vocab_size, image_token_id=special.image_pad,
                              video_token_id=special.video_pad,
                              vision_start_token_id=special.vision_start,
                              vision_end_token_id=special.vision_end)
  inputs = judges_inputs.InputConfig(batch_size=batch, max_tokens=length, max_patches=64)
  model = judges.JudgeModel(config, vlm.init_params(config, jax.random.key(0)), tok, inputs)
  judge = judges.Judge(model, judges.DEFAULT_JUDGES["safety"])
  examples = world.split("judge_eval")[:responses]
  start = time.perf_counter()
  judge(_rollout(examples[:1]))
  compile_s = time.perf_counter() - start
  rollout = _rollout(examples)
  seconds = common.time_call(lambda: judge(rollout), repeats=3)
  ids = judges_prompts.get_template("safety").verdict_ids(tok)
  rows = [judges_inputs.encode(judges_inputs.JudgeRequest(
      judges.resolve_template(judge.config, e.meta), e.question,
      judges_prompts.final_answer(e.response), e.gold, tuple(e.images)), tok, inputs)
      for e in examples[:batch]]
  host = judges_inputs.assemble(rows, [ids] * len(rows), inputs, special.pad)
  forward_s = common.time_call(lambda: model.forward(host))
  return {"params": int(sum(x.size for x in jax.tree.leaves(model.params))),
          "compile_s": round(compile_s, 2), "forward_s": round(forward_s, 4),
          "responses": len(examples), "seconds": round(seconds, 3),
          "responses_per_s": round(len(examples) / seconds, 1),
          "failed": judge.stats.failures, "truncated": judge.stats.truncated}


def measure_accuracy(steps: int, learning_rate: float, lm_weight: float,
                     groups: tuple[tuple[str, ...], ...]) -> dict:
  world = World(WorldConfig())
  tok = _tokenizer(world, 1000)
  config = judge_training.JudgeTrainingConfig(steps=steps, learning_rate=learning_rate,
                                              lm_weight=lm_weight)
  start = time.perf_counter()
  trained = judge_training.train_world_judges(world, tok, config, groups=groups)
  seconds = time.perf_counter() - start

  def as_dict(reports):
    return {name: {"examples": r.examples, "accuracy": round(r.accuracy, 4), "failed": r.failed,
                   "verdicts": {row.verdict: {"support": row.support,
                                              "precision": round(row.precision, 4),
                                              "recall": round(row.recall, 4),
                                              "f1": round(row.f1, 4)} for row in r.rows}}
            for name, r in reports.items()}

  return {"steps": steps, "learning_rate": learning_rate, "lm_weight": lm_weight,
          "groups": [judge_training.group_name(g) for g in groups],
          "train_and_eval_s": round(seconds, 1),
          "final_loss": {name: float(np.mean(r.losses[-20:]))
                         for name, r in trained.results.items()},
          "skipped": {name: r.skipped for name, r in trained.results.items()},
          "held_out": as_dict(trained.reports),
          "held_out_unmasked": as_dict(trained.unmasked),
          "table": judge_training.format_table(trained.reports),
          "table_unmasked": judge_training.format_table(trained.unmasked)}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--length", type=int, default=256)
  parser.add_argument("--responses", type=int, default=64)
  parser.add_argument("--accuracy", action="store_true")
  parser.add_argument("--steps", type=int, default=600)
  parser.add_argument("--learning_rate", type=float, default=3e-3)
  parser.add_argument("--lm_weight", type=float, default=0.1)
  parser.add_argument("--one_model", action="store_true",
                      help="one judge model for all four judges (default: runlocal's groups)")
  args = parser.parse_args()
  result = {"benchmark": "judges", "machine": common.machine()}
  if args.accuracy:
    groups = ((tuple(judges.DEFAULT_JUDGES),) if args.one_model
              else tuple(configs_judges.section(configs_base.parse("runlocal")).groups))
    result["accuracy"] = measure_accuracy(args.steps, args.learning_rate, args.lm_weight,
                                          groups)
  else:
    result.update(batch=args.batch, length=args.length,
                  tiny=measure_speed(args.batch, args.length, args.responses))
  common.emit(result)


if __name__ == "__main__":
  main()

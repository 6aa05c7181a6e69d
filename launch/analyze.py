"""The safety "aha" moment (METHOD.md §6) of one rung of a run: the policy answers held-out
harmful prompts greedily, and the mutual information between its state at every token
(one decoder layer's output) and a safe reference response is estimated with HSIC; the
tokens at the MI peaks are counted (safework/analysis.py).

  python -m launch.analyze --config=configs/safeladder.py:runlocal --workdir=/tmp/safeladder \\
      --stage=search --layer=2 --num_examples=32 --out=/tmp/aha.json

Prints the most frequent peak tokens; --out gets every trajectory as JSON. Needs the
world (runlocal): its harmful prompts and their safe reference answers.
"""

import json

import jax
from absl import app, flags
from etils import epath
from ml_collections import config_flags

from data.pipeline_config import PipelineConfig
from rl import rollout
from rl.sampling_methods import Greedy
from safework import analysis, convert, generation
from safework.infra import sharding

_CONFIG = config_flags.DEFINE_config_file("config", None, "The run's config.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "The run's workdir.")
_STAGE = flags.DEFINE_string("stage", "search", "A finished policy stage, or 'initial'.")
_LAYER = flags.DEFINE_integer("layer", -1, "Decoder layer (0-based); -1: the middle one.")
_COUNT = flags.DEFINE_integer("num_examples", 32, "Held-out harmful prompts to analyse.")
_SIGMA = flags.DEFINE_float("sigma", 50.0, "Gaussian kernel width of the HSIC estimate.")
_PEAK_Z = flags.DEFINE_float("peak_z", 2.0, "Peaks: MI above mean + peak_z std.")
_OUT = flags.DEFINE_string("out", None, "Where to write the trajectories (JSON).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  ladder = convert.open_run(_CONFIG.value, _WORKDIR.value)
  if ladder.world is None:
    raise app.UsageError("launch.analyze needs the world (config.world) for its harmful "
                         "prompts and safe reference answers")
  params = convert.policy_params(ladder, _STAGE.value)
  layers = ladder.model_config.text.num_hidden_layers
  config = analysis.AnalysisConfig(layer=layers // 2 if _LAYER.value < 0 else _LAYER.value,
                                   sigma=_SIGMA.value, peak_z=_PEAK_Z.value)
  examples, references = analysis.world_harmful_prompts(ladder.world, "eval", _COUNT.value)
  cfg = ladder.config.eval
  generate = generation.Generator(
      ladder.model_config, ladder.tokenizer,
      PipelineConfig(mode="prompt", batch_size=cfg.batch_size, max_tokens=cfg.max_prompt_tokens,
                     max_patches=64, max_images=1),
      rollout.sampler_rollout(ladder.model_config, rollout.SamplingConfig(
          num_samples=1, max_new_tokens=cfg.max_new_tokens, method=Greedy(),
          stop_tokens=(ladder.tokenizer.special.im_end,))))
  with sharding.activate(ladder.mesh, ladder.rules):
    responses, _ = generate(params, examples, jax.random.key(ladder.config.seed))
  responses = [r.removesuffix("<|im_end|>") for r in responses]
  records = analysis.analyse(ladder.model_config, params, ladder.tokenizer, examples,
                             responses, references, config)
  counts = analysis.peak_token_counts(records)
  summary = {"stage": _STAGE.value, "layer": config.layer, "examples": len(records),
             "peak_tokens": counts,
             "peaks_per_response": sum(len(r.peaks) for r in records) / max(len(records), 1)}
  print(json.dumps(summary, indent=2))
  if _OUT.value:
    response_of = {e.uid: r for e, r in zip(examples, responses)}
    summary["trajectories"] = [
        {"uid": r.uid, "response": response_of[r.uid], "pieces": list(r.pieces),
         "mi": [float(v) for v in r.mi], "peaks": [int(i) for i in r.peaks]} for r in records]
    epath.Path(_OUT.value).write_text(json.dumps(summary) + "\n")


if __name__ == "__main__":
  app.run(main)

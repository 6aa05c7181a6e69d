"""Checkpoints in and out: a run's policy or judge to HF safetensors, an HF checkpoint to
orbax (safework/convert.py).

Export a finished stage of a run (the same --config as the run, for the model, the mesh
and the tokenizer), for transformers or any HF-format server; the tokenizer files are
copied beside the weights:

  python -m launch.convert --config=configs/safeladder.py:runlocal --workdir=/tmp/safeladder \\
      --stage=search --out=/tmp/safework_hf
  python -m launch.convert --config=configs/safeladder.py:runlocal --workdir=/tmp/safeladder \\
      --stage=judge_refresh/knowledge --out=/tmp/knowledge_judge --dtype=float32

Import an HF checkpoint once as orbax (e.g. into a bucket: orbax reads `gs://` and
restores shard by shard), then start a run from it with --config.model.checkpoint=OUT:

  python -m launch.convert --hf=/ckpt/Qwen2.5-VL-7B-Instruct --out=gs://bucket/qwen7b
"""

from absl import app, flags, logging
from ml_collections import config_flags

from safework import convert

_CONFIG = config_flags.DEFINE_config_file("config", None, "The run's config (export).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "The run's workdir (export).")
_STAGE = flags.DEFINE_string(
    "stage", "search", "Export: a finished policy stage (sft, m3rl_a, m3rl_b, efficient, "
    "search) or a judge group (judges/<group>, judge_refresh/<group>).")
_DTYPE = flags.DEFINE_enum("dtype", "bfloat16", ["bfloat16", "float16", "float32"],
                           "Export: the stored tensor type.")
_HF = flags.DEFINE_string("hf", None, "Import: the HF checkpoint directory to read.")
_SCAN = flags.DEFINE_bool("scan_layers", True, "Import: the runs' model.scan_layers.")
_PARAM_DTYPE = flags.DEFINE_enum("param_dtype", "float32", ["float32", "bfloat16"],
                                 "Import: the runs' master-weight type.")
_OUT = flags.DEFINE_string("out", None, "The directory to write.")
flags.mark_flags_as_required(["out"])


def main(argv):
  del argv
  if _HF.value:
    if _CONFIG.value is not None or _WORKDIR.value:
      raise app.UsageError("--hf imports a checkpoint; --config and --workdir are for export")
    out = convert.import_hf(_HF.value, _OUT.value, scan_layers=_SCAN.value,
                            param_dtype=_PARAM_DTYPE.value)
  else:
    if _CONFIG.value is None or not _WORKDIR.value:
      raise app.UsageError("export needs --config and --workdir (or --hf to import)")
    out = convert.export_stage(convert.open_run(_CONFIG.value, _WORKDIR.value), _STAGE.value,
                               _OUT.value, dtype=_DTYPE.value)
  logging.info("wrote %s", out)
  print(f"wrote: {out}")


if __name__ == "__main__":
  app.run(main)

"""Checkpoints in and out of a ladder run; `launch/convert.py` is the command line.

  ladder = Ladder(config, workdir)
  export_stage(ladder, "search", "/tmp/safework_hf")            # the final policy
  export_stage(ladder, "judge_refresh/knowledge", "/tmp/judge")  # a trained judge
  import_hf("/ckpt/Qwen2.5-VL-7B-Instruct", "gs://bucket/qwen7b")

Export writes an HF Qwen2.5-VL directory (config.json, safetensors) that `transformers`
loads, with the run's tokenizer files beside it. Import writes our parameter tree as an
orbax checkpoint with the HF config.json beside it, which `config.model.checkpoint`
accepts like the HF directory itself: orbax reads and writes `gs://` paths directly and
restores each array straight into its shards, where safetensors needs a local file.

An imported directory:

  <dir>/config.json       the source's HF config (the architecture)
  <dir>/layout.json       how our tree was laid out: {"scan_layers": true, "param_dtype": ...}
  <dir>/params/0/state/   the arrays (safework.infra.checkpoint format)
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import jax
from absl import logging
from etils import epath

from models import hf_checkpoint
from models.config import ModelConfig
from safework import stages
from safework.infra import checkpoint, sharding

PARAMS = "params"
LAYOUT = "layout.json"
JUDGE_STAGES = ("judges", "judge_refresh")
_HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                       "chat_template.json", "vocab.json", "merges.txt")


def abstract_params(model_config: ModelConfig, mesh, rules) -> Any:
  """`model_config`'s parameter tree as ShapeDtypeStructs in their shardings (a restore
  target that allocates nothing)."""
  boxed = hf_checkpoint.abstract_params(model_config)
  shardings = sharding.logical_shardings(boxed, mesh, rules)
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                      sharding.strip_metadata(boxed), shardings)


# ----------------------------------------------------------------------------- export


def open_run(config, workdir: str | epath.PathLike):
  """The `Ladder` of an existing run, for reading: fails, rather than creating the workdir
  or training a tokenizer, when the run is not there."""
  from safework import ladder as ladder_lib  # The runner imports this module's helpers.

  workdir = epath.Path(workdir)
  if not workdir.exists():
    raise FileNotFoundError(f"workdir {workdir} does not exist")
  cfg = config.tokenizer
  if cfg.kind == "sentencepiece" and not cfg.path and not (
      workdir / "tokenizer" / "tokenizer.model").exists():
    raise FileNotFoundError(f"{workdir} has no tokenizer/tokenizer.model: is it a ladder "
                            "workdir? (a run writes it before its first stage)")
  return ladder_lib.Ladder(config, workdir)


def _stage_source(ladder, stage: str) -> tuple[epath.Path, ModelConfig]:
  """The checkpoint directory and model config of `stage`: a policy stage ('search') or a
  judge group ('judges/knowledge', 'judge_refresh/safety+value+helpfulness')."""
  from safework import ladder as ladder_lib  # The runner imports this module's helpers.

  rung, _, group = stage.partition("/")
  if rung in JUDGE_STAGES:
    if not group:
      raise ValueError(f"name the judge group to export: {rung}/<group>, one of "
                       f"{_judge_groups(ladder, rung)}")
    directory = stages._judge_checkpoint_dir(ladder, tuple(group.split("+")), rung)
    if not directory.exists():
      raise FileNotFoundError(f"no trained judge {group!r} in {ladder.workdir / rung}; "
                              f"groups there: {_judge_groups(ladder, rung)}")
    return directory, stages._judge_model_config(ladder)
  if rung not in ladder_lib.POLICY_STAGES or group:
    raise ValueError(f"unknown stage {stage!r}: a policy stage {ladder_lib.POLICY_STAGES} "
                     f"or a judge group '<{'|'.join(JUDGE_STAGES)}>/<group>'")
  if ladder.done_record(rung) is None:
    done = [s for s in ladder_lib.POLICY_STAGES if ladder.done_record(s) is not None]
    raise FileNotFoundError(f"stage {rung!r} has not finished in {ladder.workdir} (no "
                            f"{rung}/DONE.json); finished policy stages: {done}")
  return ladder.workdir / rung / "final", ladder.model_config


def _judge_groups(ladder, rung: str) -> list[str]:
  root = ladder.workdir / rung
  return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def _copy_tokenizer(ladder, out: epath.Path) -> list[str]:
  """Copies the run's tokenizer files into `out`; returns their names."""
  cfg = ladder.config.tokenizer
  if cfg.kind == "hf":
    source = epath.Path(cfg.path).parent
    names = [n for n in _HF_TOKENIZER_FILES if (source / n).exists()]
  else:
    path = epath.Path(cfg.path) if cfg.path else ladder.workdir / "tokenizer" / "tokenizer.model"
    source, names = path.parent, [path.name]
  for name in names:
    (source / name).copy(out / name, overwrite=True)
  return names


def export_stage(ladder, stage: str, out: str | epath.PathLike, dtype: str = "bfloat16"
                 ) -> epath.Path:
  """Writes `stage`'s parameters as an HF checkpoint in `out`, with the tokenizer files.

  Args:
    ladder: a `safework.ladder.Ladder` on the run's config and workdir.
    stage: a finished policy stage ('sft', ..., 'search') or a judge group
      ('judges/<group>', 'judge_refresh/<group>').
    out: the directory to write (created; existing files of the same names are replaced).
    dtype: the stored tensor type, 'bfloat16' (the released checkpoints'), 'float16' or
      'float32' (bitwise our master weights).
  """
  params, model_config = load_stage(ladder, stage)
  out = epath.Path(out)
  hf_checkpoint.save_params(params, model_config, out, dtype=dtype)
  names = _copy_tokenizer(ladder, out)
  logging.info("exported %s to %s with %s", stage, out, names)
  return out


def policy_params(ladder, stage: str) -> Any:
  """A policy to run: a finished policy stage's parameters, or with 'initial' the run's
  start (`config.model.checkpoint`, or the random initialisation)."""
  if stage == "initial":
    return ladder.initial_params()
  if stage.partition("/")[0] in JUDGE_STAGES:
    raise ValueError(f"{stage} is a judge; name a policy stage or 'initial'")
  return load_stage(ladder, stage)[0]


def load_stage(ladder, stage: str) -> tuple[Any, ModelConfig]:
  """The parameters `stage` saved (names as in `export_stage`) and their model config,
  restored in the run's shardings."""
  directory, model_config = _stage_source(ladder, stage)
  like = abstract_params(model_config, ladder.mesh, ladder.rules)
  with checkpoint.Checkpointer(directory, max_to_keep=None) as ckpt:
    restored = ckpt.restore(None, like)
  if restored is None:
    raise FileNotFoundError(f"{directory} holds no finished checkpoint")
  return restored[0], model_config


# ----------------------------------------------------------------------------- import


def is_imported(directory: str | epath.PathLike) -> bool:
  """Whether `directory` was written by `import_hf` (else it is read as HF safetensors)."""
  return (epath.Path(directory) / LAYOUT).exists()


def import_hf(hf_dir: str | epath.PathLike, out: str | epath.PathLike,
              scan_layers: bool = True, param_dtype: str = "float32", mesh=None,
              rules: sharding.Rules = sharding.DEFAULT_RULES) -> epath.Path:
  """Reads an HF Qwen2.5-VL checkpoint and writes it to `out` in the layout above.

  `scan_layers` and `param_dtype` must be those of the runs that will load it (the
  configs' `model.scan_layers` and the model's master-weight type); `load_imported`
  checks them. With a mesh the arrays are read and written shard by shard.
  """
  hf_dir, out = epath.Path(hf_dir), epath.Path(out)
  config = hf_checkpoint.load_config(hf_dir, scan_layers=scan_layers, param_dtype=param_dtype)
  mesh = mesh if mesh is not None else sharding.make_mesh([("data", -1), ("fsdp", 1),
                                                           ("tensor", 1)])
  target = abstract_params(config, mesh, rules)
  params = hf_checkpoint.load_params(hf_dir, config,
                                     jax.tree.map(lambda a: a.sharding, target))
  out.mkdir(parents=True, exist_ok=True)
  with checkpoint.Checkpointer(out / PARAMS, max_to_keep=1, async_save=False) as ckpt:
    ckpt.save(0, params, {"source": str(hf_dir)}, force=True)
  shutil.copyfile(str(hf_dir / "config.json"), str(out / "config.json"))
  (out / LAYOUT).write_text(json.dumps({"scan_layers": scan_layers,
                                        "param_dtype": param_dtype}, indent=2))
  logging.info("imported %s to %s", hf_dir, out)
  return out


def load_imported(directory: str | epath.PathLike, model_config: ModelConfig, mesh, rules
                  ) -> Any:
  """The parameters `import_hf` wrote, restored in `model_config`'s shardings on `mesh`."""
  directory = epath.Path(directory)
  layout = json.loads((directory / LAYOUT).read_text())
  wanted = {"scan_layers": model_config.scan_layers, "param_dtype": model_config.param_dtype}
  if layout != wanted:
    raise ValueError(f"{directory} was imported with {layout}, the run's model wants "
                     f"{wanted}: import it again with those (launch.convert --scan_layers, "
                     f"--param_dtype)")
  like = abstract_params(model_config, mesh, rules)
  with checkpoint.Checkpointer(directory / PARAMS, max_to_keep=None) as ckpt:
    restored = ckpt.restore(0, like)
  return restored[0]

"""Judges from HF checkpoints: released Qwen2.5-VL judge weights with their `tokenizer.json`.

  model = load_judge_model("/ckpt/safety-judge", InputConfig(batch_size=8), mesh=mesh)
  judge = Judge(model, JudgeConfig(name="safety", template="my_template"))

The checkpoint directory holds `config.json` and `*.safetensors` as transformers writes
them (models/hf_checkpoint.py reads them straight into the judge's shardings) and, unless
given elsewhere, `tokenizer.json`. Qwen's real tokenizer lacks our think and confidence
markers; `add_missing_special` appends them (Qwen2.5-VL's embedding has spare rows).
"""

from __future__ import annotations

import os
import pathlib

from jax.sharding import Mesh

from data import tokenizer as tokenizer_lib
from models import hf_checkpoint
from safework.infra import sharding
from verifiers import judges, judges_inputs

TOKENIZER_FILE = "tokenizer.json"


def load_judge_model(directory: str | os.PathLike[str],
                     inputs: judges_inputs.InputConfig = judges_inputs.InputConfig(),
                     mesh: Mesh | None = None, rules: sharding.Rules = sharding.DEFAULT_RULES,
                     tokenizer_path: str | os.PathLike[str] | None = None,
                     add_missing_special: bool = False, dtype: str = "float32"
                     ) -> judges.JudgeModel:
  """A `JudgeModel` from an HF Qwen2.5-VL checkpoint directory.

  Args:
    directory: the checkpoint (config.json, safetensors files).
    inputs: the judge's batch shapes.
    mesh: where to place the parameters (born in their shardings); None: one device.
    rules: the logical-axis rules.
    tokenizer_path: the `tokenizer.json`; default `directory/tokenizer.json`.
    add_missing_special: append our special tokens the tokenizer lacks.
    dtype: the compute dtype (float32 reads verdict probabilities most exactly).

  Raises:
    FileNotFoundError: a missing config, weights or tokenizer file (naming it).
    ValueError: the tokenizer does not fit the model (vocabulary size, special ids).
  """
  directory = pathlib.Path(directory)
  tokenizer = tokenizer_lib.HFTokenizer.from_file(
      tokenizer_path or directory / TOKENIZER_FILE, add_missing_special=add_missing_special)
  config = hf_checkpoint.load_config(directory, dtype=dtype)
  judges.check_compatible(config, tokenizer)
  shardings = None if mesh is None else judges.param_shardings(config, mesh, rules)
  params = hf_checkpoint.load_params(directory, config, shardings)
  return judges.JudgeModel(config, params, tokenizer, inputs, mesh=mesh, rules=rules)

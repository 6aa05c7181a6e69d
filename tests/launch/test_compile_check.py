"""The ahead-of-time compile check, compiled for a small v5p topology with libtpu's
compile-only devices: argument and donated bytes against the sharded shapes summed here,
the fit failure and its message, FLOPs against an unrolled compile and linear in rows."""

import dataclasses
import json
import math

import jax
import pytest

pytest.importorskip("libtpu")

from launch import compile_check  # noqa: E402
from launch import compile_programs  # noqa: E402
from launch import compile_report  # noqa: E402
from models import hf_checkpoint, presets  # noqa: E402
from safework.infra import sharding  # noqa: E402

TOPOLOGY = "v5p:2x2x1"
MESH = [("data", 1), ("fsdp", 2), ("tensor", 2)]
# Tiny with widths in whole TPU tiles (128 lanes), so layout padding stays below 2%.
ALIGNED = dict(hidden_size=256, num_attention_heads=2, num_key_value_heads=2,
               intermediate_size=512, vocab_size=1024, mrope_section=(16, 24, 24))
SHAPES = compile_programs.Shapes(prompts=2, samples=4, prompt_tokens=64, new_tokens=64,
                                 image_patches=64)
PADDING = 1.02


@pytest.fixture(scope="module")
def mesh():
  return sharding.make_mesh(MESH, devices=compile_report.topology_devices(TOPOLOGY))


def _shard_bytes(shape, dtype_bytes: int, spec, mesh) -> int:
  """Bytes of one device's block of an array split by `spec` over `mesh`."""
  block = list(shape)
  for i, entry in enumerate(spec):
    axes = () if entry is None else (entry,) if isinstance(entry, str) else entry
    parts = math.prod(mesh.shape[a] for a in axes)
    block[i] = -(-block[i] // parts)
  return math.prod(block) * dtype_bytes


def _param_bytes(config, mesh, groups=None) -> int:
  """Per-device bytes of the float32 parameters (of the named top-level groups)."""
  boxed = hf_checkpoint.abstract_params(config)
  shardings = sharding.logical_shardings(boxed, mesh, sharding.DEFAULT_RULES)
  values = sharding.strip_metadata(boxed)["params"]
  total = 0
  for group, tree in values.items():
    if groups is None or group in groups:
      leaves = zip(jax.tree.leaves(tree), jax.tree.leaves(shardings["params"][group]))
      total += sum(_shard_bytes(x.shape, 4, s.spec, mesh) for x, s in leaves)
  return total


def _memory(name, config, shapes, mesh):
  program = compile_programs.build(name, config, shapes, mesh, sharding.DEFAULT_RULES)
  return compile_report.compile_memory(program, mesh, sharding.DEFAULT_RULES)


def test_train_step_arguments_are_the_sharded_state_reference_and_batch(mesh):
  config = presets.get_preset("tiny", **ALIGNED)
  shapes = dataclasses.replace(SHAPES, image_patches=0)  # Text only: a faster compile.
  memory = _memory("train", config, shapes, mesh)
  params = _param_bytes(config, mesh)
  text = _param_bytes(config, mesh, ["embed_tokens", "decoder"])
  assert text < params  # The vision tower is frozen: AdamW keeps no moments for it.
  rows, t, shards = 8, 128, 2  # Rows split over data x fsdp.
  # tokens, 3 position rows, segment ids, rollout log-probs, loss mask; advantages.
  batch = (rows // shards) * (t * 4 * 7 + 4)
  state = params + 2 * text  # Parameters, AdamW's mu and nu.
  # The reference's vision tower is not read without images, so jit does not take it.
  expected = state + text + batch
  assert expected <= memory["argument_bytes"] <= expected * PADDING
  # The state is donated: the updated state reuses its buffers.
  assert state <= memory["alias_bytes"] <= state * PADDING
  assert memory["program_bytes"] >= memory["argument_bytes"] + memory["temp_bytes"]


def test_decode_holds_the_kv_cache_split_over_rows_and_kv_heads(mesh):
  config = presets.get_preset("tiny", **ALIGNED)
  memory = _memory("decode", config, SHAPES, mesh)
  text = config.text
  rows, slots = SHAPES.prompts * SHAPES.samples, SHAPES.prompt_tokens + SHAPES.new_tokens + 1
  # [L, B, S, K, H] float32 (tiny computes in float32), rows over fsdp, kv heads over tensor.
  cache = 2 * text.num_hidden_layers * (rows // 2) * slots * (text.num_key_value_heads // 2) \
      * text.head_dim * 4
  logits = (rows // 2) * (text.vocab_size // 2) * 4
  # tokens, log-probs, sampled flags; lengths (cache and response), positions, budgets, done.
  per_row = (rows // 2) * (SHAPES.new_tokens * (4 + 4 + 1) + 4 * 4 + 1)
  state = cache + logits + per_row + 8 + 4  # ... and the key and the draw count
  # Decoding never reads the vision tower's parameters: they are not arguments.
  expected = _param_bytes(config, mesh, ["embed_tokens", "decoder", "lm_head"]) + state
  assert expected <= memory["argument_bytes"] <= expected * PADDING
  assert state <= memory["alias_bytes"] <= state * PADDING  # The state is donated.


def _main(capsys, *flags):
  argv = ["--preset=tiny", f"--topology={TOPOLOGY}", "--mesh=data=1,fsdp=2,tensor=2",
          "--programs=judge", "--flops=none", "--judge_rows=4", "--judge_tokens=64",
          "--image_patches=16", *flags]
  try:
    compile_check.main(argv)
    error = None
  except SystemExit as e:
    error = e
  out = capsys.readouterr().out.strip().splitlines()
  return json.loads(out[-1]), error


def test_a_program_over_the_hbm_limit_exits_with_its_numbers(capsys):
  report, error = _main(capsys, "--hbm_gib=0.001")
  judge = report["programs"][0]
  assert error is not None and error.code != 0
  message = str(error.code)
  assert "judge does not fit v5p:2x2x1" in message
  assert compile_report.format_bytes(judge["total_bytes"]) in message
  assert compile_report.format_bytes(judge["temp_bytes"]) in message
  assert judge["total_bytes"] > 0.001 * 2**30 and not judge["fits"]
  # Resident: the policy's parameters, AdamW moments and reference stay on the chips.
  longlived = report["long_lived_bytes"]
  assert judge["resident_bytes"] == longlived["params"] + longlived["opt_state"] + \
      longlived["reference"]
  assert judge["total_bytes"] == judge["program_bytes"] + judge["resident_bytes"]

  report, error = _main(capsys)
  assert error is None and report["programs"][0]["fits"]
  assert report["chip"]["hbm_bytes"] == 95 * 2**30


def test_flops_match_an_unrolled_compile_and_grow_linearly_with_rows(mesh):
  config = presets.get_preset("tiny")
  rules = sharding.DEFAULT_RULES

  def unrolled(shapes):
    program = compile_programs.build("judge", config.replace(scan_layers=False), shapes, mesh,
                                     rules)
    with sharding.activate(mesh, rules):
      compiled = program.lower().compile()
    return compile_report._cost_flops(compiled)  # pylint: disable=protected-access

  shapes = compile_programs.Shapes(judge_rows=8, judge_tokens=64, image_patches=16)
  flops = compile_report.program_flops("judge", config, shapes, mesh, rules)
  # The depth extrapolation against the whole model compiled with its layers unrolled.
  assert flops > 0
  assert flops == pytest.approx(unrolled(shapes), rel=0.01)
  half = unrolled(dataclasses.replace(shapes, judge_rows=4))
  assert flops / half == pytest.approx(2.0, rel=0.02)


def test_settings_errors_name_the_field():
  with pytest.raises(ValueError, match="'model=2'"):
    compile_check.parse_mesh("model=2")
  with pytest.raises(ValueError, match="'experts=tensor'"):
    compile_check.parse_rules("experts=tensor")
  with pytest.raises(ValueError, match="unknown mesh axes"):
    compile_check.parse_rules("vocab=model")
  with pytest.raises(ValueError, match="unknown TPU generation 'v9'"):
    compile_report.chip_of("v9:2x2")
  with pytest.raises(ValueError, match="logits_chunk=100"):
    compile_programs.Shapes(logits_chunk=100)
  assert compile_check.parse_mesh("fsdp=-1,tensor=2") == [("data", 1), ("fsdp", -1),
                                                           ("tensor", 2)]
  rules = dict(compile_check.parse_rules("vocab=none,batch=data+fsdp"))
  assert rules["vocab"] is None and rules["batch"] == ("data", "fsdp")


def test_v4_topologies_count_per_tensorcore():
  v4 = compile_report.per_device(compile_report.chip_of("v4:2x2x1"), "v4:2x2x1", 8)
  assert v4.hbm_bytes == 16 * 2**30 and v4.peak_flops == 275e12 / 2
  v5p = compile_report.per_device(compile_report.chip_of("v5p:2x2x1"), "v5p:2x2x1", 4)
  assert v5p == compile_report.CHIPS["v5p"]

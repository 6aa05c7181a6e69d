"""Compiling a program for a TPU topology on a CPU host, and what the result says:
memory per device, FLOPs, whether it fits the chip, and a time estimate.

  devices = topology_devices("v5p:2x2x1")       # compile-only TPU devices, from libtpu
  memory = compile_memory(program, mesh, rules)  # bytes per device, from memory_analysis()
  flops = program_flops("train", config, shapes, mesh, rules)

FLOPs: XLA's cost analysis counts the body of a loop once (layers are `nn.scan`ned, micro-
batches `lax.scan`ned, decode is a `while_loop`, and the partitioner may loop over the
shards of a large sharded matmul), so they are not read off the program as compiled. The
same program is compiled without partitioner loops, with its layers unrolled at depths
(1, 1), (2, 1) and (1, 2) (no remat, one micro-batch, no logits chunking: model FLOPs,
recomputation not counted); FLOPs are affine in each depth, which gives the full depth's
exactly. The train step's count is that of one micro-batch times their number (the
optimiser update, about 20 FLOPs per parameter, is then counted once per micro-batch);
decode's is one step times the response width. Counts are per device (the partitioned
program).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os

import jax
from jax.experimental import topologies

from launch import compile_programs
from models.config import ModelConfig
from safework.infra import sharding

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class Chip:
  name: str
  hbm_bytes: int  # Per chip.
  peak_flops: float  # Dense bf16 FLOP/s per chip.
  hbm_bandwidth: float  # Bytes/s per chip.


CHIPS = {
    "v4": Chip("v4", 32 * GIB, 275e12, 1.2e12),
    "v5e": Chip("v5e", 16 * GIB, 197e12, 8.19e11),
    "v5p": Chip("v5p", 95 * GIB, 459e12, 2.765e12),
    "v6e": Chip("v6e", 32 * GIB, 918e12, 1.64e12),
}
_ALIASES = {"v5litepod": "v5e", "v5lite": "v5e"}


def chip_of(topology: str) -> Chip:
  """The chip of a topology name such as 'v5p:2x2x1'."""
  generation, _, shape = topology.partition(":")
  generation = _ALIASES.get(generation.lower(), generation.lower())
  if generation not in CHIPS or not all(d.isdigit() for d in shape.split("x")):
    raise ValueError(f"topology {topology!r}: unknown TPU generation {generation!r}; "
                     f"known: {sorted(CHIPS)} (names like 'v5p:2x2x1')")
  return CHIPS[generation]


def per_device(chip: Chip, topology: str, devices: int) -> Chip:
  """The chip's figures per jax device: v4 topologies come as one device per TensorCore
  (two per chip), the later ones as one per chip."""
  chips = math.prod(int(d) for d in topology.split(":")[1].split("x"))
  if devices % chips:
    raise ValueError(f"topology {topology!r} has {devices} devices for {chips} chips")
  share = devices // chips
  return dataclasses.replace(chip, name=chip.name if share == 1 else f"{chip.name}/{share}",
                             hbm_bytes=chip.hbm_bytes // share,
                             peak_flops=chip.peak_flops / share,
                             hbm_bandwidth=chip.hbm_bandwidth / share)


@functools.lru_cache(maxsize=None)
def topology_devices(topology: str) -> tuple[jax.Device, ...]:
  """Compile-only devices of a TPU topology, made by libtpu on any host."""
  chip_of(topology)
  # Another process (any jax run on this host without JAX_PLATFORMS=cpu) may hold libtpu's
  # lock file; compiling for a topology uses no chip, so sharing is safe.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  # Without it libtpu logs an error about the worker list of a TPU VM this host is not.
  os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
  try:
    description = topologies.get_topology_desc(topology_name=topology, platform="tpu")
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"cannot make TPU topology {topology!r} (libtpu from requirements/tpu.txt "
                     f"must be installed): {e}") from e
  return tuple(description.devices)


def _lower(program: compile_programs.Program, mesh, rules):
  # Logical activation constraints resolve at trace time against the active mesh and rules.
  with sharding.activate(mesh, rules):
    return program.lower()


def compile_memory(program: compile_programs.Program, mesh, rules) -> dict:
  """Bytes per device of the compiled program, or the compiler's out-of-memory message.

  `program_bytes` = arguments + outputs - aliased (donated) + temporaries + code.
  """
  try:
    compiled = _lower(program, mesh, rules).compile()
  except jax.errors.JaxRuntimeError as e:
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    return {"error": str(e).strip().splitlines()[0]}
  stats = compiled.memory_analysis()
  out = {"argument_bytes": stats.argument_size_in_bytes,
         "output_bytes": stats.output_size_in_bytes,
         "alias_bytes": stats.alias_size_in_bytes,
         "temp_bytes": stats.temp_size_in_bytes,
         "generated_code_bytes": stats.generated_code_size_in_bytes}
  out["program_bytes"] = (out["argument_bytes"] + out["output_bytes"] - out["alias_bytes"]
                          + out["temp_bytes"] + out["generated_code_bytes"])
  return out


def _depth_config(config: ModelConfig, text_layers: int, vision_layers: int) -> ModelConfig:
  return config.replace(
      scan_layers=False, remat="none",
      text=dataclasses.replace(config.text, num_hidden_layers=text_layers),
      vision=dataclasses.replace(config.vision, depth=vision_layers, fullatt_block_indexes=(0,)))


# XLA may split a sharded matmul into a loop over the shards of its gathered operand
# ("windowed einsum"), which cost analysis would count once; the FLOPs compiles keep
# such matmuls whole (the memory compile keeps XLA's defaults).
_NO_SPMD_LOOPS = {"xla_tpu_enable_windowed_einsum_for_all_gather": False,
                  "xla_tpu_enable_windowed_einsum_for_reduce_scatter": False}


def _cost_flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", 0.0))


def flops_shapes(name: str, shapes: compile_programs.Shapes
                 ) -> tuple[compile_programs.Shapes, int]:
  """The loop-free shapes whose FLOPs, times the returned count, are the program's."""
  if name == "train":
    micro = shapes.micro_batches
    return dataclasses.replace(shapes, train_rows=shapes.rows // micro, micro_batches=1,
                               logits_chunk=0), micro
  if name == "decode":
    return shapes, shapes.new_tokens
  return shapes, 1


def program_flops(name: str, config: ModelConfig, shapes: compile_programs.Shapes, mesh,
                  rules) -> float:
  """FLOPs per device of one call of program `name` (see the module docstring)."""
  loop_free, count = flops_shapes(name, shapes)

  def at(text_layers: int, vision_layers: int) -> float:
    program = compile_programs.build(name, _depth_config(config, text_layers, vision_layers),
                                     loop_free, mesh, rules)
    return _cost_flops(_lower(program, mesh, rules).compile(compiler_options=_NO_SPMD_LOOPS))

  one = at(1, 1)
  per_text, per_vision = at(2, 1) - one, at(1, 2) - one
  full = (one + per_text * (config.text.num_hidden_layers - 1)
          + per_vision * (config.vision.depth - 1))
  return count * full


def time_estimate(name: str, shapes: compile_programs.Shapes, memory: dict,
                  flops: float | None, chip: Chip, mfu: float) -> dict:
  """Seconds per call: FLOPs at `mfu` of the chip's peak, and an HBM floor (the arguments
  read once per decode step or micro-batch); the estimate is the larger."""
  reads = {"decode": shapes.new_tokens, "train": shapes.micro_batches}.get(name, 1)
  out = {}
  if flops is not None:
    out["compute_s"] = flops / (chip.peak_flops * mfu)
  if "argument_bytes" in memory:
    out["hbm_floor_s"] = reads * memory["argument_bytes"] / chip.hbm_bandwidth
  if out:
    out["estimate_s"] = max(out.values())
  return out


def format_bytes(n: float) -> str:
  return f"{n / GIB:.3f} GiB" if n >= GIB / 10 else f"{n / 2**20:.2f} MiB"


def table(report: dict) -> str:
  """A fixed-width table of a compile check report (see `launch.compile_check.run`)."""
  columns = [("program", "program", str), ("arguments", "argument_bytes", format_bytes),
             ("outputs", "output_bytes", format_bytes), ("aliased", "alias_bytes", format_bytes),
             ("temporaries", "temp_bytes", format_bytes),
             ("code", "generated_code_bytes", format_bytes),
             ("resident", "resident_bytes", format_bytes), ("total", "total_bytes", format_bytes),
             ("fits", "fits", lambda v: "yes" if v else "NO"),
             ("TFLOPs/dev", "flops", lambda v: f"{v / 1e12:.4g}"),
             ("est. s", "estimate_s", lambda v: f"{v:.4g}")]
  rows = [[title for title, _, _ in columns]]
  for entry in report["programs"]:
    rows.append([fmt(entry[key]) if entry.get(key) is not None else "-"
                 for _, key, fmt in columns])
  widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
  lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
  chip = report["chip"]
  lines.insert(0, f"{report['preset']} on {report['topology']} ({report['devices']} x "
                  f"{chip['name']}, {format_bytes(chip['hbm_bytes'])} HBM each), mesh "
                  f"{report['mesh']}; per device; time at {report['mfu']:.0%} MFU of "
                  f"{chip['peak_flops'] / 1e12:.0f} TFLOP/s")
  for entry in report["programs"]:
    if entry.get("error"):
      lines.append(f"{entry['program']}: {entry['error']}")
  if report.get("iteration_s") is not None:
    lines.append(f"iteration of {report['iteration_prompts']} prompts: "
                 f"{report['iteration_s']:.4g} s ({report['iteration_calls']})")
  return "\n".join(lines)

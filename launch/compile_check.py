"""Ahead-of-time compile check: does the M³-RL loop of a preset fit a TPU topology?

  python -m launch.compile_check --preset tiny --topology v5p:2x2x1
  python -m launch.compile_check --preset qwen2_5_vl_7b --topology v5p:2x4x4 \\
      --mesh data=1,fsdp=8,tensor=4 --prompts 16 --samples 8 --new_tokens 8192 ...

(docs/scale_plan.md has the full commands of the 7B and 72B plans and their output.)

On a CPU host with libtpu (requirements/tpu.txt), lowers and compiles for the named
topology, with abstract sharded arguments (nothing is allocated): the RL train step, the
sampler's prefill and decode, and a judge forward (`launch.compile_programs`). For each it
prints, per device, the argument, output, aliased, temporary and code bytes of
`memory_analysis()`, the buffers that stay on the chips while it runs (the policy's
parameters, optimiser state and reference, `--judges` judges' parameters: those it does
not take as arguments), the FLOPs (`launch.compile_report`) and a time estimate at
`--mfu`; then a JSON object. Exits non-zero, naming the program and the numbers, when a
program and the resident buffers exceed the chip's HBM (or `--hbm_gib`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time

# Before jax loads: the check compiles for compile-only TPU devices and runs nothing, so
# jax's own backend stays the CPU (with libtpu installed it would try to start a TPU).
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from launch import compile_programs  # noqa: E402  pylint: disable=g-import-not-at-top
from launch import compile_report  # noqa: E402
from models import layers, presets  # noqa: E402
from safework.infra import sharding  # noqa: E402


def parse_mesh(text: str) -> list[tuple[str, int]]:
  """'data=1,fsdp=-1,tensor=2' -> every mesh axis with its size (1 where not named)."""
  sizes = {axis: 1 for axis in sharding.MESH_AXES}
  for item in filter(None, text.split(",")):
    axis, _, size = item.partition("=")
    if axis not in sizes or not size.lstrip("-").isdigit():
      raise ValueError(f"--mesh: {item!r} is not axis=size with an axis of "
                       f"{sharding.MESH_AXES}")
    sizes[axis] = int(size)
  return list(sizes.items())


def parse_rules(text: str) -> sharding.Rules:
  """'vocab=tensor,batch=data+fsdp,length=none' replaces those entries of DEFAULT_RULES."""
  rules = dict(sharding.DEFAULT_RULES)
  for item in filter(None, text.split(",")):
    logical, _, target = item.partition("=")
    if logical not in rules or not target:
      raise ValueError(f"--rules: {item!r} is not logical=mesh_axes with a logical axis of "
                       f"{list(rules)}")
    axes = tuple(a for a in target.split("+") if a != "none")
    rules[logical] = None if not axes else axes[0] if len(axes) == 1 else axes
  return sharding.validate_rules(list(rules.items()))


def _model_config(preset: str, dtype: str, remat: str):
  if remat and remat not in layers.REMAT_POLICIES:
    raise ValueError(f"--remat {remat!r}: choose from {sorted(layers.REMAT_POLICIES)}")
  overrides = {k: v for k, v in (("dtype", dtype), ("remat", remat)) if v}
  return presets.get_preset(preset, **overrides)


def _progress(message: str) -> None:
  print(f"compile_check: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict:
  """Compiles the chosen programs; the report (see the module docstring) as a dict."""
  chip = compile_report.chip_of(args.topology)
  if not 0 < args.mfu <= 1:
    raise ValueError(f"--mfu must be in (0, 1], got {args.mfu}")
  programs = [p for p in args.programs.split(",") if p]
  unknown = sorted(set(programs) - set(compile_programs.PROGRAMS))
  if unknown or not programs:
    raise ValueError(f"--programs: unknown {unknown}; choose from {compile_programs.PROGRAMS}")
  shapes = compile_programs.Shapes(**{f.name: getattr(args, f.name)
                                      for f in dataclasses.fields(compile_programs.Shapes)})
  config = _model_config(args.preset, args.dtype, args.remat)
  judge_config = _model_config(args.judge_preset or args.preset, args.dtype, "")
  devices = compile_report.topology_devices(args.topology)
  chip = compile_report.per_device(chip, args.topology, len(devices))
  try:
    mesh = sharding.make_mesh(parse_mesh(args.mesh), devices=devices)
  except NotImplementedError as e:  # jax's placement of mesh axes on the physical torus.
    raise ValueError(f"--mesh {args.mesh} on {args.topology}: {e}") from e
  rules = parse_rules(args.rules)
  hbm = int(args.hbm_gib * compile_report.GIB) if args.hbm_gib else chip.hbm_bytes

  models = {name: judge_config if name == "judge" else config
            for name in compile_programs.PROGRAMS}
  # Train and judge are built (not compiled) anyway: they size every long-lived buffer.
  built = {name: compile_programs.build(name, models[name], shapes, mesh, rules)
           for name in dict.fromkeys(["train", "judge"] + programs)}
  long_lived = built["train"].long_lived | built["judge"].long_lived
  long_lived["judge_params"] *= args.judges
  entries = []
  for name in programs:
    _progress(f"compiling {name}")
    start = time.perf_counter()
    entry = {"program": name}
    entry.update(compile_report.compile_memory(built[name], mesh, rules))
    entry["compile_s"] = time.perf_counter() - start
    entry["resident_bytes"] = sum(max(0, size - built[name].long_lived.get(key, 0))
                                  for key, size in long_lived.items())
    entry["hbm_bytes"] = hbm
    if "program_bytes" in entry:
      entry["total_bytes"] = entry["program_bytes"] + entry["resident_bytes"]
    entry["fits"] = entry.get("total_bytes", math.inf) <= hbm
    entry["flops"] = None
    if args.flops == "extrapolate":
      _progress(f"counting the FLOPs of {name}")
      entry["flops"] = compile_report.program_flops(name, models[name], shapes, mesh, rules)
    entry.update(compile_report.time_estimate(name, shapes, entry, entry["flops"], chip,
                                              args.mfu))
    entries.append(entry)

  report = {"preset": args.preset, "topology": args.topology, "devices": len(devices),
            "chip": dataclasses.asdict(chip) | {"hbm_bytes": hbm},
            "mesh": dict(mesh.shape), "rules": [list(r) for r in rules],
            "shapes": dataclasses.asdict(shapes), "remat": config.remat,
            "dtype": config.dtype, "judges": args.judges, "mfu": args.mfu,
            "long_lived_bytes": long_lived, "programs": entries}
  report.update(_iteration(args, shapes, entries))
  return report


def _iteration(args, shapes: compile_programs.Shapes, entries: list[dict]) -> dict:
  """Seconds of one RL iteration over `--iteration_prompts` prompts, from the estimates."""
  prompts = args.iteration_prompts or shapes.prompts
  responses = prompts * shapes.samples
  calls = {"prefill": math.ceil(prompts / shapes.prompts),
           "decode": math.ceil(prompts / shapes.prompts),
           "judge": math.ceil(responses / shapes.judge_rows) * max(args.judges, 1),
           "train": math.ceil(responses / shapes.rows)}
  times = {e["program"]: e.get("estimate_s") for e in entries}
  if len(times) < len(calls) or any(t is None for t in times.values()):
    return {"iteration_s": None}
  return {"iteration_prompts": prompts, "iteration_calls": calls,
          "iteration_s": sum(calls[name] * times[name] for name in calls)}


def fit_failures(report: dict) -> list[str]:
  """One message per program that does not fit, naming it and its numbers."""
  fmt = compile_report.format_bytes
  messages = []
  for e in report["programs"]:
    if e["fits"]:
      continue
    where = (f"{e['program']} does not fit {report['topology']} ({fmt(e['hbm_bytes'])} HBM per "
             f"chip)")
    if "error" in e:
      messages.append(f"{where}: the compiler ran out of memory: {e['error']}")
    else:
      messages.append(
          f"{where}: it needs {fmt(e['total_bytes'])} per device = arguments "
          f"{fmt(e['argument_bytes'])} + outputs {fmt(e['output_bytes'])} - aliased "
          f"{fmt(e['alias_bytes'])} + temporaries {fmt(e['temp_bytes'])} + code "
          f"{fmt(e['generated_code_bytes'])} + resident {fmt(e['resident_bytes'])}")
  return messages


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m launch.compile_check",
                              description=__doc__.splitlines()[0])
  p.add_argument("--preset", default="tiny", help="models.presets name of the policy")
  p.add_argument("--topology", default="v5p:2x2x1", help="TPU topology, e.g. v5p:2x4x4")
  p.add_argument("--mesh", default="data=1,fsdp=-1,tensor=1",
                 help="axis=size over data, fsdp, tensor (one -1: the rest; missing: 1)")
  p.add_argument("--rules", default="", help="logical=axis[+axis] overrides of DEFAULT_RULES")
  p.add_argument("--dtype", default="", help="compute dtype (default: the preset's)")
  p.add_argument("--remat", default="", help="remat policy (default: the preset's)")
  p.add_argument("--judge_preset", default="", help="the judges' preset (default: --preset)")
  p.add_argument("--judges", type=int, default=1, help="judge models resident on the chips")
  p.add_argument("--programs", default=",".join(compile_programs.PROGRAMS))
  p.add_argument("--flops", choices=("extrapolate", "none"), default="extrapolate")
  p.add_argument("--mfu", type=float, default=0.4, help="utilisation of the peak for times")
  p.add_argument("--hbm_gib", type=float, default=0.0, help="HBM per chip (default: the chip's)")
  p.add_argument("--iteration_prompts", type=int, default=0,
                 help="prompts per RL iteration for its time (default: --prompts)")
  p.add_argument("--json_out", default="", help="also write the JSON report to this file")
  defaults = compile_programs.Shapes()
  for field in dataclasses.fields(compile_programs.Shapes):
    names = [f"--{field.name}"] + (["--batch"] if field.name == "prompts" else [])
    kind = type(getattr(defaults, field.name))
    p.add_argument(*names, type=kind, default=getattr(defaults, field.name))
  return p


def main(argv: list[str] | None = None) -> None:
  args = parser().parse_args(argv)
  if args.judges < 0:
    raise SystemExit(f"--judges must be >= 0, got {args.judges}")
  try:
    report = run(args)
  except ValueError as e:
    raise SystemExit(f"compile_check: {e}") from e
  print(compile_report.table(report))
  print(json.dumps(report))
  if args.json_out:
    with open(args.json_out, "w") as f:
      json.dump(report, f, indent=2)
  failures = fit_failures(report)
  if failures:
    raise SystemExit("compile_check: " + "\ncompile_check: ".join(failures))


if __name__ == "__main__":
  main()

"""Helpers for the launch-script tests: run a script, split what it prints, fake its tools."""

import json
import os
import pathlib
import shlex
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]

# A stand-in for gcloud or xpk: records its arguments, one JSON list per line.
_RECORDER = """#!/usr/bin/env bash
python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> "$RECORD_FILE"
"""


def run_script(name: str, *args: str, tmp_path: pathlib.Path,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
  """Runs launch/<name> under bash with TMPDIR=tmp_path and DRY_RUN unset (unless in env)."""
  full_env = {k: v for k, v in os.environ.items() if k != "DRY_RUN"}
  full_env["TMPDIR"] = str(tmp_path)
  full_env.update(env or {})
  return subprocess.run(["bash", str(ROOT / "launch" / name), *args], env=full_env,
                        capture_output=True, text=True, timeout=120, check=False)


def commands(stdout: str) -> list[list[str]]:
  """The printed command lines, each split into words as a POSIX shell would."""
  return [shlex.split(line) for line in stdout.splitlines()]


def option(words: list[str], name: str) -> str:
  """The value of the one `--name=value` word in `words`."""
  values = [w.split("=", 1)[1] for w in words if w.startswith(f"--{name}=")]
  assert len(values) == 1, (name, words)
  return values[0]


def fake_tools(tmp_path: pathlib.Path, *names: str) -> dict[str, str]:
  """Puts recording stand-ins for `names` first on PATH; returns the environment to use."""
  bin_dir = tmp_path / "fake_bin"
  bin_dir.mkdir()
  for name in names:
    (bin_dir / name).write_text(_RECORDER)
    (bin_dir / name).chmod(0o755)
  return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
          "RECORD_FILE": str(tmp_path / "calls.jsonl")}


def recorded_calls(tmp_path: pathlib.Path) -> list[list[str]]:
  path = tmp_path / "calls.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

"""launch/xpk.sh: the exact commands of its dry run, quoting, errors and a faked real run."""

import json
import shlex
import subprocess

import pytest

from tests.launch.shell import ROOT, commands, fake_tools, option, recorded_calls, run_script

ARGS = ("--cluster=tpu-cluster", "--project=my-proj", "--zone=us-east5-a",
        "--workload=ladder-72b", "--tpu-type=v5p-256", "--config=configs/safeladder.py:model=72b",
        "--workdir=gs://bucket/exp 2", "--", "--config.name=Bob's run")
CREATE = ["xpk", "workload", "create", "--cluster=tpu-cluster", "--project=my-proj",
          "--zone=us-east5-a", "--workload=ladder-72b", "--tpu-type=v5p-256"]
MAIN = ["SAFEWORK_DISTRIBUTED=on", "python", "-m", "launch.main",
        "--config=configs/safeladder.py:model=72b", "--workdir=gs://bucket/exp 2",
        "--config.name=Bob's run"]


def test_dry_run_prints_every_command(tmp_path):
  result = run_script("xpk.sh", "--dry-run", "--num-slices=2", *ARGS, tmp_path=tmp_path)
  assert result.returncode == 0, result.stderr
  stage = f"{tmp_path}/safeladder-xpk-ladder-72b"
  pack, clear, make, unpack, create = commands(result.stdout)
  assert pack == ["tar", "-czf", f"{stage}.tar.gz", "-C", str(ROOT), "--exclude-vcs",
                  "--exclude=./.venv", "--exclude=./bazel-*", "--exclude=./runs",
                  "--exclude=__pycache__", "--exclude=.pytest_cache", "."]
  assert clear == ["rm", "-rf", stage]
  assert make == ["mkdir", "-p", stage]
  assert unpack == ["tar", "-xzf", f"{stage}.tar.gz", "-C", stage]
  assert create[:-1] == [*CREATE, "--num-slices=2", "--base-docker-image=python:3.11-slim",
                         f"--script-dir={stage}"]
  remote = shlex.split(option(create, "command"))
  assert remote[-len(MAIN):] == MAIN and remote[-len(MAIN) - 1] == "&&"
  assert "jax[tpu]==0.10.2" in remote and "requirements/core.txt" in remote


def test_prebuilt_image_runs_only_main(tmp_path):
  result = run_script("xpk.sh", "--dry-run", "--docker-image=gcr.io/p/ladder:1", *ARGS,
                      tmp_path=tmp_path)
  (create,) = commands(result.stdout)
  assert create[:-1] == [*CREATE, "--num-slices=1", "--docker-image=gcr.io/p/ladder:1"]
  assert shlex.split(option(create, "command")) == MAIN


def test_container_shell_receives_the_arguments_intact(tmp_path):
  """The container's shell runs the printed command; a fake python echoes its argv."""
  result = run_script("xpk.sh", "--dry-run", "--docker-image=img", *ARGS, tmp_path=tmp_path)
  remote = option(commands(result.stdout)[0], "command")
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  (bin_dir / "python").write_text(
      "#!/usr/bin/env bash\n"
      "python3 -c 'import json, os, sys; "
      "print(json.dumps([os.environ[\"SAFEWORK_DISTRIBUTED\"], *sys.argv[1:]]))' \"$@\"\n")
  (bin_dir / "python").chmod(0o755)
  out = subprocess.run(["bash", "-c", f"PATH={bin_dir}:$PATH; {remote}"], capture_output=True,
                       text=True, check=True).stdout
  assert json.loads(out) == ["on", *MAIN[2:]]


def test_env_var_dry_run_equals_the_flag(tmp_path):
  by_flag = run_script("xpk.sh", "--dry-run", *ARGS, tmp_path=tmp_path)
  by_env = run_script("xpk.sh", *ARGS, tmp_path=tmp_path, env={"DRY_RUN": "1"})
  assert by_env.returncode == 0 and by_env.stdout == by_flag.stdout


@pytest.mark.parametrize("args, message", [
    ((), "missing --cluster --project --zone --workload --tpu-type --config --workdir"),
    (ARGS[1:], "missing --cluster"),
    (("--workdir=local/dir",) + ARGS[:6], "--workdir must be a gs:// URL"),
    (("--workload=Ladder_72B",) + ARGS[:3] + ARGS[4:], "--workload 'Ladder_72B' must be"),
    (("--workload=" + "a" * 41,) + ARGS[:3] + ARGS[4:], "at most 40 characters"),
    (("--num-slices=0",) + ARGS, "--num-slices must be a positive integer"),
    (("--nodes=2",) + ARGS, "unknown argument '--nodes=2'"),
])
def test_bad_arguments_fail_with_a_message(tmp_path, args, message):
  result = run_script("xpk.sh", "--dry-run", *args, tmp_path=tmp_path)
  assert result.returncode == 2
  assert message in result.stderr and "--help" in result.stderr
  assert result.stdout == ""


def test_help(tmp_path):
  result = run_script("xpk.sh", "-h", tmp_path=tmp_path)
  assert result.returncode == 0 and result.stdout.startswith("Usage: launch/xpk.sh")


def test_real_run_stages_a_clean_checkout(tmp_path):
  """With xpk faked, the script runs what its dry run prints; the staged copy is clean."""
  dry = commands(run_script("xpk.sh", "--dry-run", *ARGS, tmp_path=tmp_path).stdout)
  result = run_script("xpk.sh", *ARGS, tmp_path=tmp_path, env=fake_tools(tmp_path, "xpk"))
  assert result.returncode == 0, result.stderr
  assert [["xpk", *call] for call in recorded_calls(tmp_path)] == [dry[-1]]
  stage = tmp_path / "safeladder-xpk-ladder-72b"
  assert (stage / "launch" / "xpk.sh").read_text() == (ROOT / "launch" / "xpk.sh").read_text()
  assert not (stage / ".venv").exists() and not (stage / ".git").exists()

"""launch/tpu_vm.sh: the exact commands of its dry run, quoting, errors and a faked real run."""

import json
import shlex
import subprocess
import tarfile

import pytest

from tests.launch.shell import ROOT, commands, fake_tools, option, recorded_calls, run_script

ARGS = ("--project=my-proj", "--zone=us-east5-a", "--tpu=ladder-7b", "--accelerator=v5p-64",
        "--config=configs/safeladder.py:model=7b", "--workdir=gs://bucket/exp 1", "--",
        "--config.name=it's a run", "--config.seed=3")
WHERE = ["--project=my-proj", "--zone=us-east5-a"]
SSH = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "ladder-7b", *WHERE, "--worker=all"]
MAIN_ARGS = ["-m", "launch.main", "--config=configs/safeladder.py:model=7b",
             "--workdir=gs://bucket/exp 1", "--config.name=it's a run", "--config.seed=3"]


def test_dry_run_prints_every_command(tmp_path):
  result = run_script("tpu_vm.sh", "--dry-run", *ARGS, tmp_path=tmp_path)
  assert result.returncode == 0, result.stderr
  archive = f"{tmp_path}/safeladder-ladder-7b.tar.gz"
  create, pack, copy, setup, main = commands(result.stdout)
  assert create == ["gcloud", "compute", "tpus", "tpu-vm", "create", "ladder-7b", *WHERE,
                    "--accelerator-type=v5p-64", "--version=v2-alpha-tpuv5"]
  assert pack == ["tar", "-czf", archive, "-C", str(ROOT), "--exclude-vcs", "--exclude=./.venv",
                  "--exclude=./bazel-*", "--exclude=./runs", "--exclude=__pycache__",
                  "--exclude=.pytest_cache", "."]
  assert copy == ["gcloud", "compute", "tpus", "tpu-vm", "scp", archive,
                  "ladder-7b:safeladder.tar.gz", *WHERE, "--worker=all"]
  assert setup[:-1] == SSH and main[:-1] == SSH
  setup_words = shlex.split(option(setup, "command"))
  assert "tar -xzf safeladder.tar.gz -C safeladder;" in " ".join(setup_words)
  assert "jax[tpu]==0.10.2" in setup_words
  assert shlex.split(option(main, "command")) == [
      "cd", "safeladder", "&&", "SAFEWORK_DISTRIBUTED=on", ".venv/bin/python", *MAIN_ARGS]


def test_dry_run_text_is_quoted_for_a_shell(tmp_path):
  line = run_script("tpu_vm.sh", "--dry-run", *ARGS, tmp_path=tmp_path).stdout.splitlines()[-1]
  assert line == (
      "gcloud compute tpus tpu-vm ssh ladder-7b --project=my-proj --zone=us-east5-a "
      "--worker=all '--command=cd safeladder && SAFEWORK_DISTRIBUTED=on .venv/bin/python -m "
      "launch.main --config=configs/safeladder.py:model=7b '\\''--workdir=gs://bucket/exp 1'\\'' "
      "'\\''--config.name=it'\\''\\'\\'''\\''s a run'\\'' --config.seed=3'")


def test_remote_shell_receives_the_arguments_intact(tmp_path):
  """The workers' shell runs the printed command; a fake python there echoes its argv."""
  result = run_script("tpu_vm.sh", "--dry-run", *ARGS, tmp_path=tmp_path)
  remote = option(commands(result.stdout)[-1], "command")
  venv = tmp_path / "home" / "safeladder" / ".venv" / "bin"
  venv.mkdir(parents=True)
  (venv / "python").write_text(
      "#!/usr/bin/env bash\n"
      "python3 -c 'import json, os, sys; "
      "print(json.dumps([os.environ[\"SAFEWORK_DISTRIBUTED\"], *sys.argv[1:]]))' \"$@\"\n")
  (venv / "python").chmod(0o755)
  out = subprocess.run(["bash", "-c", remote], cwd=tmp_path / "home", capture_output=True,
                       text=True, check=True).stdout
  assert json.loads(out) == ["on", *MAIN_ARGS]


def test_env_var_dry_run_equals_the_flag(tmp_path):
  by_flag = run_script("tpu_vm.sh", "--dry-run", *ARGS, tmp_path=tmp_path)
  by_env = run_script("tpu_vm.sh", *ARGS, tmp_path=tmp_path, env={"DRY_RUN": "1"})
  assert by_env.returncode == 0 and by_env.stdout == by_flag.stdout


def test_options_change_the_commands(tmp_path):
  args = ["--spot", "--accelerator=v5litepod-16"] + [a for a in ARGS if a != "--accelerator=v5p-64"]
  create = commands(run_script("tpu_vm.sh", "--dry-run", *args, tmp_path=tmp_path).stdout)[0]
  assert create[-3:] == ["--accelerator-type=v5litepod-16", "--version=v2-alpha-tpuv5-lite",
                         "--spot"]
  out = run_script("tpu_vm.sh", "--dry-run", "--skip-create", "--skip-setup",
                   "--version=my-runtime", "--remote-dir=runs dir", *ARGS, tmp_path=tmp_path)
  (main,) = commands(out.stdout)
  assert shlex.split(option(main, "command"))[:2] == ["cd", "runs dir"]
  no_extra = run_script("tpu_vm.sh", "--dry-run", "--skip-setup", *ARGS[:6], tmp_path=tmp_path)
  assert shlex.split(option(commands(no_extra.stdout)[-1], "command"))[-1] == MAIN_ARGS[3]


@pytest.mark.parametrize("args, message", [
    ((), "missing --project --zone --tpu --accelerator --config --workdir"),
    (ARGS[1:], "missing --project"),
    (("--workdir=/tmp/run",) + ARGS[:5], "--workdir must be a gs:// URL"),
    (ARGS[:4] + ("--workdir=gs://",) + ARGS[4:5], "--workdir must be a gs:// URL"),
    (("--bogus",) + ARGS, "unknown argument '--bogus'"),
    (("--project", "my-proj") + ARGS[1:], "unknown argument '--project'"),
    (ARGS[:3] + ("--accelerator=v9-8",) + ARGS[4:], "no default --version for accelerator 'v9-8'"),
])
def test_bad_arguments_fail_with_a_message(tmp_path, args, message):
  result = run_script("tpu_vm.sh", "--dry-run", *args, tmp_path=tmp_path)
  assert result.returncode == 2
  assert message in result.stderr and "--help" in result.stderr
  assert result.stdout == ""


def test_help(tmp_path):
  result = run_script("tpu_vm.sh", "--help", tmp_path=tmp_path)
  assert result.returncode == 0 and result.stdout.startswith("Usage: launch/tpu_vm.sh")
  assert "--dry-run" in result.stdout and "DRY_RUN=1" in result.stdout


def test_real_run_executes_the_printed_commands(tmp_path):
  """With gcloud faked, the script runs what its dry run prints and packs the checkout."""
  dry = commands(run_script("tpu_vm.sh", "--dry-run", *ARGS, tmp_path=tmp_path).stdout)
  result = run_script("tpu_vm.sh", *ARGS, tmp_path=tmp_path, env=fake_tools(tmp_path, "gcloud"))
  assert result.returncode == 0, result.stderr
  assert [["gcloud", *call] for call in recorded_calls(tmp_path)] == [
      c for c in dry if c[0] == "gcloud"]
  with tarfile.open(tmp_path / "safeladder-ladder-7b.tar.gz") as archive:
    names = set(archive.getnames())
  assert {"./launch/tpu_vm.sh", "./requirements/core.txt", "./Makefile"} <= names
  assert not [n for n in names if n.startswith(("./.venv/", "./.git/", "./bazel-"))]

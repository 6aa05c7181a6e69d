#!/usr/bin/env bash
# Bazel's Python interpreter: the virtual environment of the checkout this file lives in.
# Bazel runs it through a runfiles symlink; resolving that link finds the checkout, whose
# .venv is outside Bazel's view (it is never copied, and it is listed in .bazelignore).
set -euo pipefail
here="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
root="$(cd "${here}/../.." && pwd)"
python="${root}/.venv/bin/python"
if [[ ! -x "${python}" ]]; then
  echo "venv_python.sh: ${python} not found; run 'make setup' in ${root} first" >&2
  exit 1
fi
exec "${python}" "$@"

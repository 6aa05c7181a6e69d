#!/usr/bin/env bash
# Runs launch.main on every worker of a Cloud TPU VM (single host or pod slice).
#
# Steps: create the TPU VM (gcloud), pack this checkout (git-ignored files left out), copy it
# to every worker, set up a Python 3.11 environment there (the pinned requirements plus
# jax[tpu]), then start `python -m launch.main --config=... --workdir=gs://...` on all
# workers at once. The workers find each other through jax.distributed.initialize()
# (SAFEWORK_DISTRIBUTED=on; see safework/infra/distributed.py).
#
# Example:
#   launch/tpu_vm.sh --project=my-project --zone=us-east5-a --tpu=ladder-7b \
#     --accelerator=v5p-64 --config=configs/safeladder.py:model=7b \
#     --workdir=gs://my-bucket/ladder-7b -- --config.seed=1
set -euo pipefail

readonly JAX_TPU_REQUIREMENT="jax[tpu]==0.10.2"
readonly ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  cat <<EOF
Usage: launch/tpu_vm.sh --project=P --zone=Z --tpu=NAME --accelerator=TYPE
                        --config=CONFIG --workdir=gs://BUCKET/DIR [options] [-- FLAGS...]

Required:
  --project=P          Google Cloud project.
  --zone=Z             zone of the TPU, e.g. us-east5-a.
  --tpu=NAME           name of the TPU VM (created unless --skip-create).
  --accelerator=TYPE   accelerator type, e.g. v5p-8, v5p-64, v5litepod-16, v6e-8.
  --config=CONFIG      config for launch.main, e.g. configs/safeladder.py:model=7b.
  --workdir=URL        gs:// directory for checkpoints and metrics (shared by all hosts).
Options:
  --version=V          TPU software version (default from the accelerator's generation).
  --remote-dir=DIR     checkout folder on the workers, relative to home (default safeladder).
  --spot               create a Spot TPU VM.
  --skip-create        use an existing TPU VM.
  --skip-setup         reuse the workers' checkout and environment (no copy, no install).
  --dry-run            print every command instead of running it (also: DRY_RUN=1).
  -h, --help           this message.
Flags after "--" go to launch.main unchanged.
EOF
}

die() {
  echo "tpu_vm.sh: error: $*" >&2
  echo "Run 'launch/tpu_vm.sh --help' for usage." >&2
  exit 2
}

# Prints the arguments as one shell command line, quoting only where the shell needs it.
quote() {
  local words=() arg
  for arg in "$@"; do
    if [[ "${arg}" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
      words+=("${arg}")
    else
      words+=("'${arg//\'/\'\\\'\'}'")
    fi
  done
  local IFS=' '
  printf '%s\n' "${words[*]}"
}

run() {
  if [[ "${dry_run}" == 1 ]]; then
    quote "$@"
  else
    echo "+ $(quote "$@")" >&2
    "$@"
  fi
}

default_version() {
  case "$1" in
    v4-*) echo "tpu-ubuntu2204-base" ;;
    v5litepod-*) echo "v2-alpha-tpuv5-lite" ;;
    v5p-*) echo "v2-alpha-tpuv5" ;;
    v6e-*) echo "v2-alpha-tpuv6e" ;;
    *) die "no default --version for accelerator '$1'; pass --version" ;;
  esac
}

project="" zone="" tpu="" accelerator="" config="" workdir="" version=""
remote_dir="safeladder" spot=0 skip_create=0 skip_setup=0 dry_run="${DRY_RUN:-0}"
extra=()
while (($#)); do
  case "$1" in
    --project=*) project="${1#*=}" ;;
    --zone=*) zone="${1#*=}" ;;
    --tpu=*) tpu="${1#*=}" ;;
    --accelerator=*) accelerator="${1#*=}" ;;
    --config=*) config="${1#*=}" ;;
    --workdir=*) workdir="${1#*=}" ;;
    --version=*) version="${1#*=}" ;;
    --remote-dir=*) remote_dir="${1#*=}" ;;
    --spot) spot=1 ;;
    --skip-create) skip_create=1 ;;
    --skip-setup) skip_setup=1 ;;
    --dry-run) dry_run=1 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) die "unknown argument '$1' (options take the form --name=value)" ;;
  esac
  shift
done

missing=()
for name in project zone tpu accelerator config workdir; do
  [[ -n "${!name}" ]] || missing+=("--${name}")
done
((${#missing[@]} == 0)) || die "missing ${missing[*]}"
[[ "${workdir}" == gs://?* ]] || die "--workdir must be a gs:// URL that every worker can \
reach, got '${workdir}'"
[[ "${dry_run}" == 0 || "${dry_run}" == 1 ]] || die "DRY_RUN must be 0 or 1, got '${dry_run}'"
[[ -n "${version}" ]] || version="$(default_version "${accelerator}")"

where=(--project="${project}" --zone="${zone}")
archive="${TMPDIR:-/tmp}/safeladder-${tpu}.tar.gz"

if ((!skip_create)); then
  create=(gcloud compute tpus tpu-vm create "${tpu}" "${where[@]}"
          --accelerator-type="${accelerator}" --version="${version}")
  ((!spot)) || create+=(--spot)
  run "${create[@]}"
fi

if ((!skip_setup)); then
  run tar -czf "${archive}" -C "${ROOT}" --exclude-vcs --exclude=./.venv --exclude='./bazel-*' \
    --exclude=./runs --exclude=__pycache__ --exclude=.pytest_cache .
  run gcloud compute tpus tpu-vm scp "${archive}" "${tpu}:safeladder.tar.gz" "${where[@]}" \
    --worker=all
  dir="$(quote "${remote_dir}")"
  setup="set -e; mkdir -p ${dir}; tar -xzf safeladder.tar.gz -C ${dir}; cd ${dir}"
  setup+="; command -v python3.11 >/dev/null || { sudo apt-get update -q"
  setup+=" && sudo apt-get install -y -q python3.11 python3.11-venv; }"
  setup+="; test -x .venv/bin/python || python3.11 -m venv .venv"
  setup+="; .venv/bin/pip install -q -r requirements/core.txt -r requirements/tf.txt"
  setup+="; .venv/bin/pip install -q --no-deps -r requirements/tf-nodeps.txt"
  setup+="; .venv/bin/pip install -q $(quote "${JAX_TPU_REQUIREMENT}")"
  run gcloud compute tpus tpu-vm ssh "${tpu}" "${where[@]}" --worker=all --command="${setup}"
fi

main="cd $(quote "${remote_dir}") && SAFEWORK_DISTRIBUTED=on $(quote .venv/bin/python -m \
launch.main --config="${config}" --workdir="${workdir}" ${extra[@]+"${extra[@]}"})"
run gcloud compute tpus tpu-vm ssh "${tpu}" "${where[@]}" --worker=all --command="${main}"

#!/usr/bin/env bash
# Runs launch.main as an xpk workload on a GKE cluster of TPU slices.
#
# By default xpk builds an image from a base image and a clean copy of this checkout
# (git-ignored files left out); the workload's command installs the pinned requirements
# plus jax[tpu] and starts `python -m launch.main --config=... --workdir=gs://...` on every
# host. With --docker-image, the image must already hold the checkout as its working
# directory with the environment installed, and only launch.main runs. Hosts find each
# other through jax.distributed.initialize() (see safework/infra/distributed.py).
#
# Example:
#   launch/xpk.sh --cluster=my-cluster --project=my-project --zone=us-east5-a \
#     --workload=ladder-72b --tpu-type=v5p-256 --config=configs/safeladder.py:model=72b \
#     --workdir=gs://my-bucket/ladder-72b
set -euo pipefail

readonly JAX_TPU_REQUIREMENT="jax[tpu]==0.10.2"
readonly ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  cat <<EOF
Usage: launch/xpk.sh --cluster=C --project=P --zone=Z --workload=NAME --tpu-type=TYPE
                     --config=CONFIG --workdir=gs://BUCKET/DIR [options] [-- FLAGS...]

Required:
  --cluster=C            GKE cluster made by 'xpk cluster create'.
  --project=P            Google Cloud project.
  --zone=Z               zone of the cluster, e.g. us-east5-a.
  --workload=NAME        workload name: lower-case letters, digits and '-', at most 40.
  --tpu-type=TYPE        TPU slice type, e.g. v5p-64.
  --config=CONFIG        config for launch.main, e.g. configs/safeladder.py:model=72b.
  --workdir=URL          gs:// directory for checkpoints and metrics (shared by all hosts).
Options:
  --num-slices=N         number of slices (default 1).
  --base-image=IMAGE     base image xpk builds on (default python:3.11-slim).
  --docker-image=IMAGE   prebuilt image holding the checkout and its environment.
  --dry-run              print every command instead of running it (also: DRY_RUN=1).
  -h, --help             this message.
Flags after "--" go to launch.main unchanged.
EOF
}

die() {
  echo "xpk.sh: error: $*" >&2
  echo "Run 'launch/xpk.sh --help' for usage." >&2
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

cluster="" project="" zone="" workload="" tpu_type="" config="" workdir=""
num_slices=1 base_image="python:3.11-slim" docker_image="" dry_run="${DRY_RUN:-0}"
extra=()
while (($#)); do
  case "$1" in
    --cluster=*) cluster="${1#*=}" ;;
    --project=*) project="${1#*=}" ;;
    --zone=*) zone="${1#*=}" ;;
    --workload=*) workload="${1#*=}" ;;
    --tpu-type=*) tpu_type="${1#*=}" ;;
    --config=*) config="${1#*=}" ;;
    --workdir=*) workdir="${1#*=}" ;;
    --num-slices=*) num_slices="${1#*=}" ;;
    --base-image=*) base_image="${1#*=}" ;;
    --docker-image=*) docker_image="${1#*=}" ;;
    --dry-run) dry_run=1 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) die "unknown argument '$1' (options take the form --name=value)" ;;
  esac
  shift
done

missing=()
for name in cluster project zone workload tpu_type config workdir; do
  [[ -n "${!name}" ]] || missing+=("--${name//_/-}")
done
((${#missing[@]} == 0)) || die "missing ${missing[*]}"
[[ "${workdir}" == gs://?* ]] || die "--workdir must be a gs:// URL that every host can \
reach, got '${workdir}'"
[[ "${workload}" =~ ^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$ ]] || die "--workload '${workload}' \
must be lower-case letters, digits and '-', start with a letter, at most 40 characters"
[[ "${num_slices}" =~ ^[1-9][0-9]*$ ]] || die "--num-slices must be a positive integer, \
got '${num_slices}'"
[[ "${dry_run}" == 0 || "${dry_run}" == 1 ]] || die "DRY_RUN must be 0 or 1, got '${dry_run}'"

main="SAFEWORK_DISTRIBUTED=on $(quote python -m launch.main --config="${config}" \
--workdir="${workdir}" ${extra[@]+"${extra[@]}"})"
create=(xpk workload create --cluster="${cluster}" --project="${project}" --zone="${zone}"
        --workload="${workload}" --tpu-type="${tpu_type}" --num-slices="${num_slices}")

if [[ -n "${docker_image}" ]]; then
  run "${create[@]}" --docker-image="${docker_image}" --command="${main}"
  exit 0
fi

stage="${TMPDIR:-/tmp}/safeladder-xpk-${workload}"
archive="${stage}.tar.gz"
run tar -czf "${archive}" -C "${ROOT}" --exclude-vcs --exclude=./.venv --exclude='./bazel-*' \
  --exclude=./runs --exclude=__pycache__ --exclude=.pytest_cache .
run rm -rf "${stage}"
run mkdir -p "${stage}"
run tar -xzf "${archive}" -C "${stage}"
setup="pip install -q -r requirements/core.txt -r requirements/tf.txt"
setup+=" && pip install -q --no-deps -r requirements/tf-nodeps.txt"
setup+=" && pip install -q $(quote "${JAX_TPU_REQUIREMENT}")"
run "${create[@]}" --base-docker-image="${base_image}" --script-dir="${stage}" \
  --command="${setup} && ${main}"

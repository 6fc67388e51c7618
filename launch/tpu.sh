#!/usr/bin/env bash
# Trains on a Cloud TPU VM slice: create (queued resource) -> copy code -> install -> run on
# every worker -> stream logs -> delete.
#
# usage: launch/tpu.sh --project=P --zone=Z --bucket=gs://B [options] -- STT_MAIN_ARGS...
#
#   launch/tpu.sh --project=P --zone=us-west4-a --accelerator=v5litepod-32 \
#       --bucket=gs://my-bucket -- --config=configs/ave.py:features --config.batch_size=256
#   launch/tpu.sh --dry-run ...        # print every gcloud command, run nothing
#
# Options (write `--opt=value` or `--opt value`):
#   --project=P          Google Cloud project (required)
#   --zone=Z             zone of the slice, e.g. us-west4-a (required)
#   --bucket=gs://B      bucket for the workdir and the data (required)
#   --accelerator=TYPE   slice type (default: v5litepod-32)
#   --runtime=VERSION    TPU VM software version (default: from the accelerator: v5litepod-* ->
#                        v2-alpha-tpuv5-lite, v5p-* -> v2-alpha-tpuv5, v6e-* -> v2-alpha-tpuv6e,
#                        v4-* -> tpu-ubuntu2204-base; required for other types)
#   --name=NAME          name of the slice and of the workdir <bucket>/workdirs/NAME (default:
#                        stt-<config>[-<config args>] from --config, e.g. stt-ave-features for
#                        --config=configs/ave.py:features); give another name for a second,
#                        independent run of the same config
#   --spot               a Spot slice: cheaper, can be preempted (default: on-demand)
#   --keep               keep the slice at the end (default: delete it, also when a step fails)
#   --clone=URL          `git clone --depth=1 URL` on the workers, i.e. the pushed default branch
#                        (default: copy `git archive HEAD` of this checkout)
#   --dry-run            print every command, run nothing
#   -h, --help           print this text
#
# Everything after `--` goes to `python -m stt.main` and is required: there is no default run
# (give at least --config=...). Every worker (host) runs the same command;
# `jax.distributed.initialize()` finds the slice by itself. The workdir and the data must be on
# GCS, visible to every host: --workdir defaults to <bucket>/workdirs/<name> and TFDS_DATA_DIR to
# <bucket>/tensorflow_datasets (build datasets there first: docs/datasets.md). The synthetic set
# (configs/synthetic.py) is generated on first use on a local disk only, never on gs://: build it
# locally (`python -m data_pipelines.build --dataset=synthetic --data_dir=/tmp/tfds`) and copy it
# (`gsutil -m cp -r /tmp/tfds/ave_videos gs://B/tensorflow_datasets/`) before training on it.
#
# The code copied is the last commit (`git archive HEAD`): uncommitted changes are NOT copied
# (tpu.sh warns when tracked files have some); commit first.
#
# Checkpoints, TensorBoard files and results.json go to the workdir. The name, and so the
# workdir, is the same every time, so a re-run of the same command resumes from the newest
# checkpoint (use --spot and re-run after a preemption). A slice kept with --keep must be
# deleted before such a re-run: gcloud compute tpus queued-resources delete NAME --project=P
# --zone=Z.

set -euo pipefail
cd "$(dirname "$0")/.."  # the repository root: `git archive` copies this checkout

PROJECT="" ZONE="" ACCELERATOR="v5litepod-32" RUNTIME="" BUCKET="" NAME=""
SPOT=0 DRY_RUN=0 KEEP=0 SOURCE="copy" REPO_URL="" STT_ARGS=()

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; }
fail() { echo "tpu.sh: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  opt="$1" value=""
  case "$opt" in
    --project|--zone|--accelerator|--runtime|--bucket|--name|--clone)
      [[ $# -ge 2 && "$2" != -* ]] || fail "$opt needs a value (see --help)"
      value="$2"; shift ;;
    --*=*) value="${opt#*=}"; opt="${opt%%=*}" ;;
  esac
  case "$opt" in
    --project) PROJECT="$value" ;;
    --zone) ZONE="$value" ;;
    --accelerator) ACCELERATOR="$value" ;;
    --runtime) RUNTIME="$value" ;;
    --bucket) BUCKET="${value%/}" ;;
    --name) NAME="$value" ;;
    --clone) SOURCE="clone"; REPO_URL="$value" ;;
    --spot) SPOT=1 ;;
    --keep) KEEP=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --) shift; STT_ARGS=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) fail "unknown argument $1 (see --help)" ;;
  esac
  shift
done
[[ -n "$PROJECT" && -n "$ZONE" && -n "$BUCKET" ]] || fail "--project, --zone and --bucket are required"
[[ "$BUCKET" == gs://* ]] || fail "--bucket must be gs://..."
[[ $SOURCE == copy || -n "$REPO_URL" ]] || fail "--clone needs a URL"
if [[ -z "$RUNTIME" ]]; then
  case "$ACCELERATOR" in
    v5litepod-*) RUNTIME="v2-alpha-tpuv5-lite" ;;
    v5p-*) RUNTIME="v2-alpha-tpuv5" ;;
    v6e-*) RUNTIME="v2-alpha-tpuv6e" ;;
    v4-*) RUNTIME="tpu-ubuntu2204-base" ;;
    *) fail "give --runtime for $ACCELERATOR" ;;
  esac
fi

# The command for stt.main: its --config (required) and --workdir (default from the name).
CONFIG="" WORKDIR=""
for ((i = 0; i < ${#STT_ARGS[@]}; i++)); do
  case "${STT_ARGS[i]}" in
    --config=*) CONFIG="${STT_ARGS[i]#*=}" ;;
    --config) CONFIG="${STT_ARGS[i + 1]:-}" ;;
    --workdir=*) WORKDIR="${STT_ARGS[i]#*=}" ;;
    --workdir) WORKDIR="${STT_ARGS[i + 1]:-}" ;;
  esac
done
[[ -n "$CONFIG" ]] || fail "give the training command after --, at least --config=..., e.g.
  launch/tpu.sh ... -- --config=configs/ave.py:features   (see --help)"
if [[ -z "$NAME" ]]; then  # configs/ave.py:features -> stt-ave-features; the same on every re-run
  config_file="${CONFIG%%:*}" config_args=""
  [[ "$CONFIG" == *:* ]] && config_args="-${CONFIG#*:}"
  NAME="$(printf 'stt-%s%s' "$(basename "$config_file" .py)" "$config_args" \
          | tr '[:upper:]' '[:lower:]' | tr -cs 'a-z0-9' '-')"
  NAME="${NAME:0:40}"
  while [[ "$NAME" == *- ]]; do NAME="${NAME%-}"; done
fi
if [[ -z "$WORKDIR" ]]; then
  WORKDIR="${BUCKET}/workdirs/${NAME}"
  STT_ARGS+=("--workdir=${WORKDIR}")
fi
echo "Slice ${NAME}, workdir ${WORKDIR} (re-running this command resumes from its checkpoints)."
if [[ "$(basename "$CONFIG")" == synthetic.py* ]]; then
  echo "tpu.sh: warning: configs/synthetic.py trains on data generated on a local disk, which" \
       "cannot be made on ${BUCKET}/tensorflow_datasets: build and copy it there first (see" \
       "--help), or train on a dataset built there." >&2
fi
if [[ $SOURCE == copy ]]; then
  git rev-parse --verify --quiet HEAD >/dev/null || fail "$PWD is not a git checkout with a commit; use --clone=URL"
  if ! git diff --quiet HEAD --; then
    echo "tpu.sh: warning: these uncommitted changes are NOT copied to the slice, which gets" \
         "the last commit (git archive HEAD); commit them first:" >&2
    git status --short --untracked-files=no >&2
  fi
fi

run() {  # prints the command; runs it unless --dry-run
  printf '+'; printf ' %q' "$@"; printf '\n'
  [[ $DRY_RUN == 1 ]] || "$@"
}
ZONE_ARGS=(--project="$PROJECT" --zone="$ZONE")
TPU_SSH=(gcloud compute tpus tpu-vm ssh "$NAME" "${ZONE_ARGS[@]}" --worker=all)

cleanup() {
  [[ $KEEP == 1 ]] && { echo "Keeping $NAME (--keep)."; return; }
  run gcloud compute tpus queued-resources delete "$NAME" "${ZONE_ARGS[@]}" --force --quiet
}

# 1. Create the slice through a queued resource and wait until it is ACTIVE.
create=(gcloud compute tpus queued-resources create "$NAME" "${ZONE_ARGS[@]}"
        --node-id="$NAME" --accelerator-type="$ACCELERATOR" --runtime-version="$RUNTIME")
[[ $SPOT == 1 ]] && create+=(--spot)
run "${create[@]}"
trap cleanup EXIT
wait_cmd=(gcloud compute tpus queued-resources describe "$NAME" "${ZONE_ARGS[@]}" --format='value(state.state)')
printf '+ until [[ $('; printf '%q ' "${wait_cmd[@]}"; printf ') == ACTIVE ]]; do sleep 30; done\n'
if [[ $DRY_RUN == 0 ]]; then
  while state="$("${wait_cmd[@]}")"; [[ "$state" != ACTIVE ]]; do
    [[ "$state" == FAILED || "$state" == SUSPENDED ]] && { echo "tpu.sh: $NAME is $state" >&2; exit 1; }
    sleep 30
  done
fi

# 2. Put the code on every worker.
if [[ $SOURCE == copy ]]; then
  run git archive --format=tar.gz -o "/tmp/${NAME}.tar.gz" HEAD
  run gcloud compute tpus tpu-vm scp "/tmp/${NAME}.tar.gz" "${NAME}:~/stt.tar.gz" "${ZONE_ARGS[@]}" --worker=all
  run "${TPU_SSH[@]}" --command="mkdir -p ~/stt && tar -xzf ~/stt.tar.gz -C ~/stt"
else
  run "${TPU_SSH[@]}" --command="git clone --depth=1 ${REPO_URL} ~/stt"
fi

# 3. Install jax[tpu] and the project (same install as the README, plus the TPU runtime).
run "${TPU_SSH[@]}" --command="cd ~/stt && python3 -m venv .venv && . .venv/bin/activate && pip install -U pip && pip install -e . && pip install -U 'jax[tpu]'"

# 4. Run on every worker at once; gcloud streams each worker's output.
printf -v stt_cmd ' %q' "${STT_ARGS[@]}"
run "${TPU_SSH[@]}" --command="cd ~/stt && . .venv/bin/activate && TFDS_DATA_DIR=${BUCKET}/tensorflow_datasets python -m stt.main --distributed=on${stt_cmd}"

# 5. The trap deletes the slice (unless --keep), also when a step above failed.

#!/usr/bin/env bash
# Trains on a Cloud TPU VM slice: create (queued resource) -> copy code -> install -> run on
# every worker -> stream logs -> delete.
#
#   launch/tpu.sh --project=P --zone=us-west4-a --accelerator=v5litepod-32 \
#       --bucket=gs://my-bucket -- --config=configs/ave.py:features --config.batch_size=256
#   launch/tpu.sh --dry-run ...        # print every gcloud command, run nothing
#
# Everything after `--` goes to `python -m stt.main`. Every worker (host) runs the same command;
# `jax.distributed.initialize()` finds the slice by itself. The workdir and the data must be on
# GCS, visible to every host: --workdir defaults to <bucket>/workdirs/<name> and TFDS_DATA_DIR
# to <bucket>/tensorflow_datasets (build datasets there first: docs/datasets.md).
# Checkpoints, TensorBoard files and results.json go to the workdir; a re-run of the same
# command resumes from the newest checkpoint (use --spot and re-run after a preemption).
set -euo pipefail

PROJECT="" ZONE="" ACCELERATOR="v5litepod-32" RUNTIME="" BUCKET="" NAME="stt-$(date +%Y%m%d-%H%M%S)"
SPOT=0 DRY_RUN=0 KEEP=0 SOURCE="copy" REPO_URL="" STT_ARGS=()

usage() { sed -n '2,15p' "$0"; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --project=*) PROJECT="${1#*=}" ;;
    --zone=*) ZONE="${1#*=}" ;;
    --accelerator=*) ACCELERATOR="${1#*=}" ;;
    --runtime=*) RUNTIME="${1#*=}" ;;
    --bucket=*) BUCKET="${1#*=}" ;;
    --name=*) NAME="${1#*=}" ;;
    --spot) SPOT=1 ;;
    --keep) KEEP=1 ;;                       # do not delete the slice at the end
    --clone=*) SOURCE="clone"; REPO_URL="${1#*=}" ;;  # git clone on the workers instead of scp
    --dry-run) DRY_RUN=1 ;;
    --) shift; STT_ARGS=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "tpu.sh: unknown argument $1" >&2; usage ;;
  esac
  shift
done
[[ -n "$PROJECT" && -n "$ZONE" && -n "$BUCKET" ]] || { echo "tpu.sh: --project, --zone and --bucket are required" >&2; exit 2; }
[[ "$BUCKET" == gs://* ]] || { echo "tpu.sh: --bucket must be gs://..." >&2; exit 2; }
[[ ${#STT_ARGS[@]} -gt 0 ]] || STT_ARGS=(--config=configs/synthetic.py)
if [[ -z "$RUNTIME" ]]; then
  case "$ACCELERATOR" in
    v5litepod-*) RUNTIME="v2-alpha-tpuv5-lite" ;;
    v5p-*) RUNTIME="v2-alpha-tpuv5" ;;
    v6e-*) RUNTIME="v2-alpha-tpuv6e" ;;
    v4-*) RUNTIME="tpu-ubuntu2204-base" ;;
    *) echo "tpu.sh: give --runtime for $ACCELERATOR" >&2; exit 2 ;;
  esac
fi
has_workdir=0
for arg in "${STT_ARGS[@]}"; do [[ "$arg" == --workdir=* ]] && has_workdir=1; done
[[ $has_workdir == 1 ]] || STT_ARGS+=("--workdir=${BUCKET}/workdirs/${NAME}")

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
  until [[ "$("${wait_cmd[@]}")" == ACTIVE ]]; do sleep 30; done
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

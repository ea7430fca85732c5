#!/usr/bin/env bash
# Start of the facecodec GPU container (docker/Dockerfile.gpu):
#   1. ONNX export of the preset, unless $STATE/onnx/<preset> is there from the same weights;
#   2. the model repository rendered for these settings into $STATE/repository;
#   3. TensorRT engines, rebuilt only when missing or when the GPU, the TensorRT version, the ONNX,
#      the plugin or the profile changed (their stamps, engine.json);
#   4. exec tritonserver with the GridSample3D plugin loaded by the TensorRT backend.
# Arguments are passed on to tritonserver. Environment:
#   FACECODEC_STATE         writable state (default /var/lib/facecodec; mount a volume to keep engines)
#   FACECODEC_SERVING_ARGS  serving settings, e.g. "--preset vox256 --max-batch-size 16"
#   FACECODEC_WEIGHTS       weights file (default: the shipped weights of the preset)
#   FACECODEC_PLUGIN_LIB    the plugin library (set by the image)
#   FACECODEC_ADMIN_KEY_FILE   a file whose key opens model control, shared memory, statistics, trace
#                           and logging (refused to requests without it; unset: open, as Triton's default)
#   FACECODEC_ENTRYPOINT_MODE  all (default): 1-4; prepare: 1-3 only (a Kubernetes init container);
#                           serve: 4 only, on a $STATE prepared before (mounted read-only; k8s/overlays/gpu)
set -euo pipefail

MODE=${FACECODEC_ENTRYPOINT_MODE:-all}
case "$MODE" in
  all|prepare|serve) ;;
  *) echo "[facecodec] FACECODEC_ENTRYPOINT_MODE=$MODE: expected all, prepare or serve" >&2; exit 2 ;;
esac
HOME_DIR=${FACECODEC_HOME:-/opt/facecodec}
STATE=${FACECODEC_STATE:-/var/lib/facecodec}
read -r -a SETTINGS <<< "${FACECODEC_SERVING_ARGS:-}"
log() { echo "[facecodec] $*" >&2; }
cd "$HOME_DIR"

# The Triton image normally has trtexec; if not, the copy built beside the plugin (same release).
if ! command -v trtexec >/dev/null && [ ! -x /usr/src/tensorrt/bin/trtexec ]; then
  export FACECODEC_TRTEXEC="$HOME_DIR/bin/trtexec"
  export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$HOME_DIR/lib/tensorrt"
fi

if [ "$MODE" != serve ]; then
  mkdir -p "$STATE"
  log "preparing $STATE (export if needed, repository) with settings: ${SETTINGS[*]:-defaults}"
  ONNX_DIR=$(python3 -m facecodec.serving.gpu --prepare "$STATE" "${SETTINGS[@]}")

  log "engines (GPU: $(nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader | head -n 1))"
  python3 -m export.engines --onnx-dir "$ONNX_DIR" --repository "$STATE/repository" --work-dir "$STATE/build" \
    --if-stale "${SETTINGS[@]}"
fi
if [ "$MODE" = prepare ]; then
  log "prepared $STATE (FACECODEC_ENTRYPOINT_MODE=prepare: not starting tritonserver)"
  exit 0
fi

# One line per GPU; `nvidia-smi -L` would also list each MIG instance under its GPU.
GPUS=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
ADMIN=()
[ -n "${FACECODEC_ADMIN_KEY_FILE:-}" ] && ADMIN=(--admin-key-file "$FACECODEC_ADMIN_KEY_FILE")
ARGS_TEXT=$(python3 -m facecodec.serving.gpu --server-args --repository "$STATE/repository" --gpus "$GPUS" \
  "${ADMIN[@]}" "${SETTINGS[@]}")
mapfile -t SERVER_ARGS <<< "$ARGS_TEXT"
log "tritonserver ${SERVER_ARGS[*]//facecodec-admin-key=*/facecodec-admin-key=(hidden)} $*"
exec tritonserver "${SERVER_ARGS[@]}" "$@"

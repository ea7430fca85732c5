"""The top layer: command-line tools and demos that nothing in the package imports — `demo` (`make
demo`: a served call through the client), `serving_bench` (Triton vs in-process decoding) and `bench`
(`facecodec bench`: PyTorch vs ONNX Runtime per network)."""

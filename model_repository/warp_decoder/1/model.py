"""Triton python backend: the `warp_decoder` network on ONNX Runtime (logic in facecodec.serving.backend)."""

from facecodec.serving.backend import NetworkModel


class TritonPythonModel:
    def initialize(self, args):
        self.model = NetworkModel(args)

    def execute(self, requests):
        return self.model.execute(requests)

    def finalize(self):
        self.model.finalize()

"""Triton python backend: the stateful call session (logic in facecodec.serving.backend/session)."""

from facecodec.serving.backend import DecoderModel


class TritonPythonModel:
    def initialize(self, args):
        self.model = DecoderModel(args)

    def execute(self, requests):
        return self.model.execute(requests)

    def finalize(self):
        self.model.finalize()

"""Identity embeddings for AED: dlib's face-recognition ResNet (128-D, the model behind the
`face_recognition` package), with weights shipped in the `face-recognition-models` sdist.

Faces are located by the MediaPipe landmarks the evaluation computes anyway (their bounding box),
then aligned by dlib's 5-point shape predictor; no detector runs here. Two images of one person
are typically < 0.6 apart (dlib's published threshold), different people > 0.6.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

EMBEDDING_DIM = 128
SAME_PERSON_THRESHOLD = 0.6


def _models_dir() -> Path:
    # `import face_recognition_models` needs pkg_resources (gone from recent setuptools): only locate it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("AED needs dlib and its shipped models: pip install 'dlib-bin>=19.24,<21' "
                          "'face-recognition-models==0.3.0'")
    return Path(spec.submodule_search_locations[0]) / "models"


class IdentityEmbedder:
    """Frames + their MediaPipe landmarks → (T, 128) float64 embeddings, NaN rows without a face."""

    def __init__(self):
        try:
            import dlib
        except ImportError as err:
            raise ImportError("AED needs dlib: pip install 'dlib-bin>=19.24,<21'") from err
        models = _models_dir()
        self._dlib = dlib
        self._shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self._net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def embed(self, frames: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """frames (T, H, W, 3) uint8 RGB, landmarks (T, N, 2) pixels (NaN: no face) → (T, 128)."""
        out = np.full((len(frames), EMBEDDING_DIM), np.nan)
        for i, (frame, points) in enumerate(zip(frames, landmarks)):
            if not np.isfinite(points).all():
                continue
            left, top = np.floor(points.min(axis=0)).astype(int)
            right, bottom = np.ceil(points.max(axis=0)).astype(int)
            box = self._dlib.rectangle(int(left), int(top), int(right), int(bottom))
            frame = np.ascontiguousarray(frame)
            out[i] = np.asarray(self._net.compute_face_descriptor(frame, self._shape(frame, box)))
        return out

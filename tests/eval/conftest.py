"""Fixtures of the evaluation tests: one MediaPipe landmarker per session (skips without mediapipe)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def landmarker():
    from facecodec.landmarks import FaceLandmarker

    try:
        detector = FaceLandmarker()
    except ImportError as err:
        pytest.skip(str(err))
    yield detector
    detector.close()

"""facecodec: a one-shot neural talking-head video codec (face-vid2vid) on Triton."""

__version__ = "0.1.0"

"""Training of the `lite` preset on the shared face clips (face-vid2vid's self-supervised recipe).

Entry point: `facecodec train` → `loop.train`. The identity split lives in `split` and is shared
with the evaluation tools.
"""

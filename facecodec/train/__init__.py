"""Training of the `lite` preset on the shared face clips (face-vid2vid's self-supervised recipe).

Entry point: `facecodec train` → `loop.train`; `publish` writes the shipped weights file. The identity
split (`facecodec.identity_split`) and the stLPIPS networks (`facecodec.perceptual`) are shared with
the evaluation, below both.
"""

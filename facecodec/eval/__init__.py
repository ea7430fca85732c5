"""Evaluation of the codec: quality metrics, self-reenactment against a repeated-source baseline,
free-view pose accuracy and motion transfer (`facecodec eval`).

Modules: `metrics` (PSNR, SSIM, stLPIPS, AKD, AED, pose error per frame), `identity` (dlib face
embeddings), `compare` (all metrics of a clip, face models loaded once), `codec` (running the
codec through the bitstream), `freeview`, `report` / `figures` (outputs), `run` (the command).
The face models (mediapipe, dlib) are optional dependencies, imported when first used.
"""

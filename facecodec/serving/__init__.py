"""Serving the codec on Triton: config rendering for the CPU and GPU targets (`configs`, `settings`), the
python-backend glue the `model.py` files delegate to (`backend`, with the session model's BLS networks in
`bls`), the repository on disk (`repository`), the server process (`server`, `launch`) and the GPU
container's start (`gpu`). The call-session logic is the codec's (`facecodec.codec.session`).
`python -m facecodec.serving serve` is what `make serve` runs. Nothing here imports the client.
"""

"""Serving the codec on Triton: config rendering (`configs`, `settings`), the python-backend glue the
`model.py` files delegate to (`backend`), the call-session logic (`session`), the repository on disk
(`repository`), the server process (`server`, `launch`), and `demo`/`bench`. `python -m
facecodec.serving {serve,demo}` is what `make serve` and `make demo` run."""

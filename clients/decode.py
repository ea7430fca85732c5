#!/usr/bin/env python3
"""`decode` client: `clients/decode.py --help`; the implementation is facecodec.client.cli."""

import sys

from facecodec.client.cli import main

if __name__ == "__main__":
    sys.exit(main(["decode", *sys.argv[1:]]))

#!/usr/bin/env python3
"""`encode` client: `clients/encode.py --help`; the implementation is facecodec.client.cli."""

import sys

from facecodec.client.cli import main

if __name__ == "__main__":
    sys.exit(main(["encode", *sys.argv[1:]]))

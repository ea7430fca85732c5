#!/usr/bin/env python3
"""`reenact` client: `clients/reenact.py --help`; the implementation is facecodec.client.cli."""

import sys

from facecodec.client.cli import main

if __name__ == "__main__":
    sys.exit(main(["reenact", *sys.argv[1:]]))

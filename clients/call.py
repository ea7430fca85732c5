#!/usr/bin/env python3
"""`call` client: `clients/call.py --help`; the implementation is facecodec.client.cli."""

import sys

from facecodec.client.cli import main

if __name__ == "__main__":
    sys.exit(main(["call", *sys.argv[1:]]))

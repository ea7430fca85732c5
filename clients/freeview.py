#!/usr/bin/env python3
"""`freeview` client: `clients/freeview.py --help`; the implementation is facecodec.client.cli."""

import sys

from facecodec.client.cli import main

if __name__ == "__main__":
    sys.exit(main(["freeview", *sys.argv[1:]]))

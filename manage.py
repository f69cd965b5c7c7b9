#!/usr/bin/env python3
"""SilverLine node tools.

Usage:
    manage.py <script> [<args>...]
    manage.py -h | --help

Use `python manage.py <script> -h` for the help of one script.
"""
from __future__ import annotations

import sys

from cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""SilverLine node tools.

Usage:
    manage.py <script> [<args>...]
    manage.py -h | --help

Use `python manage.py <script> -h` for the help of one script.
"""
from __future__ import annotations

import sys

from common.venv import ensure

ensure(__file__)  # a new shell's `python` lacks the packages of .venv: re-exec under it

from cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

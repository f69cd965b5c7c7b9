#!/usr/bin/env python3
"""Start a SilverLine node (`python start.py -h`): see supervisor/cli.py and docs/supervisor.md."""
from __future__ import annotations

import sys

from common.venv import ensure

ensure(__file__)  # a new shell's `python` lacks the packages of .venv: re-exec under it

from supervisor.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

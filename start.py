#!/usr/bin/env python3
"""Start a SilverLine node (`python start.py -h`): see supervisor/cli.py and docs/supervisor.md."""
from __future__ import annotations

import sys

from supervisor.cli import main

if __name__ == "__main__":
    sys.exit(main())

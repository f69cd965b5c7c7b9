"""`benchmarking/seeded`: the repeat loop with a random seed per run; the seed becomes an argument,
a file of a directory (`dirmode`), or whatever a script prints for it (`scriptmode`); `seeded`
samples (the seed's layout, with the seed of each run)."""
from __future__ import annotations

import os
import random
import shlex
import subprocess
import sys
from typing import TYPE_CHECKING

import orjson

from benchmarking.runtime.experiments.repeat import Draw, Repeat
from benchmarking.runtime.job import ArgError, Job, str_list
from benchmarking.runtime.strategy import Runs

if TYPE_CHECKING:
    from benchmarking.engines.invocation import Invocation


class Seeded(Repeat):
    SEEDED = True

    def check(self, runs: Runs, job: Job) -> None:
        super().check(runs, job)
        ms = job.args.get("max_seed", 2**31 - 1)
        if isinstance(ms, bool) or not isinstance(ms, int) or not 1 <= ms <= 2**32:
            raise ArgError(f"args.max_seed must be an integer in 1..2**32, got {ms!r}")
        # the original's benchmark sends `false` for a mode that is off
        d, s = (None if v is False else v for v in (job.args.get("dirmode"), job.args.get("scriptmode")))
        if d is not None and s is not None:
            raise ArgError("args.dirmode and args.scriptmode exclude each other")
        if d is not None:
            if not isinstance(d, str):
                raise ArgError(f"args.dirmode must be a directory on this node, got {d!r}")
            job.dirmode = runs.files.resolve_dir(d, "args.dirmode")
            if not self._dir_files(job.dirmode):
                raise ArgError(f"args.dirmode: directory {d!r} has no files")
        if s is not None:
            if not isinstance(s, str):
                raise ArgError(f"args.scriptmode must be the path of a Python script on this node, got {s!r}")
            job.scriptmode = runs.files.resolve_file(s, "args.scriptmode")

    @staticmethod
    def _dir_files(d: str) -> list[str]:
        return sorted(f for f in os.listdir(d) if os.path.isfile(os.path.join(d, f)))

    def seed_args(self, job: Job, seed: int) -> tuple[list[str], list[str]]:
        """(extra argv, extra preopened dirs) for one seed."""
        d, s = job.dirmode, job.scriptmode
        if d is not None:
            files = self._dir_files(d)
            return [os.path.join(d, files[seed % len(files)])], [d]
        if s is not None:
            # the script is not wasm: run it with this Python, stdout = the arguments
            out = subprocess.run([sys.executable, s, str(seed)], capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                raise ArgError(f"scriptmode script {s} failed for seed {seed}: {out.stderr.strip()[-300:]}")
            text = out.stdout.strip()
            if text.startswith("["):
                return str_list(orjson.loads(text), "scriptmode output"), []
            return shlex.split(text), []
        return [str(seed)], []

    def draws(self, runs: Runs, job: Job) -> Draw:
        """A seed per run from `random_state` (recorded, so a job can be run again), below `max_seed`."""
        from benchmarking.engines import launch as engines

        max_seed = int(job.args.get("max_seed", 2**31 - 1))
        rng = random.Random(job.args.get("random_state"))

        def draw(argv: list[str]) -> tuple[int | None, Invocation]:
            seed = rng.randrange(max_seed)
            extra, dirs = self.seed_args(job, seed)
            return seed, engines.Invocation(job.paths[0], [job.argv0()] + argv + extra, job.env, job.dirs + dirs)
        return draw

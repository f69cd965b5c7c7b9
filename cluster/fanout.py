"""Run one action per device over SSH, in parallel (or one by one with `sync`).

Every device yields exactly one `Result`: an unreachable device or a failed session becomes a
failed result while the other devices go on. Nothing here prints; `report.py` does.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

from cluster.ssh import SshOptions, connect, describe_error, load_asyncssh
from common.manifest import Device

if TYPE_CHECKING:
    from asyncssh import SSHClientConnection


@dataclass
class Result:
    """The outcome on one device. `status` is the remote exit status (None: nothing ran / killed)."""

    device: str
    status: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # why it failed without an exit status (unreachable, transfer error, ...)
    unreachable: bool = False
    skipped: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and not self.skipped and self.status == 0


# An action gets the device and an open connection and returns its Result.
Action = Callable[[Device, "SSHClientConnection"], Awaitable[Result]]


async def run_on(device: Device, action: Action, opts: SshOptions) -> Result:
    """Connect, run `action`, close; every failure becomes a Result."""
    asyncssh = load_asyncssh()
    t0 = time.monotonic()
    host = device.fullname(opts.domain)
    try:
        conn = await connect(device, opts)
    except (OSError, asyncio.TimeoutError, asyncssh.Error) as e:
        return Result(device.name, error=describe_error(e, host, opts.connect_timeout), unreachable=True, seconds=time.monotonic() - t0)
    try:
        async with conn:
            res = await action(device, conn)
    except asyncssh.TimeoutError as e:
        res = Result(device.name, status=e.exit_status, stdout=str(e.stdout or ""), stderr=str(e.stderr or ""),
                     error=f"command did not finish within {opts.command_timeout:g}s")
    except (OSError, asyncio.TimeoutError, asyncssh.Error) as e:
        res = Result(device.name, error=describe_error(e, host, opts.connect_timeout))
    res.seconds = time.monotonic() - t0
    return res


async def fan_out(devices: list[Device], action: Action, opts: SshOptions, *, sync: bool = False, ignore_err: bool = False,
                  jobs: int = 32, on_done: Callable[[Result], None] | None = None) -> list[Result]:
    """Run `action` on every device; results in manifest order.

    Parallel (at most `jobs` connections at once) unless `sync`. With `sync`, the first failure
    stops the run (the remaining devices are reported skipped) unless `ignore_err`.
    """
    results: dict[str, Result] = {}

    def done(r: Result) -> None:
        results[r.device] = r
        if on_done is not None:
            on_done(r)

    if sync:
        failed = False
        for d in devices:
            if failed:
                done(Result(d.name, skipped=True, error="skipped: an earlier device failed (--ignore_err goes on)"))
                continue
            r = await run_on(d, action, opts)
            done(r)
            failed = not r.ok and not ignore_err
    else:
        sem = asyncio.Semaphore(max(1, jobs))

        async def one(d: Device) -> None:
            async with sem:
                r = await run_on(d, action, opts)
            done(r)

        await asyncio.gather(*(one(d) for d in devices))
    return [results[d.name] for d in devices]

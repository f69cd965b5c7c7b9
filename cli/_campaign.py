"""A benchmark campaign as `manage.py benchmark` shows it: progress while it runs (`follow`), its
summary (`--status`) and the exit status it ends with (`finish`), from `GET /api/campaigns/ID/`;
failures by reason, each with the first message of that reason (`first_messages`, from
`GET /api/campaigns/ID/cells/?state=REASON&count=1`)."""
from __future__ import annotations

import os
import sys
import time
from urllib.parse import quote
from typing import Any

from cli._api import Api, CliError


def _fmt_eta(sec: float) -> str:
    sec = int(sec)
    return f"{sec // 3600:d}:{sec // 60 % 60:02d}:{sec % 60:02d}"


def progress_line(s: dict[str, Any], rate: float | None, width: int = 30) -> tuple[str, str]:
    """(progress bar line for a terminal, plain line) of a campaign summary."""
    total = s["cells"] or 1
    failed = sum(s["failed"].values())
    fin = s["done"] + failed - (s["failed"]["lost"] if not s["finished"] else 0)
    eta = f"ETA {_fmt_eta((total - fin) / rate)}" if rate and fin < total else "ETA ?" if fin < total else "done"
    fin += s.get("data_pending", 0)
    dp = f", {s['data_pending']} data pending" if s.get("data_pending") else ""
    text = f"{fin}/{s['cells']} cells, {s['done']} done{dp}, {failed} failed, {s['running']} running, {s['queued']} queued, {eta}"
    filled = int(width * fin / total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {text}", f"benchmark {s['id']}: {text}"


LOST = "its module was killed with its runtime, or ended without an exit (node crash, orchestrator restart)"


def record_message(record: dict[str, Any] | None, reason: str) -> str:
    """The message of a failed cell's record (its module's `exited`: status.error, else its code)."""
    rec: dict[str, Any] = record if isinstance(record, dict) else {}
    got = rec.get("status")
    st: dict[str, Any] = got if isinstance(got, dict) else {}
    msg = st.get("error") or rec.get("error")
    if msg:
        return " ".join(str(msg).split())
    if not rec:
        return LOST if reason == "lost" else "its module was deleted before it sent an exit" if reason == "killed" else "no exit record"
    code = st.get("code")
    failure = rec.get("failure")
    return (f"exit code {code}" if code is not None else f"reason {st.get('reason')!r}") + (f", {failure}" if failure else "")


def first_messages(api: Api, s: dict[str, Any]) -> dict[str, str]:
    """Failure reason -> the first message of that reason in campaign `s` (its lowest cell), with the cell."""
    out: dict[str, str] = {}
    for reason, n in s["failed"].items():
        if not n:
            continue
        try:
            page = api.get(f"/api/campaigns/{quote(str(s['id']))}/cells/?state={reason}&count=1")
        except CliError:
            continue  # the summary stands without it
        cells = (page or {}).get("results") or []
        if cells:
            c = cells[0]
            where = f"cell {c['cell']}: {os.path.basename(str(c['file']))}, engine {c['engine']}, runtime {c['runtime']}"
            out[reason] = f"{record_message(c.get('record'), reason)} ({where})"
    return out


def summary_text(s: dict[str, Any], messages: dict[str, str] | None = None) -> str:
    """The summary line, then one line per failure reason with its first message (when given)."""
    failed = ", ".join(f"{k} {v}" for k, v in s["failed"].items() if v) or "none"
    text = (f"campaign {s['id']}: {s['cells']} cells: {s['done']} done; failed: {failed}"
            + (f"; data pending {s['data_pending']} (ran; no collector has said their results are stored yet)"
               if s.get("data_pending") else "")
            + (f"; {s['queued'] + s['running']} not finished" if not s["finished"] else ""))
    for reason, msg in (messages or {}).items():
        n = s["failed"].get(reason, 0)
        text += f"\n  {reason} ({n} cell{'s' if n != 1 else ''}), the first: {msg}"
    return text


def pending_cells(api: Api, cid: str, limit: int = 20) -> str:
    """The cells that ran but whose data no collector has acknowledged: one line."""
    page = api.get(f"/api/campaigns/{cid}/cells/?state=data_pending&count={limit}") or {"results": [], "count": 0}
    cells = ", ".join(str(c["cell"]) for c in page["results"])
    more = f" and {page['count'] - len(page['results'])} more" if page["count"] > len(page["results"]) else ""
    return (f"  cells without stored data: {cells}{more} (their nodes keep the results in their spool and send them "
            "again until a collector stores them: is `python -m collector` running on this realm?)")


DATA_WAIT = 60.0  # s `--wait` waits, once every cell ran, for the collector to store the last results


def follow(api: Api, cid: str, timeout: float, out: Any = None, data_wait: float = DATA_WAIT) -> dict[str, Any]:
    """Poll the campaign until every cell has finished and its data is stored (or `data_wait` s
    have passed since the last cell ran); progress on `out` (stderr)."""
    out = out or sys.stderr
    tty = out.isatty()
    t0 = time.monotonic()
    ran_at: float | None = None
    first: int | None = None
    last_plain = 0.0
    down = False
    while True:
        try:
            s = api.get(f"/api/campaigns/{cid}/")
            if down:
                print(("\n" if tty else "") + f"benchmark {cid}: the orchestrator answers again", file=out)
                down = False
        except CliError as e:
            if not down:
                print(("\n" if tty else "") + f"benchmark {cid}: {e}; retrying", file=out)
                down = True
            s = None
        if s is not None:
            fin = s["done"] + sum(s["failed"].values())
            first = fin if first is None else first
            el = time.monotonic() - t0
            rate = (fin - first) / el if el > 2 and fin > first else None
            bar, plain = progress_line(s, rate)
            if tty:
                print("\r" + bar, end="", file=out, flush=True)
            elif s["finished"] or time.monotonic() - last_plain >= 10:
                print(plain, file=out, flush=True)
                last_plain = time.monotonic()
            if s["finished"]:
                ran_at = ran_at if ran_at is not None else time.monotonic()
                if not s.get("data_pending") or time.monotonic() - ran_at >= data_wait:
                    if tty:
                        print(file=out)
                    return dict(s)
        if time.monotonic() - t0 > timeout:
            raise CliError(f"campaign {cid} had not finished after {timeout:g} s; follow it with "
                           f"`manage.py benchmark --status {cid} --wait`")
        time.sleep(1.0)


def show_status(api: Api, cid: str | None) -> int:
    if cid is None:
        page = api.get("/api/campaigns/") or {"results": []}
        for c in page["results"]:
            s = api.get(f"/api/campaigns/{c['id']}/")
            if s is not None:
                print(summary_text(s))
        if not page["results"]:
            print("no campaigns")
        return 0
    s = api.get(f"/api/campaigns/{cid}/")
    if s is None:
        raise CliError(f"no campaign {cid!r} at {api.url} (`manage.py benchmark --status` lists them)")
    print(summary_text(s, first_messages(api, s)))
    print(f"  seed {s['seed']}, resumes {s['resumes']}, {s['running']} running, {s['queued']} queued")
    if s.get("data_pending"):
        print(pending_cells(api, cid))
    return 0


def finish(s: dict[str, Any], resumable: bool = True, messages: dict[str, str] | None = None,
           api: Api | None = None) -> int:
    """Print the summary (failures by reason with their first messages; the cells whose data is
    pending, given `api`); 0 when every cell is done."""
    print(summary_text(s, messages), file=sys.stderr)
    ok = s["finished"] and s["done"] == s["cells"]
    if s.get("data_pending") and api is not None:
        print(pending_cells(api, s["id"]), file=sys.stderr)
    if not ok and s["done"] + s.get("data_pending", 0) == s["cells"]:
        print(f"not lost, nothing to resume: check again with manage.py benchmark --status {s['id']} --wait", file=sys.stderr)
    elif not ok and resumable:
        print(f"resume with: manage.py benchmark --resume {s['id']} --wait", file=sys.stderr)
    return 0 if ok else 1

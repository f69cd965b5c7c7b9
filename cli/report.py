"""Summarise collected benchmark data: per cell (module and arguments x engine x runtime x kind) the
median, IQR, CV, a 99 % confidence interval of the median, the sample count and the outliers
(runs more than 3.5 robust standard deviations from the median); cells whose CV is over --cv-max
are flagged. `--compare A,B` compares two campaigns (`--engines E1,E2`: two engines) cell by cell
with a verdict: faster, slower, or not distinguishable (Mann-Whitney U, two-sided, p < --alpha;
exact p for small samples), the ratio of medians B/A with its Hodges-Lehmann interval, and a
warning where the run counts can never reach --alpha. Plots (PNG): run-time distributions per
engine, a workload x engine heatmap (median relative to --baseline, log scale), the interference
slowdown, the campaign coverage (cells done and failed by reason); `--html FILE` writes one page
with the tables and the pictures.

Reads the collector's results store (`DIR/results.sqlite`) where a DIR has one, else its files
(`DIR/<date>/<runtime>/<module>.<uuid>.<type>.json`); DIR defaults to `data`.
Failed runs are left out and counted (by outcome for our benchmarking-v3 data); interference runs
outside the window in which every co-runner ran are left out and counted. Runtime names missing
from a file are asked from the orchestrator when it answers (else the uuid stands in).

Usage:
    manage.py report [options] [DIR]...
    manage.py report -h | --help

Options:
    -o, --out DIR        Where the plots go [default: report].
    --no-plots           Only the table.
    --json               Print the summary as one JSON object instead of the table.
    --campaign ID        Only the runs of this campaign; coverage from the orchestrator's record of it.
    --compare A,B        Compare campaign B against campaign A (ids), cell by cell.
    --engines E1,E2      Compare engine E2 against engine E1, cell by cell.
    --alpha P            Significance level of the comparisons [default: 0.01].
    --baseline ENGINE    The heatmap's reference engine (default: the first engine by name).
    --cv-max X           Flag cells whose coefficient of variation is over X [default: 0.05].
    --html FILE          One HTML page with the tables and the pictures.
    -c, --cfg PATH       Config file (default: $SL_CONFIG, else config.json if present, else built-in defaults).
    --url URL            Orchestrator REST URL (default: http://{http}:{http_port} of the config).
    -v, --verbose LEVEL  Log level [default: WRN].
"""
from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from typing import Any, Callable

from benchmarking.analysis import dataset, figures, page, records, tables
from benchmarking.engines.catalog import resolve
from cli._api import Api, CliError, config, guard, parse, setup

SUMMARY = "Summarise collected benchmark data: table and plots."


def resolver(api: Api | None) -> Callable[[str], str | None]:
    """Runtime uuid -> name from the orchestrator (None when it does not answer; asked no more then)."""
    state = {"api": api}

    def resolve(uuid: str) -> str | None:
        a = state["api"]
        if a is None:
            return None
        try:
            got = a.runtime(uuid)
        except CliError:
            state["api"] = None
            return None
        return str((got or {}).get("name") or "") or None
    return resolve


def campaign_counts(api: Api | None, cid: str, from_data: dict[int, str]) -> tuple[dict[str, int], str]:
    """Cells by state: the orchestrator's record of campaign `cid` when it answers, else the data's."""
    if api is not None:
        try:
            s = api.get(f"/api/campaigns/{cid}/")
        except CliError:
            s = None
        if s:
            # data_pending: ran, but no collector acknowledged storing its results yet (not lost, not done)
            return ({"done": s["done"], "data_pending": s.get("data_pending", 0), **s["failed"], "queued": s["queued"],
                     "running": s["running"]}, "orchestrator")
    counts: dict[str, int] = defaultdict(int)
    for st in from_data.values():
        counts[st if st in figures.COVERAGE_STATES else "error"] += 1
    return dict(counts), "collected data"


@guard("report")
def main(argv: list[str]) -> int:
    opts = parse(__doc__ or "", "report", argv)
    setup(opts)
    return _report(opts)


def _report(opts: dict[str, Any]) -> int:
    dirs = records.check_dirs(opts["DIR"])
    cfg = config(opts)
    try:
        cv_max = float(opts["--cv-max"])
    except ValueError:
        raise CliError(f"--cv-max must be a number (e.g. 0.05 for 5 %), got {opts['--cv-max']!r}") from None
    try:
        alpha = float(opts["--alpha"])
    except ValueError:
        alpha = math.nan
    if not 0 < alpha < 1:
        raise CliError(f"--alpha must be a probability between 0 and 1 (e.g. 0.01), got {opts['--alpha']!r}")
    api = Api(opts["--url"] or cfg.orchestrator_url, timeout=2.0)
    name = dataset.runtime_namer(resolver(api))
    loaded = records.read(dirs)
    cid = opts["--campaign"]
    ds = dataset.load(records.of_campaign(loaded.records, cid), name)
    if not ds.series and not ds.opcodes:
        raise CliError(f"no benchmark data under {', '.join(dirs)}" + (f" for campaign {cid}" if cid else ""))
    rows = tables.summary(ds.series, cv_max)
    comp: list[dict[str, Any]] | None = None
    what = ""
    if opts["--compare"]:
        a_id, _, b_id = opts["--compare"].partition(",")
        if not a_id or not b_id:
            raise CliError(f"--compare needs two campaign ids A,B, got {opts['--compare']!r}")
        sa = dataset.load(records.of_campaign(loaded.records, a_id), name).series
        sb = dataset.load(records.of_campaign(loaded.records, b_id), name).series
        for c, got in ((a_id, sa), (b_id, sb)):
            if not got:
                raise CliError(f"--compare: no data of campaign {c!r} under {', '.join(dirs)}")
        comp, what = tables.compare(sa, sb, alpha=alpha), f"campaign {b_id} against campaign {a_id}"
    elif opts["--engines"]:
        e1, _, e2 = opts["--engines"].partition(",")
        if not e1 or not e2:
            raise CliError(f"--engines needs two engines E1,E2, got {opts['--engines']!r}")
        e1, e2 = resolve(e1), resolve(e2)  # aliases: the data's engines are canonical names
        comp, what = tables.compare(ds.series, ds.series, (e1, e2), alpha), f"engine {e2} against engine {e1}"
        if not comp:
            raise CliError(f"--engines: no cell has data on both {e1!r} and {e2!r}")
    images: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    drawing = not opts["--no-plots"] or bool(opts["--html"])
    if drawing:
        images = figures.plot(ds.series, rows, opts["--out"])
    hp, heat = figures.heatmap(ds.series, resolve(opts["--baseline"]) if opts["--baseline"] else None, opts["--out"] if drawing else None)
    if hp:
        images.append(hp)
    for c in sorted([cid] if cid else ds.cells):
        counts[c], src = campaign_counts(api, c, ds.cells.get(c, {}))
        if drawing:
            images.append(figures.coverage(counts[c], f"cells by state ({src}), campaign {c}", opts["--out"]))
    blocks = [("Cells", tables.table_text(rows, ds.opcodes, loaded.bad, cv_max))]
    if comp is not None:
        blocks.append(("Comparison", tables.compare_text(comp, what)))
    if opts["--json"]:
        print(json.dumps({"rows": [tables.clean(r) for r in rows], "opcodes": ds.opcodes, "skipped": loaded.bad,
                          "compare": [tables.clean(r) for r in comp] if comp is not None else None,
                          "heatmap": heat, "coverage": counts}))
    else:
        sys.stdout.write("".join(text for _h, text in blocks))
        for c, n in counts.items():
            print(f"campaign {c}: " + ", ".join(f"{k} {v}" for k, v in n.items() if v))
    if opts["--html"]:
        page.write_html(opts["--html"], "SilverLine benchmark report" + (f": campaign {cid}" if cid else ""), blocks, images)
        print(f"wrote {opts['--html']}", file=sys.stderr)
    if not opts["--no-plots"]:
        for p in images:
            print(f"wrote {p}", file=sys.stderr)
    return 0

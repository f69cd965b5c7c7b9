"""What `manage.py report` and `manage.py export` compute from collected benchmark data, one job
per file (the CLI front ends in cli/report.py and cli/export.py only parse options and print):

- records.py: the one loader of collected records (a directory's results store, else its files),
  with the latest registration of each runtime;
- stats.py: quantiles, the interval of the median, Mann-Whitney (exact for small samples), effect
  sizes with their interval, outliers;
- dataset.py: the records as series of run times per (module, engine, runtime, kind), read by the
  layouts of benchmarking/layouts.py;
- tables.py: the summary and comparison rows and their text tables;
- figures.py: the PNG plots (matplotlib, imported when drawing);
- page.py: the one-page HTML report;
- pitot.py, pitot_check.py: the export in Pitot's layout and the checks Pitot's steps make;
- tidy.py: the table of runs, one row per run (CSV, Parquet where pyarrow or polars is installed).

Nothing here imports the CLI, the orchestrator or the collector: the front ends pass what they
ask the orchestrator as plain values. Errors a user can fix are AnalysisError, one line each.
"""
from __future__ import annotations


class AnalysisError(Exception):
    """A problem with the data or the options, said in one line (the CLI exits 1 with it)."""

"""The profile collector: stores every profiling message of a realm as a JSON file (`make profile`).

`python -m collector` subscribes `{realm}/proc/profile/#`, decodes each payload with the codecs of
`runtimes.benchmarking.payloads` and writes `data/<date>/<runtime name>/<module name>.<uuid>.<type>.json`.
"""
from collector.store import Collector, ProfileStore

__all__ = ["Collector", "ProfileStore"]

"""Test-only helpers (the original tools' messages, original.py). The process harness (broker, node,
orchestrator, MQTT probe, ...) is the top-level package testbed/, shared with chaos/ and bench/."""

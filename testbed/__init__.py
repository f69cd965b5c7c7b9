"""The process harness shared by tests/, chaos/ and bench/: a real mosquitto broker on a free port
(broker), a node started through start.py (node), the orchestrator as a subprocess (orchestrator), an
MQTT probe client (mqtt), control-message builders (control), the ACL realm (acl), the benchmarking
test modules (bench_modules), polling (wait) and process stopping (procs).

Nothing here imports tests/: chaos/ and bench/ import this package, never the test suite."""

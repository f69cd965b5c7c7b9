"""Pieces shared by the node, the orchestrator and the CLI: config, logging, wire format."""

"""The client library's errors: one line each, saying what went wrong and what to do."""
from __future__ import annotations


class ClientError(Exception):
    """A mistake or an unreachable service (orchestrator, broker), said in one line."""


class RefusedError(ClientError):
    """The orchestrator refused a request (its reason, from `proc/log`, is the text)."""

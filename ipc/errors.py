"""Errors of the IPC layer, named after what went wrong."""
from __future__ import annotations


class IPCError(Exception):
    """Base class of every IPC error."""


class RingFullError(IPCError):
    """The consumer did not make room in the ring within the timeout; the message was not sent."""


class MessageTooLarge(IPCError):
    """A message larger than half of the ring's capacity; it can never be sent."""


class BadMessage(IPCError, ValueError):
    """A record or payload that does not follow the format (truncated, bad header, bad encoding)."""


class ClosedError(IPCError):
    """Use of an endpoint, ring or queue after `close()`."""


class BackendUnavailable(IPCError):
    """The requested backend cannot be used on this system."""

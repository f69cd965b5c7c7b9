"""IPC between the supervisor and its workers: POSIX message queues (doorbells) and
single-producer single-consumer rings in shared memory (messages). See docs/ipc.md."""
from .endpoint import NodeIPC, SupervisorEndpoint, WorkerEndpoint, names
from .errors import BackendUnavailable, BadMessage, ClosedError, IPCError, MessageTooLarge, RingFullError
from .messages import Message
from .ring import DEFAULT_CAPACITY, STRONG_ORDER, Ring
from .stale import cleanup_stale

__all__ = [
    "NodeIPC", "SupervisorEndpoint", "WorkerEndpoint", "names", "Message", "Ring",
    "DEFAULT_CAPACITY", "STRONG_ORDER", "cleanup_stale",
    "IPCError", "RingFullError", "MessageTooLarge", "BadMessage", "ClosedError", "BackendUnavailable",
]

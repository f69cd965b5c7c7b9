"""silverline: a Python client for a SilverLine cluster (orchestrator REST + MQTT).

    from silverline import Client

    with Client() as c:                      # config.json / $SL_CONFIG, or Client(url=..., mqtt=...)
        (m,) = c.run("helloworld.wasm", stdout=True)
        for line in m.stdout:                # lines as the module prints them
            print(line)
        print(m.wait())                      # ExitStatus(reason='exited', code=0, ...)

`manage.py run/stop/list/...` are built on this package; docs/client.md has the whole API.
"""
from __future__ import annotations

from silverline.client import Client, ExitStatus, Module, Subscription
from silverline.errors import ClientError, RefusedError
from silverline.mqtt import Connection
from silverline.rest import Rest

__all__ = ["Client", "ClientError", "Connection", "ExitStatus", "Module", "RefusedError", "Rest", "Subscription"]

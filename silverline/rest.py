"""The orchestrator's REST API (docs/protocol.md, "REST API"): reads only, JSON over HTTP, stdlib."""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from silverline.errors import ClientError

Record = dict[str, Any]


class Rest:
    """GETs of the orchestrator at `url` (`http://host:port`)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any | None:
        """GET a JSON answer; None on 404; ClientError when the orchestrator cannot be reached."""
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            try:
                msg = json.loads(e.read()).get("error", e.reason)
            except ValueError:
                msg = e.reason
            raise ClientError(f"orchestrator at {self.url} answered {e.code} for {path}: {msg}") from None
        except urllib.error.URLError as e:
            reason = e.reason.strerror if isinstance(e.reason, OSError) and e.reason.strerror else e.reason
            raise ClientError(f"cannot reach the orchestrator at {url}: {reason} (is `make orchestrator` running? "
                              f"config keys `http`/`http_port`, or --url)") from None
        except (OSError, socket.timeout) as e:
            raise ClientError(f"cannot reach the orchestrator at {url}: {e}") from None
        except ValueError as e:
            raise ClientError(f"orchestrator at {url} sent something that is not JSON: {e}") from None

    def _all(self, path: str, params: dict[str, Any]) -> list[Record]:
        out: list[Record] = []
        while True:
            page = self.get(path, {**params, "start": len(out), "count": 1000})
            if page is None:
                raise ClientError(f"orchestrator at {self.url} has no {path} (is that URL an orchestrator?)")
            out.extend(page["results"])
            if not page["results"] or len(out) >= page["count"]:
                return out

    def runtime(self, q: str) -> Record | None:
        """A runtime by uuid (dead ones too), name or uuid suffix; None if there is none."""
        got = self.get(f"/api/runtimes/{urllib.parse.quote(q, safe='')}/")
        return got if isinstance(got, dict) else None

    def module(self, q: str, *, dead: bool = False) -> Record | None:
        """A module by uuid (dead ones too), name or uuid suffix; `dead`: by name among dead ones too."""
        got = self.get(f"/api/modules/{urllib.parse.quote(q, safe='')}/", {"all": 1} if dead else None)
        return got if isinstance(got, dict) else None

    def runtimes(self, queued: int = 100, *, dead: bool = False) -> list[Record]:
        """Every alive runtime (`dead`: every runtime), each with `children` and up to `queued` queued modules."""
        params: dict[str, Any] = {"queued": queued}
        if dead:
            params["status"] = "all"
        return self._all("/api/runtimes/", params)

    def modules(self, status: str | None = None, runtime: str | None = None, name: str | None = None) -> list[Record]:
        """Modules (default: running and exiting; `status` e.g. `Q,K` or `all`), optionally of one runtime / name."""
        params = {k: v for k, v in (("status", status), ("runtime", runtime), ("name", name)) if v is not None}
        return self._all("/api/modules/", params)

    def queued(self) -> list[Record]:
        return self._all("/api/queued/", {})

"""Node and runtime identities: persisted in the state dir, derived from --uuid."""
from __future__ import annotations

import json
import os
from pathlib import Path

from supervisor.identity import load_identity


def test_identity_persists_and_uuid_flag_derives(tmp_path: "os.PathLike[str]") -> None:
    d = str(tmp_path)
    a = load_identity("n1", ["n1.a", "n1.b"], state_dir=d)
    b = load_identity("n1", ["n1.a", "n1.b"], state_dir=d)
    assert a == b
    assert json.loads(Path(d, "n1.json").read_text())["manager"] == a.manager
    c = load_identity("n2", ["n2"], state_dir=d)
    assert c.manager != a.manager
    m = "11111111-2222-3333-4444-555555555555"
    x = load_identity("n3", ["n3"], state_dir=None, manager_uuid=m)
    y = load_identity("n3", ["n3"], state_dir=None, manager_uuid=m)
    assert x.manager == m and x.runtimes == y.runtimes
    assert load_identity("n4", ["n4"], state_dir=None).manager != load_identity("n4", ["n4"], state_dir=None).manager

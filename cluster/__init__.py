"""Cluster tools: fan out commands and file copies over SSH to the devices of the manifest.

`ssh.py` connects (asyncssh, honouring the SSH config and agent), `fanout.py` runs one action
per device, `report.py` prints, `options.py` is what the `manage.py` scripts share,
`templates.py` fills `{name}`-style fields, `transfer.py` copies files, `remote.py` holds the
shell snippets of start/kill/update/version/reboot/shutdown, `launch.py` sends runall's create
requests over MQTT, `aot.py` (+ `aot_wasmtime.py`, its child process) precompiles per device target.
"""
from cluster.fanout import Result, fan_out
from cluster.ssh import SshOptions
from cluster.templates import TemplateError, render

__all__ = ["Result", "fan_out", "SshOptions", "TemplateError", "render"]

"""Command templates: `{name}`, `{fullname}`, `{arch}`, `{cgroup}`, ... filled from a manifest row.

`str.format` syntax; `{{` and `}}` are literal braces. An unknown field is an error that lists
the known ones, raised before anything runs on any device.
"""
from __future__ import annotations

import string

from common.manifest import Device


class TemplateError(ValueError):
    """A template names a field the manifest does not have, or is malformed."""


def fields_of(template: str) -> list[str]:
    """Field names used in `template` (raises TemplateError if it is malformed)."""
    try:
        return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise TemplateError(f"bad template {template!r}: {e} (write {{{{ and }}}} for literal braces)") from e


def render(template: str, device: Device, *, domain: str = "", username: str = "", extra: dict[str, str] | None = None) -> str:
    """Fill `template` with the device's fields."""
    values = device.fields(domain=domain, username=username)
    if extra:
        values.update(extra)
    for f in fields_of(template):
        if f == "" or f.isdigit():
            raise TemplateError(f"bad template {template!r}: positional field {{{f}}}; use a name like {{name}}")
        key = f.split(".", 1)[0].split("[", 1)[0]
        if key not in values:
            raise TemplateError(f"template {template!r}: unknown field {{{key}}}; known: {', '.join('{' + k + '}' for k in values)}")
    try:
        return template.format(**values)
    except (ValueError, AttributeError, IndexError, KeyError) as e:
        raise TemplateError(f"bad template {template!r}: {e}") from e


def check(template: str, devices: list[Device], **kw: str) -> None:
    """Render for every device once so a bad template fails before any connection."""
    for d in devices:
        render(template, d, **kw)  # type: ignore[arg-type]

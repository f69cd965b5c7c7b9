"""The report as one self-contained HTML page: the tables as text, the pictures embedded."""
from __future__ import annotations

import base64
import html
import os


def write_html(path: str, title: str, text_blocks: list[tuple[str, str]], images: list[str]) -> None:
    """One self-contained page: the tables as text, the pictures embedded."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;margin:2em} pre{font-size:12px;background:#f6f6f6;padding:1em;"
             "overflow-x:auto} img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for head, text in text_blocks:
        parts.append(f"<h2>{html.escape(head)}</h2><pre>{html.escape(text)}</pre>")
    if images:
        parts.append("<h2>Pictures</h2>")
    for img in images:
        with open(img, "rb") as f:
            data = base64.b64encode(f.read()).decode()
        parts.append(f"<h3>{html.escape(os.path.basename(img))}</h3><img alt='{html.escape(os.path.basename(img))}' "
                     f"src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(parts))

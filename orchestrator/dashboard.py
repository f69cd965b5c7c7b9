"""The fleet dashboard: one web page on the REST port (`GET /`), live by polling.

`GET /` (also `/dashboard`) serves one self-contained HTML page: no build step, no outside
assets (its CSS and script are inline). The page polls `GET /api/dashboard/` once a second, a
snapshot made here from the decision thread's published snapshot (reads.py), no lock: runtimes grouped by node with state, load (running of
max, queued, CPU of their modules from the last keepalive), their modules and the head of their
queues, and the progress of the newest benchmark campaigns (done, failed by reason, data pending,
an estimate of the time left); ours (issue #27): each runtime's
keepalive age, the newest ended modules with how they ended, the deployments (desired vs running),
and the output tail of the module named in the page's address (`#logs=UUID`, a click on a module;
`GET /api/logs/UUID/`). Everything the page shows comes from that JSON, written into the page as
text (names are the users': never markup). Read-only: the page sends nothing but GETs.
Where the REST API wants its token (`--token-file`, required beyond loopback), open the page as
`/#token=TOKEN`: the page keeps it for the tab, drops it from the address bar and sends it with
each GET; without it, a 401 shows a form that takes it.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from orchestrator.campaigns import CampaignReads
from orchestrator.model import ALIVE, RUNTIME, STATES
from orchestrator.scheduler import runtime_kind

if TYPE_CHECKING:
    from orchestrator.reads import Snapshot
    from orchestrator.store import Reader

PATHS = ("/", "/dashboard", "/dashboard/")
MODULES_SHOWN = 50  # per runtime
QUEUED_SHOWN = 10
CAMPAIGNS_SHOWN = 5
ENDED_SHOWN = 15
POLL_MS = 1000
CACHE_S = 1.0  # seconds one snapshot's dashboard answer is shared (campaign progress is read with it)



def _campaign(s: dict[str, Any], now: float) -> dict[str, Any]:
    """A campaign's progress for the page: its counts, failures by reason, and an estimate of the time
    left from the rate its cells ended at so far (None while none ended, or once finished)."""
    out = {k: s[k] for k in ("id", "cells", "done", "data_pending", "failed", "queued", "running", "finished")}
    ended = s["done"] + s["data_pending"] + sum(s["failed"].values())
    elapsed = now - float(s["created"])
    left = s["cells"] - ended
    out["eta_s"] = round(left * elapsed / ended, 1) if ended and left > 0 and elapsed > 0 and not s["finished"] else None
    return out

def _ended(r: "Reader", names: dict[str, str]) -> list[dict[str, Any]]:
    """The newest ended modules (the `(status, seq)` index: no scan)."""
    import orjson
    rows = r.conn.execute("SELECT uuid, name, parent, file, exit, updated FROM modules WHERE status='D'"
                          " ORDER BY seq DESC LIMIT ?", (ENDED_SHOWN,)).fetchall()
    out = []
    for u, name, parent, file, ex, updated in rows:
        e = orjson.loads(ex) if ex else {}
        out.append({"uuid": u, "name": name, "file": file, "runtime": names.get(parent or "", parent), "time": updated,
                    "reason": e.get("reason"), "code": e.get("code"), "error": (e.get("error") or "")[:200]})
    return out


def _deployments(r: "Reader") -> list[dict[str, Any]]:
    if r.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='deployments'").fetchone() is None:
        return []
    import orjson
    running = dict(r.conn.execute(
        "SELECT s.deployment, count(*) FROM deployment_slots s JOIN modules m ON m.uuid = s.module"
        " WHERE m.status='A' GROUP BY s.deployment").fetchall())
    return [{"name": n, "desired": orjson.loads(spec)["count"], "running": running.get(n, 0),
             "restart": orjson.loads(spec)["restart"]} for n, spec in r.conn.execute("SELECT name, spec FROM deployments ORDER BY name")]


def _runtime(e: dict[str, Any]) -> dict[str, Any]:
    mods = []
    cpu = 0.0
    for c in e["children"][:MODULES_SHOWN]:
        u = c.get("cpu_usage_percent")
        if isinstance(u, (int, float)):
            cpu += float(u)
        mods.append({"name": c["name"], "uuid": c["uuid"], "file": c["file"], "status": c["status"],
                     "cpu": u if isinstance(u, (int, float)) else None})
    queued = [{"name": m["name"], "uuid": m["uuid"], "file": m["file"]} for m in e["queued"][:QUEUED_SHOWN]]
    return {"name": e["name"], "uuid": e["uuid"], "status": e["status"], "runtime_type": e["runtime_type"],
            "kind": runtime_kind(e["apis"]), "running": len(e["children"]), "max": e["max_nmodules"],
            "queued": e["nqueued"], "killed": e["nkilled"], "cpu": round(cpu, 1), "modules": mods,
            "queue_head": queued, "keepalive_age": e.get("seconds_since_keepalive"),
            "sends_keepalives": e.get("sends_keepalives")}


def snapshot(snap: "Snapshot", r: "Reader", *, dead: bool = False) -> dict[str, Any]:
    """What the page shows, from a published snapshot (reads.py) and a read connection (campaigns):
    built once per snapshot and shared by every open page for CACHE_S at most."""
    key = ("dashboard", dead)
    hit = snap.cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < CACHE_S:
        return hit[1]  # type: ignore[no-any-return]
    nodes: dict[str, dict[str, Any]] = {}
    for u in snap.uuids(frozenset({RUNTIME}), frozenset(STATES if dead else (ALIVE,))):
        e = snap.entry(u)  # with its live keepalive age
        mgr = snap.entries.get(e["parent"]) if e["parent"] else None
        key_ = mgr["uuid"] if mgr else "-"
        node = nodes.setdefault(key_, {"name": mgr["name"] if mgr else "(no node)", "uuid": mgr["uuid"] if mgr else None,
                                       "status": mgr["status"] if mgr else "?", "runtimes": []})
        node["runtimes"].append(_runtime(e))
    out = sorted(nodes.values(), key=lambda d: str(d["name"]))
    for d in out:
        d["runtimes"].sort(key=lambda r: r["name"])
    campaigns: list[dict[str, Any]] = []
    now = time.time()
    reads = CampaignReads(r.conn)
    for c in list(reversed(reads.all()))[:CAMPAIGNS_SHOWN]:
        s = reads.summary(c["id"])
        if s is not None:
            campaigns.append(_campaign(s, now))
    running = sum(r["running"] for d in out for r in d["runtimes"])
    queued = sum(r["queued"] for d in out for r in d["runtimes"])
    names = {r_["uuid"]: r_["name"] for d in out for r_ in d["runtimes"]}
    got = {"time": time.time(), "nodes": out, "campaigns": campaigns, "ended": _ended(r, names),
           "deployments": _deployments(r),
           "totals": {"nodes": len(out), "runtimes": sum(len(d["runtimes"]) for d in out),
                      "running": running, "queued": queued}}
    snap.cache[key] = (time.monotonic(), got)
    return got


def page(path: str) -> bytes | None:
    """The HTML page for `path`, or None when the path is not the dashboard's."""
    return PAGE.encode() if path in PATHS else None


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SilverLine fleet</title>
<style>
  :root { --bg: #f4f6f8; --card: #fff; --ink: #1d2430; --dim: #6b7685; --ok: #1e8e3e; --warn: #c77700;
          --bad: #c62828; --q: #1565c0; --bar: #dfe5ec; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--ink); }
  header { display: flex; gap: 24px; align-items: baseline; padding: 14px 20px; background: #1d2430; color: #fff; }
  header h1 { font-size: 18px; margin: 0; }
  header .totals span { margin-right: 16px; }
  #status { margin-left: auto; font-size: 12px; color: #b8c2cf; }
  #status.down { color: #ff8a80; }
  main { padding: 16px 20px; display: grid; gap: 16px; }
  .node { background: var(--card); border-radius: 8px; padding: 12px 16px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
  .node h2 { font-size: 16px; margin: 0 0 8px; }
  .runtimes { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 12px; }
  .rt { border: 1px solid var(--bar); border-radius: 6px; padding: 8px 10px; }
  .rt .title { display: flex; justify-content: space-between; gap: 8px; font-weight: 600; }
  .rt .meta { color: var(--dim); font-size: 12px; }
  .bar { height: 6px; background: var(--bar); border-radius: 3px; margin: 6px 0; overflow: hidden; }
  .bar > div { height: 100%; background: var(--ok); }
  .bar.cells { display: flex; } .bar.cells > .failed { background: var(--bad); } .bar.cells > .pending { background: var(--warn); }
  .state { font-weight: 700; } .A { color: var(--ok); } .D { color: var(--bad); } .E { color: var(--warn); }
  .K { color: var(--bad); } .Q { color: var(--q); }
  ul { list-style: none; margin: 4px 0 0; padding: 0; font-size: 12px; }
  li { padding: 1px 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  li .uuid { color: var(--dim); font-family: ui-monospace, monospace; }
  li.queued { color: var(--q); }
  .campaign { background: var(--card); border-radius: 8px; padding: 10px 16px; }
  .empty { color: var(--dim); }
  .panel { background: var(--card); border-radius: 8px; padding: 10px 16px; }
  .panel h2 { font-size: 15px; margin: 0 0 6px; }
  table { border-collapse: collapse; font-size: 12px; width: 100%; }
  td, th { text-align: left; padding: 2px 8px 2px 0; white-space: nowrap; }
  td.err { white-space: normal; color: var(--bad); }
  .late { color: var(--warn); font-weight: 600; }
  a { color: inherit; text-decoration: none; } a:hover { text-decoration: underline; }
  pre#logtext { background: #1d2430; color: #e6edf3; padding: 8px; border-radius: 6px; max-height: 320px; overflow: auto;
                font-size: 12px; margin: 4px 0 0; white-space: pre-wrap; }
</style>
</head>
<body>
<header>
  <h1>SilverLine fleet</h1>
  <div class="totals" id="totals"></div>
  <div id="status">connecting...</div>
</header>
<form id="tokenform" class="panel" hidden>
  <label>This orchestrator's REST API needs its token (the first line of its --token-file):
  <input id="token" type="password" autocomplete="off"></label> <button>use it</button>
</form>
<main>
  <section id="logs" class="panel" hidden><h2 id="logtitle"></h2><pre id="logtext"></pre></section>
  <section id="deployments"></section>
  <section id="campaigns"></section>
  <section id="nodes"><p class="empty">loading...</p></section>
  <section id="ended" class="panel"></section>
</main>
<script>
"use strict";
const POLL_MS = __POLL_MS__;
const KA_WARN = 5;  // seconds: a keepalive older than twice this is shown as late
const LOG_TAIL = 50;
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function moduleItem(m, queued) {
  const li = el("li", queued ? "queued" : "");
  const a = el("a", "name", m.name);
  a.href = "#logs=" + encodeURIComponent(m.uuid);
  a.title = "show its output";
  li.append(a, " ", el("span", "uuid", m.uuid.slice(-8)), " ", el("span", "", m.file));
  if (m.status && m.status !== "A") li.append(" ", el("span", "state " + m.status, "[" + m.status + "]"));
  if (m.cpu !== null && m.cpu !== undefined) li.append(" ", el("span", "meta", "cpu " + Math.round(m.cpu) + "%"));
  return li;
}
function runtimeCard(r) {
  const card = el("div", "rt");
  card.dataset.runtime = r.name;
  const title = el("div", "title");
  title.append(el("span", "", r.name), el("span", "state " + r.status, r.status));
  card.append(title);
  const cap = r.max > 0 ? r.max : Math.max(r.running, 1);
  card.append(el("div", "meta", (r.runtime_type || "-") + " \\u00b7 " + r.kind + " \\u00b7 running " + r.running +
    (r.max > 0 ? "/" + r.max : "") + " \\u00b7 queued " + r.queued + " \\u00b7 cpu " + r.cpu + "%"));
  if (r.keepalive_age !== null && r.keepalive_age !== undefined) {
    const late = r.sends_keepalives && r.keepalive_age > 2 * KA_WARN;
    card.append(el("div", "meta ka" + (late ? " late" : ""), "keepalive " + r.keepalive_age.toFixed(1) + " s ago" +
                   (r.sends_keepalives ? "" : " (sends none)")));
  }
  const bar = el("div", "bar"), fill = el("div");
  fill.style.width = Math.min(100, 100 * r.running / cap) + "%";
  bar.append(fill);
  card.append(bar);
  const ul = el("ul");
  for (const m of r.modules) ul.append(moduleItem(m, false));
  for (const m of r.queue_head) ul.append(moduleItem(m, true));
  if (r.queued > r.queue_head.length) ul.append(el("li", "queued", "... and " + (r.queued - r.queue_head.length) + " more queued"));
  if (!r.modules.length && !r.queue_head.length) ul.append(el("li", "empty", "no modules"));
  card.append(ul);
  return card;
}
function render(s) {
  const t = s.totals;
  const totals = document.getElementById("totals");
  totals.replaceChildren(el("span", "", t.nodes + " nodes"), el("span", "", t.runtimes + " runtimes"),
                         el("span", "", t.running + " modules running"), el("span", "", t.queued + " queued"));
  const nodes = document.getElementById("nodes");
  nodes.replaceChildren();
  if (!s.nodes.length) nodes.append(el("p", "empty", "no runtime is registered"));
  for (const n of s.nodes) {
    const box = el("div", "node");
    box.dataset.node = n.name;
    box.append(el("h2", "", n.name));
    const grid = el("div", "runtimes");
    for (const r of n.runtimes) grid.append(runtimeCard(r));
    box.append(grid);
    nodes.append(box);
  }
  renderEnded(s.ended || []);
  renderDeployments(s.deployments || []);
  const camps = document.getElementById("campaigns");
  camps.replaceChildren();
  for (const c of s.campaigns) {
    const failed = Object.values(c.failed).reduce((a, b) => a + b, 0);
    const reasons = Object.entries(c.failed).filter(([, n]) => n > 0).map(([k, n]) => k + " " + n).join(", ");
    const box = el("div", "campaign");
    box.dataset.campaign = c.id;
    const eta = c.eta_s === null ? "" : ", about " + (c.eta_s < 90 ? Math.round(c.eta_s) + " s" :
                                                     Math.round(c.eta_s / 60) + " min") + " left";
    box.append(el("strong", "", "campaign " + c.id), " ",
               el("span", "meta", c.done + " done, " + failed + " failed" + (reasons ? " (" + reasons + ")" : "") + ", " +
                  c.data_pending + " data pending, " + c.running + " running, " + c.queued + " queued of " + c.cells +
                  (c.finished ? " (finished)" : eta)));
    // one segment per outcome: done green, failed red, ran but no stored data yet amber
    const bar = el("div", "bar cells");
    for (const [cls, n] of [["done", c.done], ["failed", failed], ["pending", c.data_pending]]) {
      const seg = el("div", cls);
      seg.style.width = (c.cells ? 100 * n / c.cells : 0) + "%";
      bar.append(seg);
    }
    box.append(bar);
    camps.append(box);
  }
}
function row(cells, cls) {
  const tr = el("tr");
  cells.forEach((c, i) => tr.append(el("td", cls && i === cells.length - 1 ? cls : "", c)));
  return tr;
}
function renderEnded(ended) {
  const box = document.getElementById("ended");
  box.replaceChildren(el("h2", "", "Ended modules (newest first)"));
  if (!ended.length) { box.append(el("p", "empty", "none kept")); return; }
  const t = el("table");
  const head = el("tr");
  for (const h of ["module", "uuid", "runtime", "ended", "reason", "code", "error"]) head.append(el("th", "", h));
  t.append(head);
  for (const m of ended) {
    const tr = row([m.name, m.uuid.slice(-8), m.runtime || "-", new Date(m.time * 1000).toLocaleTimeString(),
                    m.reason, m.code === null ? "" : m.code, m.error || ""], "err");
    tr.dataset.ended = m.name;
    const a = el("a", "", m.name);
    a.href = "#logs=" + encodeURIComponent(m.uuid);
    tr.firstChild.replaceChildren(a);
    t.append(tr);
  }
  box.append(t);
}
function renderDeployments(deps) {
  const box = document.getElementById("deployments");
  box.replaceChildren();
  if (!deps.length) return;
  box.className = "panel";
  box.append(el("h2", "", "Deployments"));
  const t = el("table");
  const head = el("tr");
  for (const h of ["deployment", "running", "desired", "restart"]) head.append(el("th", "", h));
  t.append(head);
  for (const d of deps) {
    const tr = row([d.name, d.running, d.desired, d.restart]);
    tr.dataset.deployment = d.name;
    if (d.running < d.desired) tr.children[1].className = "late";
    t.append(tr);
  }
  box.append(t);
}
// Beyond loopback the REST API wants its token (--token-file): opened as `/#token=TOKEN`, the page keeps
// it for this tab (sessionStorage) and drops it from the address bar; on a 401 it shows a token form.
const TOKEN_KEY = "silverline-rest-token";
(function takeToken() {
  const m = /^#token=([^&]+)$/.exec(location.hash);
  if (!m) return;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
  history.replaceState(null, "", location.pathname + location.search);
})();
async function api(path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const r = await fetch(path, {cache: "no-store", headers: token ? {"Authorization": "Bearer " + token} : {}});
  document.getElementById("tokenform").hidden = r.status !== 401;
  if (r.status === 401) throw new Error("HTTP 401: needs the REST token; open the page as /#token=TOKEN");
  return r;
}
document.getElementById("tokenform").addEventListener("submit", ev => {
  ev.preventDefault();
  const t = document.getElementById("token").value.trim();
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
});
async function showLogs() {
  const box = document.getElementById("logs");
  const m = /^#logs=(.+)$/.exec(location.hash);
  if (!m) { box.hidden = true; return; }
  const uuid = decodeURIComponent(m[1]);
  const r = await api("/api/logs/" + encodeURIComponent(uuid) + "/?tail=" + LOG_TAIL);
  const body = r.ok ? await r.json() : {lines: [], heard: false};
  box.hidden = false;
  document.getElementById("logtitle").textContent = "output of " + uuid + (body.heard ? "" : " (none kept)");
  document.getElementById("logtext").textContent = body.lines.map(l => l.line).join("\\n");
}
window.addEventListener("hashchange", () => showLogs().catch(() => {}));
async function poll() {
  const status = document.getElementById("status");
  try {
    const r = await api("/api/dashboard/");
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
    await showLogs();
    status.className = "";
    status.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    status.className = "down";
    status.textContent = "orchestrator unreachable (" + e.message + "), retrying";
  }
  setTimeout(poll, POLL_MS);
}
poll();
</script>
</body>
</html>
""".replace("__POLL_MS__", str(POLL_MS))

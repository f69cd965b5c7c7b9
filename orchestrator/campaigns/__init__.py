"""Benchmark campaigns: a plan of cells the orchestrator remembers, so a campaign survives a node
crash, an orchestrator restart and its own client going away, and `--resume` runs only what is
not done.

The plan (benchmarking/plan.py: expansion, module names, outcomes; shared with the CLI) is sent
as a compact spec (`create_campaign` on `{realm}/proc/control`) and expanded here, so a 100k-cell
campaign is one small message and one transaction (its modules, valid by construction, skip the
checks of a create: `Orchestrator.place_cells`; they queue per runtime like any other).

- store.py: the campaign tables, their versioned migrations (`PRAGMA user_version`), statements;
- hooks.py: the requests and the hooks the orchestrator calls, through the narrow `Host`;
- views.py: the REST reads (`GET /api/campaigns/...`), on a read-only connection of their own.

A cell's state is its recorded outcome (`done`, or failed: `error`, `trap`, `limit`, `killed`)
when its module sent `exited`; otherwise that of its current module: `queued`, `running`, or
`lost` (killed with its runtime, or dead without an exit: node crash, orchestrator restart).
`resume_campaign` gives every cell that is neither done, queued nor running a new module (a
killed one that would be resurrected is retired first): a done cell never runs again.

A cell whose profile arrived but whose `exited` did not (its node died between the two) is not
run again: the orchestrator hears the cells' `benchmarking-v3` / `interference-v2` profiles
(`on_profile`: parts seen and run outcomes, kept in `cells.profile`), and when the runtime dies
with such a module running, the cell's outcome is taken from its complete profile (`settle`)
and the module ends dead, not killed (so it is neither resurrected nor resumed). The seed's
layouts alone (`--profile seed`) do not say when a profile is complete: such cells keep the
old behaviour (run again after the node's death).
Window: a runtime that registers `metadata.queue_ahead` N (the benchmarking runtimes: they accept
N creates beyond the module running and run them back to back, one at a time) gets up to
min(plan.window, 1 + N) of a campaign's cells at once, so that the orchestrator's bookkeeping,
MQTT and the node's dispatch of the next cell overlap with the run before it; `window` 1 is the
serial behaviour (the next cell is created when the last one exited). Default `plan.WINDOW`.
"""
from __future__ import annotations

from orchestrator.campaigns.hooks import ACTIONS, PROFILE_TYPES, CampaignError, Campaigns, Host, queue_ahead
from orchestrator.campaigns.store import CampaignStore
from orchestrator.campaigns.views import CampaignRead, CampaignReads, answer, route

__all__ = ["ACTIONS", "PROFILE_TYPES", "CampaignError", "CampaignRead", "CampaignReads", "CampaignStore", "Campaigns",
           "Host", "answer", "queue_ahead", "route"]

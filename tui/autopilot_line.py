"""The overview's autopilot line: policy, window, what the next pass will do, the last run.

Only a state file with an [autopilot] table shows it, so only such a file loads this module
(and core.autopilot) before the first frame.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from core.config.state import State
from tui.view import when


@dataclass(frozen=True)
class AutopilotLine:
    """The overview's autopilot line, in four parts."""

    policy: str  # renewal margins and windows
    window: str  # open until …, or when the next opens
    next: str  # what the next pass will do
    last_run: str  # when it last ran and how that ended

    def text(self) -> str:
        return f"Autopilot: {self.policy} · {self.window}\n  next: {self.next} · {self.last_run}"


def autopilot_line(state: State, now: dt.datetime,
                   served: dict[str, tuple[dt.datetime, str]] | None = None) -> AutopilotLine | None:
    """The overview's autopilot line; None without an [autopilot] table.

    Node expiries come from `served` (what the host table probed: name -> (not_after, fingerprint));
    before the first refresh only the CA and the client certificates certrotate holds are known.
    """
    policy = state.policy
    if policy is None:
        return None
    from core.autopilot import decide, observe, windows

    cluster = state.inventory.cluster
    margins = (f"leaves renewed {policy.node_renew_days(cluster)} d before expiry, "
               f"CA {policy.ca_renew_days(cluster)} d; windows {windows.describe(policy.windows, policy.minutes)}")
    window = windows.at(policy.windows, policy.minutes, now)
    if not policy.windows:
        window_text = "may change nodes any time"
    elif window.open:
        window_text = f"window open until {when(window.closes)} UTC"
    else:
        window_text = f"next window {when(window.opens)} UTC" if window.opens else "no window within a year"
    served = served or {}
    nodes = [decide.CertExpiry(n.name, "node", "node.crt", *served[n.name]) if n.name in served
             else decide.CertExpiry(n.name, "node", "node.crt", None, problem="not probed yet")
             for n in state.inventory.nodes]
    expiries = observe.ca_expiries(state) + nodes + observe.client_expiries(state)
    decision = decide.decide(state, expiries, policy, now)
    if decision.action == "start":
        upcoming = f"start a {decision.kind} rotation ({decision.reason})"
    else:
        upcoming = decision.reason
    if decision.changes_nodes and not window.open:
        upcoming += " — at the next window"
    record = state.autopilot
    if record.get("last_run"):
        last = f"last run {when(record['last_run'])} UTC: {record.get('last_result', '')}"
    else:
        last = "never run yet (certrotate autopilot install)"
    return AutopilotLine(margins, window_text, upcoming, last)

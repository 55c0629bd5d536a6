"""The `[autopilot]` table of the state file: when certificates are renewed, when nodes may change, who hears.

The operator writes it by hand, so it is validated like the inventory: every problem is one
sentence naming the field and its line. Fields left out keep following the cluster (a third of
node_lifetime_days, leaf_delay_days + 90), so they are not written back when certrotate rewrites
the file; everything written is.
"""

from __future__ import annotations

import datetime as dt
import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core.config.inventory import ClusterConfig, _Reader

FIELDS = ("renew_before_days", "ca_renew_before_days", "windows", "window_minutes", "notify")
DEFAULT_WINDOW_MINUTES = 60
DEFAULT_JITTER_SECONDS = 300  # the installed timer's random wait inside a window (`autopilot install --jitter`)
CA_MARGIN_DAYS = 90  # the default ca_renew_before_days is leaf_delay_days plus this


@dataclass(frozen=True)
class NotifyTarget:
    """One place a notification goes: our JSON webhook, our command hook, or an apprise URL."""

    kind: str  # "webhook", "command" or "apprise"
    value: str  # the URL, or the command line

    @property
    def label(self) -> str:
        """How logs name the target without its secrets (hook URLs often carry a token in the path)."""
        if self.kind == "command":
            words = shlex.split(self.value)
            return f"command {words[0] if words else ''}"
        parsed = urlsplit(self.value)
        if self.kind == "webhook":
            return f"webhook {parsed.scheme}://{parsed.hostname or ''}"
        return f"apprise {parsed.scheme}://"


@dataclass(frozen=True)
class AutopilotPolicy:
    """The hand-written [autopilot] table: how early to renew, in which windows, whom to tell."""

    renew_before_days: int | None = None  # None: a third of the leaf lifetime
    ca_renew_before_days: int | None = None  # None: leaf_delay_days + CA_MARGIN_DAYS
    windows: tuple[str, ...] = ()  # cron expressions in UTC; empty: any time
    window_minutes: int | None = None  # how long a window stays open after each match; None: 60
    notify: tuple[str, ...] = ()

    def node_renew_days(self, cluster: ClusterConfig) -> int:
        return self.renew_before_days or max(1, cluster.node_lifetime_days // 3)

    def client_renew_days(self, cluster: ClusterConfig) -> int:
        return self.renew_before_days or max(1, cluster.client_lifetime_days // 3)

    def ca_renew_days(self, cluster: ClusterConfig) -> int:
        return self.ca_renew_before_days or cluster.leaf_delay_days + CA_MARGIN_DAYS

    @property
    def minutes(self) -> int:
        return self.window_minutes or DEFAULT_WINDOW_MINUTES

    @property
    def targets(self) -> tuple[NotifyTarget, ...]:
        return tuple(parse_target(entry) for entry in self.notify)


def window_problem(expression: str) -> str | None:
    """Why `expression` is not a five-field cron expression (cronsim's reading), or None."""
    from cronsim import CronSim, CronSimError  # only for files that schedule something

    try:
        CronSim(expression, dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))
    except CronSimError as error:
        return f"{expression!r} is not a cron expression (minute hour day month weekday): {error}"
    return None


def parse_target(entry: str) -> NotifyTarget:
    kind, _, rest = entry.partition(":")
    if kind in ("webhook", "command"):
        return NotifyTarget(kind, rest.strip())
    return NotifyTarget("apprise", entry.strip())


def target_problem(entry: str) -> str | None:
    """Why `entry` names no place to notify, or None."""
    if any(ch in entry for ch in "\n\r\x00"):
        return f"{entry!r} contains a line break or NUL"
    target = parse_target(entry)
    if target.kind == "webhook":
        parsed = urlsplit(target.value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            return f"{entry!r} is not webhook:http://… or webhook:https://…"
        return None
    if target.kind == "command":
        try:
            words = shlex.split(target.value)
        except ValueError as error:
            return f"{entry!r} is not a command line ({error})"
        return None if words else f"{entry!r} names no command (command:/path/to/program)"
    if "://" not in target.value:
        return (f"{entry!r} is neither webhook:URL, command:PROGRAM nor an apprise URL such as "
                "slack://… or mailto://…")
    return None


def parse_policy(data: dict[str, Any], text: str, source: str, cluster: ClusterConfig) -> AutopilotPolicy | None:
    """The [autopilot] table, checked against the cluster it schedules; None when the file has none."""
    if "autopilot" not in data:
        return None
    r = _Reader(source, text, "autopilot", None, data["autopilot"])
    r.no_unknown(set(FIELDS))
    policy = AutopilotPolicy(
        renew_before_days=r.get("renew_before_days", int, None),
        ca_renew_before_days=r.get("ca_renew_before_days", int, None),
        windows=r.get("windows", list, ()),
        window_minutes=r.get("window_minutes", int, None),
        notify=r.get("notify", list, ()),
    )
    for key in ("renew_before_days", "ca_renew_before_days", "window_minutes"):
        value = getattr(policy, key)
        if value is not None and value < 1:
            r.fail(key, "must be positive")
    if policy.window_minutes is not None and policy.window_minutes > 24 * 60:
        r.fail("window_minutes", "must be at most 1440 (one day); list more windows instead")
    shortest = min(cluster.node_lifetime_days, cluster.client_lifetime_days)
    if policy.renew_before_days is not None and policy.renew_before_days >= shortest:
        r.fail("renew_before_days", f"is {policy.renew_before_days}, not shorter than the leaf lifetime ({shortest} days "
                                    "in [cluster]); every new certificate would be due at once — choose fewer days")
    ca_days = policy.ca_renew_days(cluster)
    written = policy.ca_renew_before_days is not None
    what = f"is {ca_days}" if written else f"defaults to leaf_delay_days + {CA_MARGIN_DAYS} = {ca_days}"
    if ca_days >= cluster.ca_lifetime_days:
        r.fail("ca_renew_before_days", f"{what}, not shorter than ca_lifetime_days ({cluster.ca_lifetime_days}); a new "
                                       "CA would be due at once — set fewer days")
    if written and ca_days <= cluster.leaf_delay_days:
        r.fail("ca_renew_before_days", f"is {ca_days}, not longer than leaf_delay_days ({cluster.leaf_delay_days}); "
                                       "the trust step, the wait and the leaf step must all fit before the old CA "
                                       "expires — allow more days")
    for index, expression in enumerate(policy.windows):
        problem = window_problem(expression)
        if problem:
            r.fail("windows", f"entry {index + 1}: {problem}")
    for index, entry in enumerate(policy.notify):
        problem = target_problem(entry)
        if problem:
            r.fail("notify", f"entry {index + 1}: {problem}")
    return policy


def policy_to_toml(policy: AutopilotPolicy) -> dict[str, Any]:
    """What the operator wrote (or the wizard offered), for the atomic rewrite; derived defaults stay out."""
    out: dict[str, Any] = {}
    for key in FIELDS:
        value = getattr(policy, key)
        if value is None or value == ():  # an empty list means the same as none written
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def suggested(cluster: ClusterConfig) -> AutopilotPolicy:
    """What the first-run flow offers: weekday nights, defaults that follow the cluster, no one notified yet."""
    return AutopilotPolicy(windows=("0 2-4 * * 1-5",))

"""A certificate (or every certificate of a bundle or served chain) as an operator reads it."""

from __future__ import annotations

import datetime as dt

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from core.diagnose.cert_info import CertificateInfo
from tui.view import when


class CertView(Widget):
    DEFAULT_CSS = """
    CertView { height: auto; padding: 0 1; }
    """

    certificates: reactive[tuple[CertificateInfo, ...]] = reactive((), layout=True)
    source: reactive[str] = reactive("")
    now: reactive[dt.datetime | None] = reactive(None)

    def render(self) -> Group | Text:
        if not self.certificates:
            return Text("No certificate shown yet.", style="dim")
        parts: list[Text | Table] = []
        now = self.now or dt.datetime.now(dt.timezone.utc)
        count = len(self.certificates)
        for index, info in enumerate(self.certificates, start=1):
            title = f"{self.source} — certificate {index} of {count}" if count > 1 else self.source
            parts.append(Text(title, style="bold underline"))
            table = Table.grid(padding=(0, 2))
            table.add_column(style="bold", no_wrap=True, min_width=9)
            table.add_column()
            parts.append(table)
            left = info.days_left(now)
            validity = Text(f"{when(info.not_before)} → {when(info.not_after)} UTC  ")
            validity.append(f"({left} days left)" if left >= 0 else "(EXPIRED)",
                            style="red bold" if left < 30 else "green")
            rows = [
                ("Subject", info.subject),
                ("Issuer", info.issuer + ("  (self-signed)" if info.self_signed else "")),
                ("SANs", ", ".join(info.sans) or "—"),
                ("Validity", validity),
                ("SHA-256", info.fingerprint),
                ("Serial", info.serial),
                ("Key", info.key),
                ("CA", "yes" if info.is_ca else "no"),
            ]
            for label, value in rows:
                table.add_row(label, value)
            parts.append(Text(""))
        return Group(*parts)

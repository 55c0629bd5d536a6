"""A dry run's plan: per host, every file it would write and every command it would run."""

from __future__ import annotations

from textual.widgets import Tree


class PlanView(Tree[str]):
    DEFAULT_CSS = """
    PlanView { height: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("Plan", **kwargs)
        self.show_root = False

    def show(self, plan: dict[str, list[str]]) -> None:
        self.clear()
        for host, lines in plan.items():
            node = self.root.add(f"{host}  ({len(lines)} action{'s' * (len(lines) != 1)})", expand=True)
            for line in lines or ["nothing to do"]:
                node.add_leaf(line)
        if not plan:
            self.root.add_leaf("Nothing to do in this phase.")

    def lines(self) -> list[str]:
        return [str(leaf.label) for host in self.root.children for leaf in host.children]

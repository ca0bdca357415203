"""Command-palette provider over `proxycore.control.commands`: every command, one entry per choice.

Typing a whole command line ("view.filter.set ~m post", "export.har out.har") also works: the
first hit then runs exactly that line.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from proxycore.control.commands import registry


class FlowCommands(Provider):
    def _entries(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = self.app
        run = app.run_command  # type: ignore[attr-defined]
        interactive: dict[str, str] = getattr(app, "INTERACTIVE_COMMANDS", {})
        entries: list[tuple[str, str, Callable[[], object]]] = []
        for cmd in registry:
            if cmd.name in interactive:
                entries.append((cmd.name, cmd.help, getattr(app, interactive[cmd.name])))
                continue
            first = cmd.args[0] if cmd.args else None
            choices = first.choice_list() if first is not None else []
            if choices:
                for c in choices:
                    entries.append((f"{cmd.name} {c}", cmd.help, partial(run, cmd.name, c, quiet=False)))
            elif first is None or not first.required:
                entries.append((cmd.name, cmd.help, partial(run, cmd.name, quiet=False)))
        return entries

    async def discover(self) -> Hits:
        for name, help_, cb in self._entries():
            yield DiscoveryHit(name, cb, help=help_)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        words = query.split(maxsplit=1)
        if len(words) == 2 and words[0] in registry:
            yield Hit(1.0, f"run: {query}", partial(self.app.run_command_line, query), help="run this command line")  # type: ignore[attr-defined]
        for name, help_, cb in self._entries():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), cb, help=help_)

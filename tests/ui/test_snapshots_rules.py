"""SVG snapshots of the rewrite rules screen (R) at 80×24 and 160×48 (see snapshot_kit)."""

from __future__ import annotations

from pathlib import Path

import pytest
from snapshot_kit import (  # noqa: F401 (snapshot, fixed_environment: fixtures pytest finds here)
    feed,
    fixed_environment,
    make_app,
    size_params,
    snapshot,
    type_text,
    until,
)

from omniproxy_tui.app import OmniProxyApp
from omniproxy_tui.widgets.rules import RulesScreen
from proxycore.addons.rules import parse_flag

RULES = [
    "set_header@request /~d api.example.com/X-Debug/1",
    "remove_header@response /Server",
    "replace_body@response /~u users/\"active\": false/\"active\": true",
    "map_remote |~d api.example.com|^https://api.example.com/v1/|http://127.0.0.1:9000/v1/",
    "mock |~u /v1/flags|200|{\"beta\": true}",
    "block :~d ads.example.net:444",
]


async def open_rules(pilot) -> None:
    app: OmniProxyApp = pilot.app
    await feed(pilot)
    rules = app.engine.rules
    for line in RULES:
        app.engine.run_command("rules.add", app.ctx, line)
    rules.add(parse_flag("block_list", ":~d tracker.example:404"))
    rules.rules[-1].source = "flag"
    for r, hits in zip(rules.rules, (12, 12, 3, 0, 5, 41, 2), strict=True):
        r.hits = hits
    app.engine.run_command("rules.toggle", app.ctx, 4)
    rules.path = Path("/home/dev/.omniproxy/rules.yaml")  # the shown path, whatever the test's home
    await pilot.press("R")
    await until(pilot, lambda: isinstance(app.screen, RulesScreen), "the rules screen")
    await pilot.press("j", "j")
    await until(pilot, lambda: app.screen.query_one("#rules-table").cursor_row == 2, "the cursor on rule 3")


@pytest.mark.parametrize("size", size_params())
def test_rules_screen(snap_compare, size: tuple[int, int]) -> None:
    """Seven rules of every kind: one off, one from a flag, hit counts; the cursor on rule 3."""
    assert snap_compare(make_app(), terminal_size=size, run_before=open_rules)


def test_rules_screen_bad_rule(snap_compare) -> None:
    """Adding a rule that does not parse: the one-line error under the input, which stays open."""

    async def bad(pilot) -> None:
        await open_rules(pilot)
        await pilot.press("a")
        await type_text(pilot, "block :~d ads:abc")
        await pilot.press("enter")
        await until(pilot, lambda: "not a number" in str(pilot.app.screen.query_one("#rules-message").render()),
                    "the error")

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=bad)

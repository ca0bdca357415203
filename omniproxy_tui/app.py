"""The Textual app: the proxy and the UI in one process and one event loop.

The UI reaches the engine only through `proxycore.control.client.EngineClient` (here a LocalEngine that
runs the proxy on this loop). The engine's flow store publishes "added" / "updated" / "removed"
events by flow id, synchronously on the loop; the subscriber here only records them (a list of new
flows, a dict of updated ones, a set of removed ids). A 15 Hz timer folds that batch into the FlowView
and repaints what changed, so a burst of thousands of flows per second costs one small repaint
per tick and key presses never wait behind rendering. Every user action goes through the named
commands in `proxycore.control.commands`; keys and the palette only pick which command to run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as _dt
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from textual import events, on
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.css.query import NoMatches
from textual.reactive import Reactive
from textual.screen import Screen
from textual.widget import Widget

from omniproxy_tui import clipboard, uistate
from omniproxy_tui.gcpolicy import GcPolicy
from omniproxy_tui.textual_fixes import apply as apply_textual_fixes
from omniproxy_tui.textual_fixes import focus_now
from omniproxy_tui.widgets.bars import HeaderBar, KeyBar, StatusLine, capture_label, throttle_label
from omniproxy_tui.widgets.breakpoints import EditorScreen, InboxScreen, InterceptPrompt
from omniproxy_tui.widgets.capturedialogs import SAVE_FORMATS, LoadScreen, SaveScreen
from omniproxy_tui.widgets.detail import DetailScreen, FlowDetail
from omniproxy_tui.widgets.dialogs import ConfirmScreen, ExportScreen
from omniproxy_tui.widgets.eventlog import EventLogScreen
from omniproxy_tui.widgets.filterbar import FilterBar
from omniproxy_tui.widgets.flowtable import FlowTable
from omniproxy_tui.widgets.help import HelpScreen, binding_rows
from omniproxy_tui.widgets.messages import MessagesPane
from omniproxy_tui.widgets.options import OptionsScreen
from omniproxy_tui.widgets.palette import FlowCommands
from omniproxy_tui.widgets.prompt import PromptScreen, command_completer, command_help
from omniproxy_tui.widgets.rules import RulesScreen
from omniproxy_tui.widgets.throttlepanel import ThrottlePanel
from omniproxy_tui.widgets.wireguard import WireGuardScreen
from proxycore.control.client import EngineClient, LocalEngine
from proxycore.control.commands import (
    SAVE_COMMANDS,
    CommandContext,
    CommandError,
    Job,
    JobCancelled,
    default_export_path,
    export_formats,
    load_job,
    registry,
    save_format_for,
)
from proxycore.errors import StartupError
from proxycore.flows.flow import INTERCEPTED, Flow
from proxycore.flows.view import FlowView
from proxycore.options import Options
from proxycore.runtime import new_event_loop

apply_textual_fixes()

TICK_HZ = 15
# A repaint costs ~8-25 ms of loop time at 160x48 however few rows changed, so under heavy traffic
# the tick repaints less often and the proxy keeps the loop: (flows/s from, repaints/s). Measured
# with bench/bench_ui.py, UI/--no-ui throughput: 0.5x at 15 Hz, 0.85-0.92x at 5 Hz. Keys still
# repaint at once.
PAINT_HZ_UNDER_LOAD = ((4000, 3), (1000, 5))
WIDE = 140  # columns from which the detail sits beside the table instead of on its own screen
PANE_WIDTHS = (30, 35, 40, 45, 50, 55, 60, 65, 70)  # the side pane's width (% of the screen): [ and ]
PANE_WIDTH = 45
# While the table follows a stream of new flows, the pane beside it shows the newest one at most this
# often (s): redrawing it on every repaint costs more than the table and nobody can read it that fast.
DETAIL_FOLLOW_INTERVAL = 0.5
# Under load the header's and status line's counters are redrawn at most this often (s). They span
# the screen, so redrawing them with the table makes every frame a full-screen one: the table alone
# is a third of the work at 160 columns with the detail pane beside it.
COUNTERS_INTERVAL = 0.5
FILTER_TOGGLE_KEY = "t"
# Breakpoints (mitmproxy's keys): listed in their own help section
INTERCEPT_BINDINGS: list[BindingType] = [
    Binding("i", "intercept_prompt", "Intercept", show=False,
            tooltip="Set the intercept filter (~q requests only, ~s responses only)", id="intercept.set"),
    Binding("I", "say('intercept.toggle')", "Intercept on/off", show=False,
            tooltip="Breakpoints off / on without losing the filter", id="intercept.toggle"),
    Binding("B", "inbox", "Inbox", show=False, tooltip="Paused flows, how long each waited", id="intercept.inbox"),
    Binding("e", "edit", "Edit", show=False, tooltip="Edit the paused request or response", id="flow.edit"),
    Binding("a", "say('flow.resume')", "Resume", show=False, tooltip="Resume the paused flow", id="flow.resume"),
    Binding("A", "say('flow.resume_all')", "Resume all", show=False, tooltip="Resume every paused flow",
            id="flow.resume_all"),
    Binding("X", "say('flow.kill')", "Kill", show=False,
            tooltip="Kill the paused flow (the client's connection is closed)", id="flow.kill"),
    Binding("V", "say('flow.revert')", "Revert", show=False, tooltip="Undo the edits of the flow",
            id="flow.revert"),
]


@dataclass
class AppContext(CommandContext):
    """Commands reach the real clipboard and notifications through the app."""

    app: Any = None

    def copy_to_clipboard(self, text: str) -> str:
        """Copy through every route that reaches a clipboard; refuse (the message says why and
        how to fix it) when none does, instead of announcing a copy that went nowhere."""
        found = clipboard.routes()
        if not found:
            raise CommandError(f"not copied: {clipboard.NO_CLIPBOARD_HINT}")
        self.clipboard = text
        self.app.copy_text(text, local="local clipboard" in found)
        return " and ".join(found)

    def notify(self, message: str, severity: str = "information") -> None:
        self.app.notify(message, severity=severity)

    def run_on_loop(self, fn: Callable[[], Any]) -> Any:
        # A job's worker thread waits for the loop to take each batch: loading never runs ahead of
        # what the UI has taken in, so at most one batch is in flight. Not App.call_from_thread:
        # it waits forever, and once the app is leaving, the loop may never run the call; the
        # thread must notice and stop (the process waits for it on exit).
        app = self.app
        loop = app._loop
        if app.is_leaving or loop is None or loop.is_closed():
            raise JobCancelled("the app is closing")
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def call() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(app.run_loading(fn))
            except BaseException as exc:  # handed to the waiting thread
                fut.set_exception(exc)

        loop.call_soon_threadsafe(call)
        while True:
            try:
                return fut.result(timeout=0.2)
            except concurrent.futures.TimeoutError:
                if app.is_leaving or loop.is_closed() or not loop.is_running():
                    fut.cancel()
                    raise JobCancelled("the app is closing") from None


_WG_EMPTY = "No flows yet. Connect a WireGuard client: W shows its configuration and QR code."


class MainScreen(Screen):
    """Header, flow table (+ detail pane when wide), filter bar, status line, footer."""

    # Textual repaints the whole screen when the focus moves (f, Enter, Esc, Tab): 20-60 ms at
    # 160x48 with the detail pane. The widgets whose look depends on focus repaint themselves.
    focused: Reactive[Widget | None] = Reactive(None, repaint=False)

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "filter", "Filter", tooltip="Filter the flows (live; syntax: the Filter language table below)", id="filter"),
        Binding(FILTER_TOGGLE_KEY, "command('view.filter.toggle')", "Filter on/off",
                tooltip="Switch the filter off and on without losing it", id="filter.toggle"),
        Binding("m", "command('flow.mark')", "Mark", show=False, tooltip="Mark / unmark the flow", id="mark"),
        Binding("M", "command('view.marked_only')", "Marked only", show=False,
                tooltip="Show only marked flows (on/off)", id="marked_only"),
        Binding("U", "command('flow.unmark_all')", "Unmark all", show=False, id="unmark_all"),
        Binding("d", "command('flow.delete')", "Delete", show=False, tooltip="Delete the flow from the view",
                id="delete"),
        Binding("D", "command('flow.duplicate')", "Duplicate", show=False, tooltip="Duplicate the flow",
                id="duplicate"),
        Binding("z", "clear", "Clear all", show=False, tooltip="Clear all flows (asks first)", id="clear"),
        Binding("x", "export", "Export",
                tooltip="Copy the flow as curl, HTTPie, raw request/response or Python", id="export"),
        Binding("c", "copy_curl", "Copy as curl", show=False, tooltip="Copy the flow as a curl command",
                id="copy_curl"),
        Binding("H", "export_har", "HAR", tooltip="Save shown flows as HAR 1.2", id="har"),
        Binding("w", "save_flows", "Save", show=False,
                tooltip="Save shown flows: lossless (reopen with -r or L), NDJSON or HAR", id="save"),
        Binding("L", "load_capture", "Load", show=False,
                tooltip="Open a capture (flow file, HAR, NDJSON, JSON, --db SQLite)", id="load"),
        Binding("o", "command('view.sort.cycle')", "Sort", show=False,
                tooltip="Sort by time, method, url, size, duration, status", id="sort"),
        Binding("v", "command('view.sort.reverse')", "Reverse sort", show=False, tooltip="Reverse the order",
                id="reverse"),
        Binding("F", "command('view.follow')", "Follow", show=False, tooltip="Follow new flows (on/off)",
                id="follow"),
        Binding("r", "replay", "Replay", show=False,
                tooltip="Replay the flow (or the marked ones) as a new flow ↺", id="replay"),
        Binding("tab", "switch_pane", "Switch pane", show=False,
                tooltip="Move between the table and the detail pane (wide terminals)", id="pane"),
        Binding("R", "rules", "Rules", show=False, tooltip="Rewrite rules: add, edit, toggle, reorder, delete",
                id="rules"),
        Binding("T", "throttle", "Throttle", show=False,
                tooltip="Throttle: pick a network preset, custom values or off", id="throttle"),
        Binding("Z", "clear_unmarked", "Clear unmarked", show=False,
                tooltip="Clear all flows except the marked ones (asks first)", id="clear_unmarked"),
        Binding("semicolon", "comment", "Comment", show=False, key_display=";",
                tooltip="Comment the flow (~comment filters on it)", id="comment"),
        Binding("colon", "prompt", "Command", show=False, key_display=":",
                tooltip="Command prompt: any command, Tab completes, ↑↓ history", id="prompt"),
        Binding("O", "options", "Options", show=False, tooltip="Options: view, change, save to the config file",
                id="options"),
        Binding("E", "event_log", "Events", show=False, tooltip="Event log: start-up facts, warnings, errors",
                id="event_log"),
        Binding("W", "wireguard", "WireGuard", show=False,
                tooltip="WireGuard mode: the client configuration and its QR code", id="wireguard"),
        Binding("minus", "toggle_pane", "Side pane", show=False, key_display="-",
                tooltip="Show / hide the detail pane beside the table (wide terminals)", id="side_pane"),
        Binding("left_square_bracket", "resize_pane(-1)", "Narrower pane", show=False, key_display="[",
                tooltip="Make the side pane narrower", id="pane_narrower"),
        Binding("right_square_bracket", "resize_pane(1)", "Wider pane", show=False, key_display="]",
                tooltip="Make the side pane wider", id="pane_wider"),
    ] + INTERCEPT_BINDINGS

    DEFAULT_CSS = """
    MainScreen { layout: vertical; }
    MainScreen #main { height: 1fr; layout: vertical; }
    MainScreen #main.wide { layout: horizontal; }
    MainScreen #flows { height: 1fr; width: 1fr; }
    MainScreen #detail { display: none; }
    MainScreen #main.wide #detail { display: block; width: 45%; height: 1fr; border-left: vkey $panel-lighten-2; }
    """

    def __init__(self, view: FlowView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        with Container(id="main"):
            table = FlowTable(self.view, id="flows")
            table.on_moved = self._focus_moved
            yield table
            yield FlowDetail(id="detail")
        bar = FilterBar(self.view, id="filterbar")
        status = StatusLine(self.view, id="status")
        status.toggle_key = FILTER_TOGGLE_KEY
        bar.replaces = status
        keys = KeyBar()
        bar.error_replaces = keys
        bar.on_changed = self._filter_changed
        bar.on_closed = self._filter_closed
        yield bar
        yield status
        yield keys

    def on_mount(self) -> None:
        self.query_one(FlowTable).focus()
        self.app_.main_screen_ready()

    def on_resize(self) -> None:
        self.app.update_layout()  # type: ignore[attr-defined]

    @property
    def app_(self) -> OmniProxyApp:
        return self.app  # type: ignore[return-value]

    def action_command(self, name: str, *args: str) -> None:
        self.app_.run_command(name, *args)

    def action_filter(self) -> None:
        self.query_one(FilterBar).open()

    def action_say(self, name: str) -> None:
        self.app_.run_command(name, quiet=False)

    def action_intercept_prompt(self) -> None:
        self.app_.prompt_intercept()

    def action_inbox(self) -> None:
        self.app_.open_inbox()

    def action_edit(self) -> None:
        flow = self.app_.view.focus
        if flow is None:
            self.app_.notify("no flow selected", severity="warning")
            return
        self.app_.edit_flow(flow)

    def action_clear(self) -> None:
        self.app_.confirm_clear()

    def action_export(self) -> None:
        self.app_.choose_export()

    def action_copy_curl(self) -> None:
        self.app_.run_command("export.clip", "curl", quiet=False)

    def action_export_har(self) -> None:
        self.app_.choose_har()

    def action_clear_unmarked(self) -> None:
        self.app_.confirm_clear_unmarked()

    def action_comment(self) -> None:
        self.app_.prompt_comment()

    def action_prompt(self) -> None:
        self.app_.prompt_command()

    def action_options(self) -> None:
        self.app_.open_options()

    def action_event_log(self) -> None:
        self.app_.open_event_log()

    def action_wireguard(self) -> None:
        self.app_.open_wireguard()

    def action_toggle_pane(self) -> None:
        self.app_.toggle_side_pane()

    def action_resize_pane(self, step: int) -> None:
        self.app_.resize_side_pane(step)

    def action_save(self, name: str) -> None:
        self.app_.run_command(name, quiet=False)

    def action_replay(self) -> None:
        # as mitmproxy's `r` does on marked flows: the marks say which, else the focused flow
        selector = "@marked" if self.app_.view.marked() else "@focus"
        self.app_.run_command("replay.client", selector, quiet=False)

    def action_rules(self) -> None:
        self.app_.open_rules()

    def action_throttle(self) -> None:
        self.app_.open_throttle()

    def action_save_flows(self) -> None:
        self.app_.choose_save()

    def action_load_capture(self) -> None:
        self.app_.choose_load()

    def action_switch_pane(self) -> None:
        main = self.query_one("#main")
        table = self.query_one(FlowTable)
        if not main.has_class("wide"):
            focus_now(table)
            return
        if table.has_focus:
            focus_now(self.query_one("#detail"))
        else:
            focus_now(table)

    def _filter_changed(self) -> None:
        # while typing, the pane beside the table catches up at its own pace (it is rebuilt for
        # each new focus otherwise, on every preview)
        self.app_.sync_view(scroll=True, throttle_detail=self.query_one(FilterBar).is_open)

    def _filter_closed(self, committed: bool) -> None:
        focus_now(self.query_one(FlowTable))

    def _focus_moved(self) -> None:
        self.app_.sync_view(scroll=False)

    @on(FlowTable.Open)
    def _open(self, event: FlowTable.Open) -> None:
        self.app_.open_detail(event.flow)


class OmniProxyApp(App[int]):
    """OmniProxy's terminal UI. `start_proxy=False` runs without a proxy (tests, snapshots, demos):
    feed flows with `on_flow_event("add" | "update" | "done", flow)`, which publishes them through
    the engine's store as the proxy would."""

    CSS_PATH = "app.tcss"
    TITLE = "OmniProxy"
    COMMANDS = App.COMMANDS | {FlowCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="quit", tooltip="Quit (asks when flows are only in memory); in the "
                "detail, the options and the event log q goes back"),
        Binding("question_mark", "help", "Help", key_display="?", id="help"),
    ]
    # commands whose free-form argument is typed in the UI rather than in the palette
    INTERACTIVE_COMMANDS: ClassVar[dict[str, str]] = {"view.filter.set": "open_filter", "rules.list": "open_rules",
                                                      "throttle.custom": "open_throttle",
                                                      "capture.load": "choose_load",
                                                      "flow.comment": "prompt_comment",
                                                      "option.set": "open_options", "option.reset": "open_options",
                                                      "wireguard.config": "open_wireguard"}

    # commands that, typed bare at the : prompt, open their screen rather than print their result
    SCREEN_COMMANDS: ClassVar[dict[str, str]] = {"wireguard.config": "open_wireguard"}

    def __init__(self, options: Options, *, start_proxy: bool = True, clock: Callable[[], float] = time.time,
                 tick_hz: float = TICK_HZ, read: str | None = None,
                 read_batches: Iterator[list[Flow]] | None = None, config_path: Path | None = None) -> None:
        super().__init__()
        # -r FILE: opened once the screen is up; `read_batches` is the file already opened (and its
        # first batch read) by the CLI, so a garbled file was a one-line error before the UI started
        self._read = read
        self._read_batches = read_batches
        self.exit_notes: list[str] = []  # printed by run_app once the terminal is restored
        self.options = options
        # the engine owns the flows and enforces --max-flows; the view mirrors it (same bound)
        self.view = FlowView(options.max_flows)
        self.engine: EngineClient = LocalEngine(options, on_error=self._engine_error)
        self.ctx = AppContext(view=self.view, options=options, app=self, engine=self.engine,
                              config_path=config_path)
        self.command_history: list[str] = []  # the : prompt's, newest last (bounded by the prompt)
        self.comment_history: list[str] = []
        # remembered across runs (~/.omniproxy/ui.json): theme, side pane shown and its width
        saved = uistate.load()
        if isinstance(saved.get("theme"), str) and saved["theme"] in self.available_themes:
            self.theme = saved["theme"]
        self.side_pane = saved.get("side_pane") is not False
        width = saved.get("pane_width")
        self.pane_width = width if width in PANE_WIDTHS else PANE_WIDTH
        self.startup_error: Exception | None = None
        self._signals: list[int] = []  # stop signals whose handlers this app installed
        self.stopped_by_signal: str | None = None
        self._start_proxy = start_proxy
        self._clock = clock
        self._tick_hz = tick_hz
        self._stopped = False
        self._pending_add: list[Flow] = []
        self._pending_upd: dict[int, Flow] = {}
        self._pending_del: set[int] = set()
        self._unsubscribe: Callable[[], None] | None = self.engine.subscribe(self._on_engine_event)
        self._intercepted: set[int] = set()
        self._rate: deque[tuple[float, int]] = deque()
        self._adds_total = 0
        self._unsaved = False
        self._drawn_version = -1
        self._detail_flow: Flow | None = None
        self._detail_stale = False
        self._detail_scheduled = False
        self._detail_shown_at = 0.0
        self._counters_at = 0.0
        self._ticks_unpainted = 0
        self._loop_thread = threading.get_ident()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.gc_policy = GcPolicy()
        self._address = f"{options.host}:{options.port}"
        self._state = "starting" if start_proxy else "running"
        self.last_job_message = ""
        self.no_server = False  # -n/--no-server: run without a proxy (set before run())
        self._loading = False  # a load is handing flows to the store (see run_loading)
        self._leaving = False  # exit() was called
        self._loaded_ids: set[int] = set()  # loaded flows not yet folded into the view

    # ---------------------------------------------------------------- lifecycle

    def get_default_screen(self) -> Screen:
        return MainScreen(self.view)

    async def on_load(self) -> None:
        # Start the proxy before the terminal switches to the UI: a StartupError then exits
        # without ever drawing a screen, and the CLI prints the one-line reason.
        self._loop_thread = threading.get_ident()
        self._loop = asyncio.get_running_loop()
        if self._start_proxy:
            await self._start()
        elif self.no_server:  # -n: nothing listens; the header says so, q and SIGTERM still leave cleanly
            self._state = "not proxying (-n)"
            self._install_stop_signals()

    def on_mount(self) -> None:
        # Runs before the main screen is composed: no widget queries here.
        self.set_interval(1 / self._tick_hz, self._tick, name="flow-refresh")
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        # find the clipboard routes now (may ask tmux), not on the first copy
        self.run_worker(clipboard.routes, thread=True, group="clipboard", exit_on_error=False)

    def _theme_changed(self, theme: Any) -> None:
        error = uistate.save(theme=theme.name)
        if error:
            self.notify(error, severity="warning")

    def main_screen_ready(self) -> None:
        if self._start_proxy:  # the empty table says how to send it a first flow
            self.get_screen_main().query_one(FlowTable).empty_message = _WG_EMPTY \
                if self._address.startswith("WireGuard") else (
                f"No flows yet. Point a client at the proxy, e.g.\n"
                f"  curl -x http://{self._address} http://example.com/")
        self.update_layout()
        self.sync_view(scroll=True)
        if self._read is not None:
            path, batches = self._read, self._read_batches
            self._read = self._read_batches = None
            self.load_capture(path, batches)

    @property
    def is_leaving(self) -> bool:
        """Quitting: the engine is stopping or stopped, or the app's exit was asked for."""
        return self._stopped or self._leaving

    def exit(self, *args: Any, **kwargs: Any) -> None:
        self._leaving = True  # a load in a worker thread stops at its next batch (AppContext.run_on_loop)
        super().exit(*args, **kwargs)

    @property
    def proxy(self) -> EngineClient:
        """The engine (its `address`, `stats`, ...); the older name, kept for callers and tests."""
        return self.engine

    async def _start(self) -> None:
        engine = self.engine
        try:
            await engine.start()
        except StartupError as exc:
            self.startup_error = exc
            self._stopped = True
            self.exit(2, return_code=2)
            return
        host, port = engine.address
        shown_host = f"[{host}]" if ":" in host else host
        self._address, self._state = f"{shown_host}:{port}", "running"
        if engine.wireguard_config:  # --mode wireguard: the address is the WireGuard server's (UDP)
            self._address = f"WireGuard {shown_host}:{port}"
            with contextlib.suppress(LookupError):  # else main_screen_ready says it
                self.get_screen_main().query_one(FlowTable).empty_message = _WG_EMPTY
        self._update_header()
        self._install_stop_signals()

        if engine.first_run:
            self.notify(f"New CA: {engine.ca_cert_path}\nTrust it for HTTPS: omniproxy-tui ca info",
                        title="First run", timeout=15)

    async def _stop_proxy(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self.engine.stop()  # drains the capture queue and closes sinks (HAR written)

    def _install_stop_signals(self) -> None:
        """SIGHUP (the SSH session or terminal is gone) and SIGTERM leave the app as `q` does:
        the engine stops and the capture is drained on unmount, instead of the process dying
        with flows still queued."""
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may own signal handlers
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM) if hasattr(signal, "SIGHUP") else ():
            try:
                loop.add_signal_handler(sig, self._stop_by_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            self._signals.append(sig)

    def _stop_by_signal(self, sig: int) -> None:
        self.stopped_by_signal = signal.Signals(sig).name
        self.exit(0)

    async def on_unmount(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals = []
        await self._stop_proxy()
        self.gc_policy.release()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseDown)):
            self.gc_policy.busy()
        await super().on_event(event)

    def _engine_error(self, message: str) -> None:
        # the engine may report from a writer thread, which must not wait for the UI
        if threading.get_ident() == self._loop_thread or self._loop is None:
            self.notify(message, severity="error", timeout=10)
        else:
            self._loop.call_soon_threadsafe(partial(self.notify, message, severity="error", timeout=10))

    # ---------------------------------------------------------------- flow events → view

    def on_flow_event(self, kind: str, flow: Flow) -> None:
        """Publish a flow as the proxy's connection code does ("add", "update", "done"): for runs
        without a proxy (tests, snapshots, demos). It goes through the engine's store like a
        proxied flow, and comes back as an engine event."""
        engine = self.engine
        if not isinstance(engine, LocalEngine):
            raise TypeError("on_flow_event needs an in-process engine")
        engine.inject(kind, flow)

    def _on_engine_event(self, kind: str, flow_id: int, flow: Flow) -> None:
        """Engine subscriber: record only; the timer applies the batch. New and old are told apart
        by the event (the store knows flows by id), never by the flow object."""
        if kind == "added":
            self._pending_add.append(flow)
            if self._loading:
                self._loaded_ids.add(flow_id)
        elif kind == "updated":
            self._pending_upd[flow_id] = flow
        else:  # "removed": dropped by --max-flows, or deleted
            self._pending_del.add(flow_id)
            if self._loaded_ids:
                self._loaded_ids.discard(flow_id)
            self._pending_upd.pop(flow_id, None)
            self._intercepted.discard(flow_id)
            return
        if flow.state == INTERCEPTED:
            self._intercepted.add(flow_id)
        elif self._intercepted:
            self._intercepted.discard(flow_id)

    def _tick(self) -> None:
        if self.view.stepping:  # the filter bar's preview is under way: flows wait for it (ms)
            return
        if not self.screen_stack:  # leaving: the screens are gone, a last timer tick has nothing to paint
            return
        if self._pending_add or self._pending_upd or self._pending_del:
            self.gc_policy.busy()
        self.gc_policy.tick()
        if self._skip_paint():
            # Under heavy traffic the batch waits for the tick that paints it. Folded in now, the
            # dropped oldest flows would shift the rows under the table's scroll offset, and the
            # frame of a key pressed meanwhile would show other rows than the cursor's.
            return
        adds, self._pending_add = self._pending_add, []
        updates = self._pending_upd
        if updates:
            self._pending_upd = {}
        view = self.view
        gone = self._pending_del
        if gone:
            # Out first, then the new ones in: the view then holds exactly what the store keeps,
            # and its own --max-flows bound drops nothing the store still has.
            self._pending_del = set()
            if adds:
                adds = [f for f in adds if f.id not in gone]
            view.delete([f for f in map(view.get, gone) if f is not None])
        if adds:
            view.add_many(adds)
            self._adds_total += len(adds)
            loaded = self._loaded_ids
            if not loaded:
                self._unsaved = True
            else:  # flows read from a file are saved already
                if any(f.id not in loaded for f in adds):
                    self._unsaved = True
                loaded.difference_update(f.id for f in adds)
        if updates:
            view.update_many(updates.values())
        now = self._clock()
        self._rate.append((now, len(adds)))
        while self._rate and self._rate[0][0] < now - 2.0:
            self._rate.popleft()
        self._refresh_pushed_detail(updates)
        if self._detail_flow is not None and self._detail_flow.id in updates:
            self._detail_stale = True  # the pane beside the table shows it: re-read it when painting
        if not isinstance(self.screen, MainScreen) and not updates and not adds and not gone:
            return
        counters = self.flow_rate() < PAINT_HZ_UNDER_LOAD[-1][0] or \
            time.monotonic() - self._counters_at >= COUNTERS_INTERVAL
        if view.version != self._drawn_version:
            self.sync_view(scroll=view.follow, throttle_detail=True, counters=counters)
        else:
            if counters:
                self._update_counters()
            self._schedule_detail(throttle=True)  # a change held back by the throttle

    def flow_rate(self) -> float:
        """New flows per second over the last ~2 s of ticks; 0 with a frozen clock (snapshots)."""
        elapsed = self._rate[-1][0] - self._rate[0][0] if self._rate else 0.0
        return sum(n for _, n in list(self._rate)[1:]) / max(elapsed, 1.0) if elapsed > 0 else 0.0

    def _skip_paint(self) -> bool:
        """Under heavy traffic paint only every n-th tick (see PAINT_HZ_UNDER_LOAD)."""
        rate = self.flow_rate()
        hz = next((hz for floor, hz in PAINT_HZ_UNDER_LOAD if rate >= floor), self._tick_hz)
        every = max(1, round(self._tick_hz / hz))
        if every > 1:
            self._ticks_unpainted += 1
            if self._ticks_unpainted < every:
                return True
        self._ticks_unpainted = 0
        return False

    def _update_header(self) -> None:
        try:
            header = self.get_screen_main().query_one(HeaderBar)
        except Exception:
            return
        opts = self.options
        ctl = self.engine.intercept
        header.set_info(flows=self.view.total, rate=self.flow_rate(), intercepted=len(self._intercepted),
                        breakpoints=ctl is not None and ctl.active,
                        address=self._address, state=self._state, mode="MITM" if opts.mitm else "no-MITM",
                        capture=capture_label(opts.output, opts.db), throttle=throttle_label(self.engine.throttle))

    def get_screen_main(self) -> MainScreen:
        for s in self.screen_stack:
            if isinstance(s, MainScreen):
                return s
        raise LookupError("main screen not mounted")

    def sync_view(self, scroll: bool = True, throttle_detail: bool = False, counters: bool = True) -> None:
        """Repaint table, status line and detail after the view changed."""
        try:
            main = self.get_screen_main()
            table = main.query_one(FlowTable)
        except Exception:
            return
        self._drawn_version = self.view.version
        table.refresh_view(scroll_to_focus=scroll)
        if counters:
            self._update_counters()
        self._schedule_detail(throttle=throttle_detail)

    def _update_counters(self) -> None:
        try:
            status = self.get_screen_main().query_one(StatusLine)
        except (LookupError, NoMatches):  # not composed yet
            return
        self._counters_at = time.monotonic()
        status.update_view()
        self._update_header()

    # ---------------------------------------------------------------- detail

    @property
    def is_wide(self) -> bool:
        """The detail sits beside the table: wide enough, and the side pane not switched off (-)."""
        return self.size.width >= WIDE and self.side_pane

    def update_layout(self) -> None:
        try:
            main = self.get_screen_main().query_one("#main")
            detail = main.query_one("#detail")
        except Exception:
            return
        wide = self.is_wide
        if not wide and detail.has_focus_within:
            focus_now(main.query_one(FlowTable))
        main.set_class(wide, "wide")
        detail.styles.width = f"{self.pane_width}%"
        self._detail_flow = None
        self._schedule_detail()

    def toggle_side_pane(self) -> None:
        if self.size.width < WIDE:
            self.notify(f"the side pane needs a terminal {WIDE} columns wide (this one: {self.size.width}); "
                        "⏎ opens the detail", severity="warning")
            return
        self.side_pane = not self.side_pane
        self._remember(side_pane=self.side_pane)
        self.update_layout()

    def resize_side_pane(self, step: int) -> None:
        if not self.is_wide:
            self.notify("no side pane shown (- shows it on wide terminals)", severity="warning")
            return
        i = PANE_WIDTHS.index(self.pane_width) + step
        if not 0 <= i < len(PANE_WIDTHS):
            return
        self.pane_width = PANE_WIDTHS[i]
        self._remember(pane_width=self.pane_width)
        self.update_layout()

    def _remember(self, **changes: Any) -> None:
        error = uistate.save(**changes)
        if error:
            self.notify(error, severity="warning")

    def _schedule_detail(self, throttle: bool = False) -> None:
        """Bring the pane beside the table up to date with the focused flow, after the next frame:
        a key's effect on the table is on screen before the pane is rebuilt."""
        if not self.is_wide or self._detail_scheduled:
            return
        if self.view.focus is self._detail_flow and not self._detail_stale:
            return
        if throttle and time.monotonic() - self._detail_shown_at < DETAIL_FOLLOW_INTERVAL:
            return  # a later tick shows it
        self._detail_scheduled = True
        self.call_after_refresh(self._show_detail)

    def _show_detail(self) -> None:
        self._detail_scheduled = False
        if not self.is_wide:
            return
        try:
            detail = self.get_screen_main().query_one("#detail", FlowDetail)
        except Exception:
            return
        flow = self.view.focus
        if self._detail_stale or flow is not self._detail_flow:
            self._detail_flow, self._detail_stale = flow, False
            self._detail_shown_at = time.monotonic()
            detail.show_flow(flow)

    def _refresh_pushed_detail(self, updates: dict[int, Flow]) -> None:
        """A DetailScreen on top shows one flow: tell it when that flow changed."""
        if not updates or isinstance(self.screen, MainScreen):
            return
        flow = getattr(self.screen, "flow", None)
        refresh = getattr(self.screen, "refresh_flow", None)
        if isinstance(flow, Flow) and flow.id in updates and callable(refresh):
            refresh()

    @on(FlowDetail.StepFlow)
    def _detail_step_flow(self, event: FlowDetail.StepFlow) -> None:
        """space / J / K in the detail: the view.focus.next/prev commands, from the flow the detail
        shows (following new flows may have moved the list's focus since it opened)."""
        event.stop()
        view = self.view
        if event.current is not None and view.index_of(event.current) is not None:
            view.set_focus(event.current)
        name = "view.focus.next" if event.delta > 0 else "view.focus.prev"
        if self.run_command(name) is None or view.focus is None:
            return  # at an end: run_command said so
        if isinstance(self.screen, DetailScreen):
            self.screen.show_flow(view.focus)
        # wide: run_command's sync_view scheduled the pane beside the table, which keeps the focus

    def open_detail(self, flow: Flow) -> None:
        if self.is_wide:
            focus_now(self.get_screen_main().query_one("#detail"))
            return
        self.push_screen(DetailScreen(flow))

    # ---------------------------------------------------------------- commands

    def run_command(self, name: str, *args: Any, quiet: bool = True,
                    after: Callable[[], Any] | None = None, covers_all: bool | None = None) -> Any:
        """Run a named command; errors become notifications, jobs run in a worker thread."""
        try:
            result = self.engine.run_command(name, self.ctx, *args)
        except CommandError as exc:
            self.notify(str(exc), severity="warning")
            return None
        if isinstance(result, Job):
            self._run_job(result, name, after, covers_all)
        elif result and (not quiet or name.startswith("export.")):
            self.notify(str(result))
        self.sync_view(scroll=True)
        return result

    def run_command_line(self, line: str, notify_error: bool = True) -> str | None:
        """Run a typed command line (the : prompt, the palette). Returns the one-line error, or None
        when it ran (its message is a notification)."""
        self.ctx.engine = self.engine
        screen = self.SCREEN_COMMANDS.get(line.strip())
        if screen is not None:  # a command whose answer is a screen (typed at :, not just picked)
            self.call_after_refresh(getattr(self, screen))  # once the prompt has closed
            return None
        try:
            result = registry.execute(self.ctx, line)
        except CommandError as exc:
            if notify_error:
                self.notify(str(exc), severity="warning")
            return str(exc)
        if isinstance(result, Job):
            self._run_job(result, line.split()[0], None)
        elif result:
            self.notify(str(result))
        self.sync_view(scroll=True)
        return None

    def run_command_checked(self, name: str, *args: Any) -> str | None:
        """Run a named command for a prompt: its message as a notification, its error returned
        (the prompt shows it under the input and stays open)."""
        try:
            result = self.engine.run_command(name, self.ctx, *args)
        except CommandError as exc:
            return str(exc)
        if isinstance(result, Job):
            self._run_job(result, name, None)
        elif result:
            self.notify(str(result))
        self.sync_view(scroll=True)
        return None

    def prompt_command(self) -> None:
        """The : prompt: any command with its arguments; Tab completes, ↑↓ history."""

        def submit(line: str) -> str | None:
            return self.run_command_line(line, notify_error=False) if line.strip() else None

        self.push_screen(PromptScreen(
            ":", submit, complete=command_completer(registry), history=self.command_history,
            help="a command and its arguments · Tab completes · ↑↓ history · ⏎ run · esc cancel",
            describe=lambda text: command_help(registry, text), placeholder="e.g. view.sort size"))

    def prompt_comment(self) -> None:
        """; comments the focused flow (prefilled with its comment; empty removes it)."""
        flow = self.view.focus
        if flow is None:
            self.notify("no flow selected", severity="warning")
            return

        def submit(text: str) -> str | None:
            error = self.run_command_checked("flow.comment", text, str(flow.id))
            if error is None and flow is self._detail_flow:
                self._detail_stale = True  # the pane beside the table shows the comment too
                self._schedule_detail()
            return error

        self.push_screen(PromptScreen(
            f"comment #{flow.id}: ", submit, value=flow.comment, history=self.comment_history,
            help="⏎ keep (empty: remove the comment) · esc cancel · ~comment filters on it"))

    def open_options(self) -> None:
        self.push_screen(OptionsScreen(self))

    def open_event_log(self) -> None:
        self.push_screen(EventLogScreen(self.engine.events))

    def open_wireguard(self) -> None:
        conf = self.engine.wireguard_config
        if not conf:
            self.notify("Not in WireGuard mode: start with --mode wireguard", severity="warning")
            return
        self.push_screen(WireGuardScreen(conf))

    def _run_job(self, job: Job, name: str, after: Callable[[], Any] | None, covers_all: bool | None = None) -> None:
        if covers_all is None:
            covers_all = len(self.view) == self.view.total
        adds_at_start = self._adds_total

        def done(message: str) -> None:
            if covers_all and self._adds_total == adds_at_start and name in _SAVES:
                self._unsaved = False
            self.last_job_message = message
            self.notify(message, title="Saved" if name in _SAVES else "Done", timeout=8)
            if after is not None:
                after()

        def work() -> None:
            try:
                message = job.fn()
            except JobCancelled:
                return  # the app is leaving: nobody to tell
            except Exception as exc:  # a full disk or unwritable directory: tell, don't crash
                self.call_from_thread(self.notify, f"{job.label} failed: {exc}", severity="error", timeout=10)
                return
            self.call_from_thread(done, message)

        self.run_worker(work, name=job.label, group="jobs", thread=True, exit_on_error=False)

    def open_rules(self) -> None:
        if not isinstance(self.screen, RulesScreen):
            self.push_screen(RulesScreen())

    def open_throttle(self) -> None:
        """The throttle panel (T); it applies its choice through the throttle.* commands."""
        th = self.engine.throttle
        if th is None:
            self.notify("throttling is not available with this engine", severity="warning")
            return
        if isinstance(self.screen, ThrottlePanel):
            return

        def run(name: str, *args: str) -> Any:
            return self.engine.run_command(name, self.ctx, *args)

        self.push_screen(ThrottlePanel(run, th.profile, th.filter_expr, th.status()),
                         lambda _: self._update_header())

    def open_filter(self) -> None:
        self.get_screen_main().query_one(FilterBar).open()

    def confirm_clear(self) -> None:
        n = self.view.total
        if n == 0:
            self.notify("nothing to clear")
            return

        def answer(key: str | None) -> None:
            if key == "y":
                self.run_command("view.clear", quiet=False)

        self.push_screen(ConfirmScreen("Clear all flows?", f"Remove all {n:,} flows from the view. Capture "
                                       "files and databases keep them.", {"y": "clear", "n": "keep"}), answer)

    def confirm_clear_unmarked(self) -> None:
        """Z: clear all but the marked flows, asking first as z does."""
        n = self.view.total
        marked = sum(1 for f in self.view.all_flows() if f.marked)
        if n - marked == 0:
            self.notify("nothing to clear: every flow is marked" if n else "nothing to clear")
            return

        def answer(key: str | None) -> None:
            if key == "y":
                self.run_command("view.clear_unmarked", quiet=False)

        gone = n - marked
        self.push_screen(ConfirmScreen(
            "Clear unmarked flows?", f"Remove {gone:,} flow{'s' * (gone != 1)}, keep {marked:,} marked. "
            "Capture files and databases keep them all.", {"y": "clear", "n": "keep"}), answer)

    def choose_export(self) -> None:
        flow = self.view.focus
        if flow is None:
            self.notify("no flow selected", severity="warning")
            return

        def answer(fmt: str | None) -> None:
            if fmt:
                self.run_command("export.clip", fmt, quiet=False)

        label = f"#{flow.id} {flow.request.method} {flow.request.url}"
        self.push_screen(ExportScreen(export_formats(), label[:70]), answer)

    def choose_har(self) -> None:
        """HAR export as Chrome DevTools offers it: sanitized (the default, Enter) or with sensitive data."""
        if self.view.total == 0 or len(self.view) == 0:
            self.notify("no flows to save", severity="warning")
            return

        def answer(key: str | None) -> None:
            if key == "s":
                self.run_command("export.har", quiet=False)
            elif key == "w":
                self.run_command("export.har.sensitive", quiet=False)

        n = len(self.view)
        self.push_screen(ConfirmScreen(
            "Export HAR", f"{n:,} shown flow{'s' * (n != 1)}. Sanitized masks cookies, Authorization and the "
            "other secret headers; with sensitive data keeps them (share that file with care).",
            {"s": "sanitized", "w": "with sensitive data"}), answer)

    # ---------------------------------------------------------------- breakpoints

    def prompt_intercept(self) -> None:
        ctl = self.engine.intercept
        if ctl is None:
            self.notify("breakpoints need a running proxy", severity="warning")
            return

        def answer(expr: str | None) -> None:
            if expr is not None:
                self.run_command("intercept.set", expr, quiet=False)
                self._update_header()

        self.push_screen(InterceptPrompt(ctl.expr), answer)

    def open_inbox(self) -> None:
        if not isinstance(self.screen, InboxScreen):
            self.push_screen(InboxScreen())

    def _can_edit(self, flow: Flow) -> bool:
        ctl = self.engine.intercept
        if flow.is_finished or (ctl is not None and ctl.is_paused(flow)):
            return True
        self.notify(f"flow #{flow.id} is in flight: only paused or finished flows can be edited "
                    "(set breakpoints with i)", severity="warning")
        return False

    def edit_flow(self, flow: Flow, text: str | None = None) -> None:
        """The editor on the flow's paused part (or, for a finished flow, its response or request)."""
        if self._edit_ws_message(flow):
            return
        if self._can_edit(flow):
            self.push_screen(EditorScreen(flow, text))

    def _edit_ws_message(self, flow: Flow) -> bool:
        """A flow paused at a WebSocket or TCP message: its text in a prompt (True), not the HTTP editor."""
        ctl = self.engine.intercept
        p = ctl.paused.get(flow.id) if ctl is not None else None
        if p is None or p.phase != "message":
            return False

        def submit(text: str) -> str | None:
            return self.run_command_checked("websocket.message.edit", text, str(flow.id))

        self.push_screen(PromptScreen("message: ", submit, value=p.message.content.decode("utf-8", "replace"),
                                      help="⏎ replace the paused message (a resumes it) · esc cancel"))
        return True

    async def edit_flow_external(self, flow: Flow) -> None:
        """E in the detail view: straight to $EDITOR; a broken result opens the editor on it."""
        if self._edit_ws_message(flow):
            return
        if not self._can_edit(flow):
            return
        from proxycore.flows.rawedit import EditError, check_text, edit_part, flow_to_text

        part = edit_part(flow)
        text = await self.run_external_editor(flow_to_text(flow, part))
        if text is None:
            return
        try:
            check_text(flow, text, part)
        except EditError as exc:
            screen = EditorScreen(flow, text)
            self.push_screen(screen)
            screen.call_after_refresh(screen.show_error, exc)
            return
        self.run_command("flow.edit.apply", text, part, str(flow.id), quiet=False)

    async def run_external_editor(self, text: str) -> str | None:
        """Hand `text` to $EDITOR (the UI suspends meanwhile; the proxy keeps running on the loop)
        and return what it saved; None when it failed or exited non-zero."""
        editor = os.environ.get("EDITOR") or os.environ.get("VISUAL") or "vi"
        folder = tempfile.mkdtemp(prefix="omniproxy-edit-")  # 0700: the text may hold secrets
        path = os.path.join(folder, "message.http")
        try:
            from proxycore.safefile import write_atomic

            write_atomic(path, text.encode("utf-8", "surrogateescape"))
            argv = [*shlex.split(editor), path]
            try:
                # The loop keeps running while the editor has the terminal (the proxy must not
                # stop): no repaint may reach the stopped driver meanwhile, its writer would block
                # the loop once its queue is full. batch_update holds them until we are back.
                with self.batch_update(), self.suspend():
                    rc = await _wait_editor(argv)
            except SuspendNotSupported:  # no terminal to hand over (headless runs, tests)
                rc = await _wait_editor(argv)
            if rc != 0:
                self.notify(f"$EDITOR ({editor}) exited with {rc}: edit discarded", severity="warning")
                return None
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "surrogateescape")
        except (OSError, ValueError, TimeoutError) as exc:
            self.notify(f"$EDITOR ({editor}) failed: {exc}", severity="error")
            return None
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def choose_save(self) -> None:
        """`w`: save the shown flows; the dialog asks for the path (today's timestamped name) and
        the format (lossless by default)."""
        n = len(self.view)
        if n == 0:
            self.notify("no flows to save", severity="warning")
            return
        now = _dt.datetime.fromtimestamp(self._clock())
        default = default_export_path("flows", self.ctx.cwd, now)
        here = self.ctx.cwd if self.ctx.cwd is not None else Path.cwd()
        stem = str(default.with_suffix("")) if default.parent != here else default.stem

        def answer(result: tuple[str, str] | None) -> None:
            if result:
                fmt, path = result
                self.save_flows(path, fmt)

        self.push_screen(SaveScreen(n, self.view.total, stem, cwd=self.ctx.cwd), answer)

    def save_flows(self, path: str, fmt: str | None = None, selector: str = "@shown",
                   after: Callable[[], Any] | None = None) -> None:
        """Write flows to `path` in `fmt` (None: from the extension, else lossless), off the loop."""
        fmt = fmt or save_format_for(path) or "flows"
        if fmt not in SAVE_FORMATS:
            self.notify(f"unknown save format {fmt!r}", severity="warning")
            return
        self.run_command(SAVE_COMMANDS[fmt], path, selector, quiet=False, after=after,
                         covers_all=True if selector == "@all" else None)

    def choose_load(self) -> None:
        """`L`: open a capture from inside the app."""

        def answer(result: tuple[str, str] | None) -> None:
            if result:
                self.load_capture(result[1])

        self.push_screen(LoadScreen(self.ctx.cwd), answer)

    def load_capture(self, path: str, batches: Iterator[list[Flow]] | None = None) -> None:
        """Open a capture: parsed in a worker thread, handed to the engine's store in batches."""
        try:
            job = load_job(self.ctx, path, batches)
        except CommandError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        self._run_job(job, "capture.load", None)

    def run_loading(self, fn: Callable[[], Any]) -> Any:
        """Run a load's hand-over on the loop, noting the flows it adds: they are in a file already,
        so they alone do not make quitting ask to save."""
        self._loading = True
        try:
            return fn()
        finally:
            self._loading = False

    def copy_text(self, text: str, local: bool = True) -> None:
        """OSC 52 (works over SSH, and in tmux with set-clipboard on) plus the local clipboard when
        there is one."""
        self.copy_to_clipboard(text)
        if local and not self.is_headless:
            self.run_worker(partial(_pyperclip_copy, text), thread=True, group="clipboard", exit_on_error=False)

    # ---------------------------------------------------------------- help / quit

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        sections = [
            ("Flow list", binding_rows([b for b in MainScreen.BINDINGS if b not in INTERCEPT_BINDINGS])),
            ("Moving", binding_rows(FlowTable.BINDINGS)),
            ("Detail (⏎ on a flow)", [("1 2 3 4 5", "Request (Stream: TCP), Response, Timing, Raw, Messages (WebSocket, TCP) tab"),
                                      ("tab shift+tab", "next / previous tab")]
             + [r for r in binding_rows(FlowDetail.BINDINGS) if r[0] not in "12345"]
             + [("j k g G space", "scroll"), ("esc q", "back to the flow list (q does not quit here)")]),
            ("Messages tab (WebSocket and TCP flows)", binding_rows(MessagesPane.BINDINGS)
             + [("a", "resume the paused message"), ("↑ ↓", "move"), ("m", "(a message) cycle the content view")]),
            ("Anywhere", binding_rows(self.BINDINGS) + [("ctrl+p", "command palette (every command, themes)")]),
            ("Filter bar (f)", [("⏎", "keep the filter"), ("esc", "restore the previous filter"),
                                ("↑ ↓", "filter history"), (FILTER_TOGGLE_KEY, "(in the list) filter off / on"),
                                ("syntax", "the Filter language table below (in the bar ? is typed as ?)")]),
            ("Prompts (: ; and option values)", [("tab", "complete (again: next candidate)"),
                                                 ("↑ ↓", "history"), ("⏎", "run / keep"), ("esc", "cancel")]),
            ("Options (O)", binding_rows(OptionsScreen.BINDINGS)),
            ("Event log (E)", binding_rows(EventLogScreen.BINDINGS) + [("j k g G", "scroll")]),
            ("WireGuard (W)", binding_rows(WireGuardScreen.BINDINGS) + [("j k", "scroll")]),
            ("Status line", [("[shown/total]", "flows the filter and marked-only let through / flows kept "
                              "(mitmproxy shows cursor/total there; our cursor is the highlighted row)"),
                             ("sizes", "bytes in powers of 1024: 912B 6.2k 3.4M; counts with separators: 1,234")]),
            ("Breakpoints", binding_rows(INTERCEPT_BINDINGS) + [
                ("E", "(detail) edit the paused flow in $EDITOR"),
                ("u", "(detail) an edited flow: edited / original / diff"),
                ("ctrl+s", "(editor) check and apply · esc cancel"),
                ("ctrl+e", "(editor) edit in $EDITOR, re-checked on return"),
                ("ctrl+r", "(editor) turn the edit into a rewrite rule")]),
            ("Rewrite rules (R)", binding_rows(RulesScreen.BINDINGS)),
        ]
        self.push_screen(HelpScreen(sections))

    def needs_quit_confirmation(self) -> bool:
        """Ask only when flows exist nowhere else: no capture file/db and not saved since they arrived."""
        opts = self.options
        return not (opts.output or opts.db) and self._unsaved and self.view.total > 0

    async def action_quit(self) -> None:
        if getattr(self.screen, "purpose", None) == "quit":  # quit pressed again on the question: yes
            await self.shutdown()
            return
        if not self.needs_quit_confirmation():
            await self.shutdown()
            return

        async def answer(key: str | None) -> None:
            if key == "y":
                await self.shutdown()
            elif key == "h":
                # every flow, not only those the filter shows; where they went is printed on exit
                def saved() -> None:
                    self.exit_notes.append(self.last_job_message)
                    self.call_later(self.shutdown)

                self.run_command("export.har", "", "@all", quiet=False, after=saved, covers_all=True)

        n = self.view.total
        dialog = ConfirmScreen("Quit OmniProxy?", f"{n:,} flow{'s' * (n != 1)} are only in memory (no -o/--db "
                               "capture). Quit anyway, or save them as HAR first?",
                               {"y": "quit", "h": "save HAR and quit", "n": "stay"}, aliases={"q": "y"})
        dialog.purpose = "quit"
        self.push_screen(dialog, answer)

    async def shutdown(self) -> None:
        await self._stop_proxy()
        self.exit(0)


_SAVES = ("export.har", "export.har.sensitive", "export.ndjson", "export.flows")  # writing all flows counts as saved


EDITOR_TIMEOUT = 6 * 3600.0  # a generous bound on one editing session


async def _wait_editor(argv: list[str]) -> int:
    proc = await asyncio.create_subprocess_exec(*argv)
    try:
        return await asyncio.wait_for(proc.wait(), EDITOR_TIMEOUT)
    except TimeoutError:
        proc.kill()
        raise


def _pyperclip_copy(text: str) -> None:
    try:
        import pyperclip

        pyperclip.copy(text)
    except Exception:  # no local clipboard (SSH, no X): OSC 52 already did the job
        pass


def run_app(options: Options, *, read: str | None = None, read_batches: Iterator[list[Flow]] | None = None,
            listen: bool = True, config_path: Path | None = None) -> int:
    """Run the UI until quit. A StartupError is re-raised after the terminal is restored, so the
    CLI prints its one line and exits 2."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    app = OmniProxyApp(options, start_proxy=listen, read=read, read_batches=read_batches, config_path=config_path)
    app.no_server = not listen
    try:
        rc = app.run(loop=loop)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    if app.startup_error is not None:
        raise app.startup_error
    for note in app.exit_notes:  # e.g. where "save and quit" wrote the flows
        print(note, file=sys.stderr)
    return rc if isinstance(rc, int) else 0

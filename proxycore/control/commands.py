"""Named commands with typed arguments: the one place user actions are defined.

Keys in the UI, the command palette, the control API and tests all run these, so each behaviour is
written and tested once. A command is a plain function `fn(ctx, *args)`; it returns a message for
the user (str), None, or a `Job` — slow work (writing files, building HAR) the caller runs off the
event loop and whose result is again a message.

    registry.execute(ctx, "view.sort size")
    registry.call(ctx, "export.clip", "curl")

UI services (clipboard, notifications) come through `CommandContext`; the base class records them,
which is what tests and headless callers use.
"""

from __future__ import annotations

import datetime as _dt
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxycore.flows.flow import Flow
from proxycore.flows.store import snapshot_flows
from proxycore.flows.view import SORT_KEYS, FlowView, flows_by_selector
from proxycore.options import Options

if TYPE_CHECKING:
    from proxycore.control.client import EngineClient

_REQUIRED = object()
_VERSION = "0.1.0"


class CommandError(Exception):
    """A command could not run (unknown name, bad argument, nothing focused); one line for the user."""


@dataclass(frozen=True)
class Arg:
    """One typed argument. `choices` may be a callable so it can follow late-loaded registries."""

    name: str
    type: type = str
    help: str = ""
    default: Any = _REQUIRED
    choices: tuple[str, ...] | Callable[[], Sequence[str]] | None = None
    # values offered by completion (the `:` prompt) without restricting what is accepted; called
    # with the arguments typed before this one (an option's value depends on the option's name)
    complete: Callable[..., Sequence[str]] | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def completions(self, before: Sequence[str] = ()) -> list[str]:
        return self.choice_list() or (list(self.complete(*before)) if self.complete is not None else [])

    def choice_list(self) -> list[str]:
        c = self.choices
        if c is None:
            return []
        return list(c() if callable(c) else c)

    def convert(self, value: Any) -> Any:
        if self.type is bool:
            if isinstance(value, bool) or value is None:
                return value
            v = str(value).strip().lower()
            if v in ("1", "true", "yes", "on"):
                return True
            if v in ("0", "false", "no", "off"):
                return False
            if v in ("", "toggle"):
                return None
            raise CommandError(f"{self.name}: expected true/false/toggle, got {value!r}")
        if self.type is int and not isinstance(value, int):
            try:
                value = int(str(value), 10)
            except ValueError:
                raise CommandError(f"{self.name}: expected a number, got {value!r}") from None
        if self.type is str and not isinstance(value, str):
            value = str(value)
        choices = self.choice_list()
        if choices and value not in choices:
            raise CommandError(f"{self.name}: {value!r} is not one of {', '.join(choices)}")
        return value


@dataclass(frozen=True)
class Command:
    name: str
    fn: Callable[..., Any]
    help: str
    args: tuple[Arg, ...] = ()

    @property
    def signature(self) -> str:
        parts = [self.name]
        for a in self.args:
            choices = a.choice_list()
            shown = "|".join(choices) if choices else a.name
            parts.append(f"<{shown}>" if a.required else f"[{shown}]")
        return " ".join(parts)


class JobCancelled(Exception):
    """A job stopped because its caller went away (the app is quitting): nothing to report."""


@dataclass
class Job:
    """Work a command wants done off the event loop; `fn()` returns the message for the user."""

    label: str
    fn: Callable[[], str]
    count: int = 0  # flows handled so far (a load counts them as it goes)


@dataclass
class CommandContext:
    """What commands act on. The UI subclasses it to reach the real clipboard and notifications."""

    view: FlowView
    options: Options = field(default_factory=Options)
    clipboard: str = ""
    messages: list[tuple[str, str]] = field(default_factory=list)
    cwd: Path | None = None  # where exports go; None: the process's current directory
    # The engine that owns the flows (None: the view is all there is, as in most tests). Deleting
    # or clearing flows in the view frees them there too; a duplicate is kept there too.
    engine: EngineClient | None = None
    # where option.set saves (None: ~/.omniproxy/config.yaml), and the saved values that wait for a
    # restart (the engine reads them only at start)
    config_path: Path | None = None
    pending_options: dict[str, Any] = field(default_factory=dict)

    def copy_to_clipboard(self, text: str) -> str:
        """Copy `text`; returns where it went (for the message). Raises CommandError when it could
        go nowhere (the UI without a reachable clipboard)."""
        self.clipboard = text
        return "the clipboard"

    def notify(self, message: str, severity: str = "information") -> None:
        self.messages.append((severity, message))

    def run_on_loop(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the event loop's thread and return its result; called by jobs running in a
        worker thread (a load hands each batch of flows over with it). Here: at once, in the
        caller's thread, which is what tests and headless callers want."""
        return fn()


class CommandRegistry:
    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def command(self, name: str, help: str, *args: Arg) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._commands:
                raise ValueError(f"command {name} registered twice")
            self._commands[name] = Command(name, fn, help, tuple(args))
            return fn

        return deco

    def __contains__(self, name: object) -> bool:
        return name in self._commands

    def __iter__(self) -> Iterator[Command]:
        return iter(sorted(self._commands.values(), key=lambda c: c.name))

    def get(self, name: str) -> Command:
        try:
            return self._commands[name]
        except KeyError:
            raise CommandError(f"unknown command {name!r}") from None

    def call(self, ctx: CommandContext, name: str, *args: Any) -> Any:
        """Run a command with positional arguments (strings are converted to the declared types)."""
        cmd = self.get(name)
        if len(args) > len(cmd.args):
            raise CommandError(f"{name} takes at most {len(cmd.args)} argument(s): {cmd.signature}")
        values = []
        for i, a in enumerate(cmd.args):
            if i < len(args):
                values.append(a.convert(args[i]))
            elif a.required:
                raise CommandError(f"{name}: missing <{a.name}> ({cmd.signature})")
            else:
                values.append(a.default)
        try:
            return cmd.fn(ctx, *values)
        except (ValueError, OSError) as exc:  # bad selector, unexportable flow, unwritable file
            raise CommandError(f"{name}: {exc}") from None

    def execute(self, ctx: CommandContext, line: str) -> Any:
        """Run a command line such as `view.sort size` or `view.filter.set "~m post"`."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise CommandError(f"cannot parse command line: {exc}") from None
        if not words:
            raise CommandError("empty command")
        cmd = self.get(words[0])
        args = words[1:]
        n = len(cmd.args)
        if n == 1 and len(args) > 1 and cmd.args[0].type is str and not cmd.args[0].choice_list():
            # a lone free-text argument takes the rest of the line verbatim (quotes included, which
            # the filter language understands): `view.filter.set ~h "x y" & ~c 404`
            args = [line.strip().split(None, 1)[1].strip()]
        return self.call(ctx, words[0], *args)

    def run(self, ctx: CommandContext, name: str, *args: Any) -> str | None:
        """Call a command and, if it returns a Job, run it inline (tests, headless callers)."""
        result = self.call(ctx, name, *args)
        if isinstance(result, Job):
            return result.fn()
        return result


registry = CommandRegistry()
command = registry.command

SELECTORS = ("@focus", "@shown", "@all", "@marked", "@unmarked", "@hidden")
_SELECTOR = Arg("flows", str, "@focus, @shown, @all, @marked, @unmarked, @hidden or flow ids", "@focus",
                complete=lambda *_: SELECTORS)


def _flows(ctx: CommandContext, selector: str) -> list[Flow]:
    flows = flows_by_selector(ctx.view, selector)
    if not flows and selector == "@focus":
        raise CommandError("no flow selected")
    return flows


def export_formats() -> list[str]:
    from proxycore.capture.exporters import EXPORT_FORMATS

    return list(EXPORT_FORMATS)


# --------------------------------------------------------------------------- flows


@command("flow.mark", "Toggle the mark on flows (all marked when any was not)", _SELECTOR)
def _flow_mark(ctx: CommandContext, selector: str) -> str:
    flows = _flows(ctx, selector)
    state = ctx.view.toggle_mark(flows)
    return f"{'marked' if state else 'unmarked'} {len(flows):,} flow{'s' * (len(flows) != 1)}"


@command("flow.unmark_all", "Remove every mark")
def _flow_unmark_all(ctx: CommandContext) -> str:
    flows = ctx.view.marked()
    ctx.view.set_marked(flows, False)
    return f"unmarked {len(flows):,} flow{'s' * (len(flows) != 1)}"


@command("flow.delete", "Delete flows from the view (capture files keep them)", _SELECTOR)
def _flow_delete(ctx: CommandContext, selector: str) -> str:
    flows = _flows(ctx, selector)
    n = ctx.view.delete(flows)
    if ctx.engine is not None:
        ctx.engine.remove_flows([f.id for f in flows])
    return f"deleted {n:,} flow{'s' * (n != 1)}"


@command("flow.comment", "Set the comment of flows (empty: remove it)",
         Arg("text", str, "the comment", ""), _SELECTOR)
def _flow_comment(ctx: CommandContext, text: str, selector: str) -> str:
    flows = _flows(ctx, selector)
    text = text.strip()
    for f in flows:
        f.comment = text
    ctx.view.update_many(flows)  # ~comment filters on it: the flow may now (not) match
    ctx.view.version += 1
    n = len(flows)
    return f"{'commented' if text else 'removed the comment of'} {n:,} flow{'s' * (n != 1)}"


@command("flow.duplicate", "Duplicate flows into the view (marked under marked-only, so it shows)", _SELECTOR)
def _flow_duplicate(ctx: CommandContext, selector: str) -> str:
    flows = _flows(ctx, selector)
    for f in flows:
        dup = ctx.view.duplicate(f)
        if ctx.engine is not None:
            ctx.engine.add_flow(dup)
    return f"duplicated {len(flows):,} flow{'s' * (len(flows) != 1)}"


# --------------------------------------------------------------------------- replay


def _engine(ctx: CommandContext) -> EngineClient:
    if ctx.engine is None:
        raise CommandError("replay needs a running proxy")
    return ctx.engine


@command("replay.client", "Replay flows: their current requests go again through the proxy as new "
         "flows marked ↺ (in order)", _SELECTOR)
def _replay_client(ctx: CommandContext, selector: str) -> str:
    flows = _flows(ctx, selector)
    if not flows:
        raise CommandError(f"no flows match {selector}")
    try:
        queued, problems = _engine(ctx).replay(flows)
    except (NotImplementedError, RuntimeError) as exc:
        raise CommandError(f"replay.client: {exc}") from None
    if not queued:
        raise CommandError(problems[0] if len(problems) == 1 else
                           f"nothing to replay: {problems[0]} (and {len(problems) - 1} more)")
    msg = f"replaying {queued} flow{'s' * (queued != 1)}"
    if problems:
        msg += f"; skipped {len(problems)}: {problems[0]}"
    return msg


@command("replay.client.file", "Replay the requests of a capture file (HAR, NDJSON/IR, JSON, flow file) as new flows",
         Arg("path", str, "capture file"))
def _replay_client_file(ctx: CommandContext, path: str) -> str:
    from proxycore.capture.replayfile import read_replay_items

    p = _resolve(ctx, path, "har")
    if not p.is_file():
        raise CommandError(f"replay.client.file: {p}: no such file")
    items = list(read_replay_items(p))  # ValueError: one line naming the file (CommandRegistry.call)
    bad = [f"{it.flow.request.url}: {it.problem}" for it in items if it.problem is not None]
    flows = [it.flow for it in items if it.problem is None]
    if not flows:
        raise CommandError(f"nothing to replay in {p}" + (f": {bad[0]}" if bad else ""))
    try:
        queued, problems = _engine(ctx).replay(flows)
    except (NotImplementedError, RuntimeError) as exc:
        raise CommandError(f"replay.client.file: {exc}") from None
    problems = bad + problems
    msg = f"replaying {queued} request{'s' * (queued != 1)} from {p.name}"
    if problems:
        msg += f"; skipped {len(problems)}: {problems[0]}"
    return msg


@command("replay.client.count", "How many replays are queued or in flight")
def _replay_client_count(ctx: CommandContext) -> str:
    n = _engine(ctx).replay_count()
    return f"{n} replay{'s' * (n != 1)} queued or in flight"


@command("replay.client.stop", "Drop the queued replays (those in flight finish)")
def _replay_client_stop(ctx: CommandContext) -> str:
    n = _engine(ctx).replay_clear()
    return f"dropped {n} queued replay{'s' * (n != 1)}"


# --------------------------------------------------------------------------- view


@command("view.clear", "Remove every flow from the view")
def _view_clear(ctx: CommandContext) -> str:
    n = ctx.view.clear()
    if ctx.engine is not None:
        ctx.engine.clear_flows()
    return f"cleared {n:,} flow{'s' * (n != 1)}"


@command("view.clear_unmarked", "Remove every flow except the marked ones")
def _view_clear_unmarked(ctx: CommandContext) -> str:
    gone = [f for f in ctx.view.all_flows() if not f.marked]
    n = ctx.view.delete(gone)
    if ctx.engine is not None:
        ctx.engine.remove_flows([f.id for f in gone])
    kept = ctx.view.total
    return f"cleared {n:,} flow{'s' * (n != 1)}, kept {kept:,} marked"


@command("view.filter.set", "Show only flows matching a filter expression (empty: no filter)",
         Arg("expr", str, "filter expression, e.g. ~d example.com & ~c 404", ""))
def _view_filter_set(ctx: CommandContext, expr: str) -> str:
    from proxycore.flows.filter import FilterError

    try:
        ctx.view.set_filter(expr)
    except FilterError as exc:
        raise CommandError(f"filter: {exc}") from None
    v = ctx.view
    return f"filter {v.filter_expr!r}: {len(v):,}/{v.total:,}" if v.filter else f"no filter: {len(v):,}/{v.total:,}"


@command("view.filter.toggle", "Switch the filter off and on again without losing it")
def _view_filter_toggle(ctx: CommandContext) -> str:
    v = ctx.view
    if v.filter is None:
        return "no filter set (press f to set one)"
    on = v.toggle_filter()
    return f"filter {'on' if on else 'off'}: {len(v):,}/{v.total:,}"


@command("view.marked_only", "Show only marked flows (toggle)", Arg("on", bool, "true, false or toggle", None))
def _view_marked_only(ctx: CommandContext, on: bool | None) -> str:
    state = ctx.view.set_marked_only(on)
    return f"marked only: {'on' if state else 'off'}"


@command("view.sort", "Sort the flows", Arg("key", str, "sort key", choices=SORT_KEYS))
def _view_sort(ctx: CommandContext, key: str) -> str:
    ctx.view.set_sort(key)
    return _sort_message(ctx.view)


@command("view.sort.cycle", "Sort by the next key (time, method, url, size, duration, status)")
def _view_sort_cycle(ctx: CommandContext) -> str:
    ctx.view.cycle_sort()
    return _sort_message(ctx.view)


@command("view.sort.reverse", "Reverse the sort order")
def _view_sort_reverse(ctx: CommandContext) -> str:
    ctx.view.toggle_reverse()
    return _sort_message(ctx.view)


def _sort_message(view: FlowView) -> str:
    return f"sorted by {view.sort_key}{' (reversed)' if view.sort_reverse else ''}"


@command("view.follow", "Focus follows new flows (toggle)", Arg("on", bool, "true, false or toggle", None))
def _view_follow(ctx: CommandContext, on: bool | None) -> str:
    v = ctx.view
    v.follow = (not v.follow) if on is None else on
    if v.follow:
        v.set_focus(v.newest_shown())
    return f"follow: {'on' if v.follow else 'off'}"


@command("view.focus.next", "Focus the next flow of the list as shown (stops following new flows)")
def _view_focus_next(ctx: CommandContext) -> str:
    return _step_focus(ctx.view, 1)


@command("view.focus.prev", "Focus the previous flow of the list as shown (stops following new flows)")
def _view_focus_prev(ctx: CommandContext) -> str:
    return _step_focus(ctx.view, -1)


def _step_focus(view: FlowView, delta: int) -> str:
    """As mitmproxy's view.focus.next/prev (the detail's space and K): one row, no wrapping."""
    i = view.focus_index
    if i is None or not 0 <= i + delta < len(view):
        raise CommandError("no next flow" if delta > 0 else "no previous flow")
    view.follow = False
    view.set_focus_index(i + delta)
    return f"flow {view.focus.id}" if view.focus is not None else "no flow"


# --------------------------------------------------------------------------- export


@command("export.clip", "Copy a flow to the clipboard as curl, httpie, raw request/response or Python",
         Arg("format", str, "export format", choices=export_formats), _SELECTOR)
def _export_clip(ctx: CommandContext, fmt: str, selector: str) -> str:
    from proxycore.capture.exporters import EXPORT_FORMATS

    flows = _flows(ctx, selector)
    text = "\n".join(EXPORT_FORMATS[fmt](f) for f in flows)
    where = ctx.copy_to_clipboard(text)
    return f"copied {fmt.replace('_', ' ')} ({len(text.encode('utf-8')):,} bytes) to {where}"


def default_export_path(ext: str, cwd: Path | None = None, now: _dt.datetime | None = None) -> Path:
    """./omniproxy-YYYYMMDD-HHMMSS.<ext>, with -2, -3 ... when that name is taken."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    path = base / f"omniproxy-{stamp}.{ext}"
    n = 2
    while path.exists():
        path = base / f"omniproxy-{stamp}-{n}.{ext}"
        n += 1
    return path


def _resolve(ctx: CommandContext, path: str, ext: str) -> Path:
    if not path:
        return default_export_path(ext, ctx.cwd)
    p = Path(path).expanduser()
    if not p.is_absolute():  # absolute, so the message after a save says exactly where
        p = (ctx.cwd if ctx.cwd is not None else Path.cwd()) / p
    return p


def _records(ctx: CommandContext, flows: list[Flow]) -> list[dict]:
    from proxycore.capture.record import RecordOptions, flow_to_record

    ro = RecordOptions.from_options(ctx.options)
    return [flow_to_record(f, ro) for f in flows]


def _shown_or_selected(ctx: CommandContext, selector: str) -> list[Flow]:
    """The flows to save, as they are now: the job writes them in a worker thread while the proxy
    goes on changing the flows still in flight, so those are copied (finished ones are shared)."""
    flows = flows_by_selector(ctx.view, selector or "@shown")
    if not flows:
        raise CommandError("no flows to save")
    return snapshot_flows(flows)


# HAR exports follow Chrome DevTools (since 130): "Export HAR (sanitized)" is the default and
# masks secret headers; "Export HAR (with sensitive data)" keeps them.
HAR_SANITIZED = "sanitized"
HAR_SENSITIVE = "with sensitive data"


def _har_job(ctx: CommandContext, path: str, selector: str, sensitive: bool) -> Job:
    flows = _shown_or_selected(ctx, selector)  # snapshot now, on the loop's thread
    target = _resolve(ctx, path, "har")
    opts = ctx.options

    def work() -> str:
        from proxycore.capture.har import records_to_har, write_har_atomic
        from proxycore.capture.record import RecordOptions, flow_to_record

        # binary bodies go in base64 (as browsers export them) whatever --skip-binary says
        # sanitized means sanitized, even when the capture itself runs with --no-redact
        ro = RecordOptions.from_options(opts, for_har=True, redact=not sensitive)
        write_har_atomic(target, records_to_har([flow_to_record(f, ro) for f in flows], _VERSION))
        kind = HAR_SENSITIVE if sensitive else f"{HAR_SANITIZED}: secret headers masked"
        return f"wrote {len(flows):,} flow{'s' * (len(flows) != 1)} to {target} (HAR, {kind})"

    return Job(f"HAR ({HAR_SENSITIVE if sensitive else HAR_SANITIZED}) → {target.name}", work)


@command("export.har", "Export HAR (sanitized): the shown flows, cookies and other secret headers masked "
         "(default ./omniproxy-YYYYMMDD-HHMMSS.har)",
         Arg("path", str, "file to write", ""), Arg("flows", str, "flow selector", "@shown"))
def _export_har(ctx: CommandContext, path: str, selector: str) -> Job:
    return _har_job(ctx, path, selector, sensitive=False)


@command("export.har.sensitive", "Export HAR (with sensitive data): the shown flows, nothing masked "
         "(default ./omniproxy-YYYYMMDD-HHMMSS.har)",
         Arg("path", str, "file to write", ""), Arg("flows", str, "flow selector", "@shown"))
def _export_har_sensitive(ctx: CommandContext, path: str, selector: str) -> Job:
    return _har_job(ctx, path, selector, sensitive=True)


@command("export.ndjson", "Write the shown flows as NDJSON records (default ./omniproxy-YYYYMMDD-HHMMSS.ndjson)",
         Arg("path", str, "file to write", ""), Arg("flows", str, "flow selector", "@shown"))
def _export_ndjson(ctx: CommandContext, path: str, selector: str) -> Job:
    flows = _shown_or_selected(ctx, selector)
    target = _resolve(ctx, path, "ndjson")

    def work() -> str:
        from proxycore.capture.record import record_to_json_line
        from proxycore.safefile import write_atomic

        lines = [record_to_json_line(r) for r in _records(ctx, flows)]
        data = b"".join(
            (ln if isinstance(ln, bytes) else ln.encode("utf-8")).rstrip(b"\n") + b"\n" for ln in lines)
        # atomic, 0600 when new, never through a symlink (proxycore.safefile)
        write_atomic(target, data)
        return f"wrote {len(flows):,} flow{'s' * (len(flows) != 1)} to {target}"

    return Job(f"NDJSON → {target.name}", work)


# --------------------------------------------------------------------------- rewrite rules


def _ruleset(ctx: CommandContext) -> Any:
    rules = getattr(ctx.engine, "rules", None)
    if rules is None:
        raise CommandError("rewrite rules need a running engine")
    return rules


def _rule_call(fn: Callable[[], Any]) -> Any:
    from proxycore.addons.rules import RuleError

    try:
        return fn()
    except RuleError as exc:
        raise CommandError(str(exc)) from None


_RULE_N = Arg("n", int, "rule number (1 = first)")


@command("rules.list", "List the rewrite rules: number, on/off, kind, filter, hits")
def _rules_list(ctx: CommandContext) -> str:
    rules = _ruleset(ctx)
    if not len(rules):
        return "no rewrite rules (rules.add KIND SPEC, or R)"
    return "\n".join(f"{i}. [{'on' if r.enabled else 'off'}] {r.label}  filter: {r.filter or '(all)'}  "
                     f"hits: {r.hits}" for i, r in enumerate(rules, 1))


@command("rules.add", "Add a rewrite rule: KIND SPEC, e.g. set_header /~d example.com/X-Debug/1",
         Arg("spec", str, "kind[@request|@response] /filter/args (README: Rewrite rules)"))
def _rules_add(ctx: CommandContext, spec: str) -> str:
    from proxycore.addons.rules import parse_line

    rules = _ruleset(ctx)
    rule = _rule_call(lambda: parse_line(spec, "new rule"))
    n = _rule_call(lambda: rules.add(rule))
    return f"rule {n} added: {rule.label}"


@command("rules.edit", "Replace rule N with a new KIND SPEC (keeps its place, counter and on/off)",
         _RULE_N, Arg("spec", str, "kind[@side] /filter/args"))
def _rules_edit(ctx: CommandContext, n: int, spec: str) -> str:
    from proxycore.addons.rules import parse_line

    rules = _ruleset(ctx)
    rule = _rule_call(lambda: parse_line(spec, f"rule {n}"))
    _rule_call(lambda: rules.replace(n, rule))
    return f"rule {n} changed: {rule.label}"


@command("rules.toggle", "Switch rule N off or on", _RULE_N)
def _rules_toggle(ctx: CommandContext, n: int) -> str:
    rule = _rule_call(lambda: _ruleset(ctx).toggle(n))
    return f"rule {n} {'on' if rule.enabled else 'off'}: {rule.label}"


@command("rules.move", "Move rule N up or down (rules apply in order)", _RULE_N,
         Arg("direction", str, "UP or DOWN"))
def _rules_move(ctx: CommandContext, n: int, direction: str) -> str:
    if direction.lower() not in ("up", "down"):
        raise CommandError(f"rules.move: direction must be UP or DOWN, got {direction!r}")
    m = _rule_call(lambda: _ruleset(ctx).move(n, -1 if direction.lower() == "up" else 1))
    return f"rule {n} is now rule {m}"


@command("rules.delete", "Delete rule N", _RULE_N)
def _rules_delete(ctx: CommandContext, n: int) -> str:
    rule = _rule_call(lambda: _ruleset(ctx).delete(n))
    return f"rule {n} deleted: {rule.label}"


@command("rules.from_flow", "Turn a flow's edit into rules for later flows with its method and URL",
         _SELECTOR)
def _rules_from_flow(ctx: CommandContext, selector: str) -> str:
    from proxycore.addons.rules import rules_from_edit

    rules = _ruleset(ctx)
    made = []
    for f in _flows(ctx, selector):
        made += _rule_call(lambda f=f: rules_from_edit(f))
    if not made:
        raise CommandError("the flow was not edited (no original request or response to compare with)")
    for r in made:
        _rule_call(lambda r=r: rules.add(r))
    return f"added {len(made)} rule{'s' * (len(made) != 1)}: " + "; ".join(r.label for r in made)


# --------------------------------------------------------------------------- flow files (lossless)

FLOWS_EXT = "flows"  # the lossless flow file's default extension


@command("export.flows", "Save the shown flows losslessly (every field, edits, marks and comments; reopen "
         "with -r or L) (default ./omniproxy-YYYYMMDD-HHMMSS.flows)",
         Arg("path", str, "file to write", ""), Arg("flows", str, "flow selector", "@shown"))
def _export_flows(ctx: CommandContext, path: str, selector: str) -> Job:
    flows = _shown_or_selected(ctx, selector)
    target = _resolve(ctx, path, FLOWS_EXT)

    def work() -> str:
        from proxycore.flows.serialize import write_flows

        n = write_flows(target, flows)  # through proxycore.safefile: atomic, 0600, no symlinks
        return f"wrote {n} flow{'s' * (n != 1)} to {target} (lossless)"

    return Job(f"flows → {target.name}", work)


def save_format_for(path: str) -> str | None:
    """The save format a file name asks for ("flows", "ndjson" or "har"), None when it says nothing."""
    ext = Path(path).suffix.lower().lstrip(".")
    if ext == "har":
        return "har"
    if ext in ("ndjson", "jsonl", "ir"):
        return "ndjson"
    if ext == FLOWS_EXT:
        return "flows"
    return None


SAVE_COMMANDS = {"flows": "export.flows", "ndjson": "export.ndjson", "har": "export.har"}


def load_job(ctx: CommandContext, path: str, batches: Iterator[list[Flow]] | None = None) -> Job:
    """The job that opens a capture into the engine's store: parsing in the job's thread, each batch
    handed to the loop (`ctx.run_on_loop`), where the flows get ids unique in this process and go
    to the store (which applies --max-flows). `batches`: the file already opened (-r), else opened here.
    A missing or unrecognisable file is a CommandError at once."""
    from proxycore.capture.load import KIND_NAMES, CaptureError, IdAllocator, detect_capture, iter_capture

    if ctx.engine is None:
        raise CommandError("capture.load: no engine to load flows into")
    engine = ctx.engine
    if not path.strip():
        raise CommandError("capture.load: which file?")
    p = _resolve(ctx, path.strip(), "")
    try:
        kind = detect_capture(p)  # a wrong path or a file of another kind is told at once
    except CaptureError as exc:
        raise CommandError(str(exc)) from None
    alloc = IdAllocator()

    def add(batch: list[Flow]) -> None:  # on the loop's thread, where ids are handed out
        alloc.place(batch)
        for f in batch:
            engine.add_flow(f)

    def work() -> str:
        n = 0
        try:
            for batch in (batches if batches is not None else iter_capture(p)):
                ctx.run_on_loop(lambda b=batch: add(b))
                n += len(batch)
                job.count = n
        except CaptureError as exc:
            if not n:
                raise
            return f"loaded {n} flows from {p}, then stopped: {exc}"
        return f"loaded {n} flow{'s' * (n != 1)} from {p} ({KIND_NAMES.get(kind, kind)})"

    job = Job(f"load {p.name}", work)
    return job


@command("capture.load", "Open a capture (flow file, HAR, NDJSON/IR, JSON or a --db SQLite database): its flows "
         "join the list", Arg("path", str, "file to read"))
def _capture_load(ctx: CommandContext, path: str) -> Job:
    return load_job(ctx, path)


# --------------------------------------------------------------------------- other areas' commands

# Commands defined in their own modules register themselves on import.
from proxycore.control import intercept_cmds, throttle_commands, wireguard_cmds  # noqa: E402,F401,I001
# the option commands live with the options code; registered here so `registry` always has them
from proxycore.control import settings as _settings  # noqa: E402,F401

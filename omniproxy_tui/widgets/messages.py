"""The Messages tab of a WebSocket or TCP flow: its messages live, one a row, and one message whole.

Rows: direction (→ client to server, ← server to client), time, type, size, a one-line preview,
and marks (⏸ paused at a breakpoint, ✕ dropped, ✚ injected, ✂ cut at the capture limit). The
list grows as messages arrive (only the new rows are added). ⏎ opens the message whole through
the content views (`m` cycles them); `>` and `<` send a new message to the server or the client
(mitmproxy's inject.websocket / inject.tcp); on a paused message `e` edits it, `X` drops it, `a`
resumes. A TCP message has no type of its own: it shows as text when it reads as UTF-8 text.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from omniproxy_tui.views.contentviews import CYCLE_MODES, clean_line, human_size, view_body
from omniproxy_tui.widgets.lineview import Document, LineView
from proxycore.flows.tcp import sizes as tcp_sizes
from proxycore.flows.websocket import TEXT

if TYPE_CHECKING:
    from proxycore.flows.flow import Flow

PREVIEW_CHARS = 200
# a WebSocketMessage or a TCPMessage: from_client, content, size, timestamp, dropped, injected, truncated
Msg = Any
_CONTROL = bytes(sorted(set(range(32)) - {9, 10, 13})) + b"\x7f"


def is_text(msg: Msg) -> bool:
    """A WebSocket message's own type; a TCP message: UTF-8 without control characters."""
    typ = getattr(msg, "type", None)
    if typ is not None:
        return typ == TEXT  # type: ignore[no-any-return]
    sample = msg.content[:4096]
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # only a character cut at the sample's end is forgiven
        if len(msg.content) <= len(sample) or exc.reason != "unexpected end of data":
            return False
    return len(sample.translate(None, _CONTROL)) == len(sample)


def messages_of(flow: Flow | None) -> tuple[list[Msg], int]:
    """The flow's messages (WebSocket or TCP) and how many left the front (WebSocket only)."""
    if flow is None:
        return [], 0
    ws = flow.websocket
    if ws is not None:
        return list(ws.messages), ws.omitted
    return list(flow.tcp_messages or ()), 0


def has_messages(flow: Flow | None) -> bool:
    return flow is not None and (flow.websocket is not None or flow.tcp_messages is not None)


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"


def message_marks(msg: Msg, paused: bool = False) -> str:
    return ("⏸" if paused else "") + ("✕" if msg.dropped else "") + ("✚" if msg.injected else "") + \
        ("✂" if msg.truncated else "")


def preview(msg: Msg) -> str:
    """One line of the payload: text as text, binary as hex."""
    data = msg.content[:PREVIEW_CHARS]
    if is_text(msg):
        return clean_line(data.decode("utf-8", "replace").replace("\n", " "))
    return data[:PREVIEW_CHARS // 3].hex(" ")


def message_row(msg: Msg, paused: bool = False) -> Text:
    arrow = Text("→ ", "bold #61afef") if msg.from_client else Text("← ", "bold #98c379")
    t = Text.assemble(
        arrow, (_clock(msg.timestamp), "dim"), " ",
        ("text  " if is_text(msg) else "binary", "#c678dd"), " ",
        (f"{human_size(msg.size):>6}", "#e5c07b"), " ",
    )
    marks = message_marks(msg, paused)
    if marks:
        t.append(marks + " ", "bold #e06c75")
    t.append(preview(msg), "strike dim" if msg.dropped else "")
    t.no_wrap = True
    t.overflow = "ellipsis"
    return t


def summary(flow: Flow) -> str:
    ws = flow.websocket
    if ws is None:
        return _tcp_summary(flow) if flow.tcp_messages is not None else ""
    n = len(ws.messages)
    up = sum(1 for m in ws.messages if m.from_client)
    parts = [f"{n + ws.omitted:,} message{'' if n == 1 else 's'} (→ {up:,} ← {n - up:,})"]
    if ws.omitted:
        parts.append(f"oldest {ws.omitted:,} not kept")
    if ws.close_code is not None:
        who = "client" if ws.closed_by_client else "server"
        reason = f" {clean_line(ws.close_reason)}" if ws.close_reason else ""
        parts.append(f"closed by the {who}: {ws.close_code}{reason}")
    elif not flow.is_finished:
        parts.append("open")
    return " · ".join(parts)


def _tcp_summary(flow: Flow) -> str:
    msgs = flow.tcp_messages or []
    n = len(msgs)
    up = sum(1 for m in msgs if m.from_client)
    b_up, b_down = tcp_sizes(flow)
    parts = [f"{n:,} message{'' if n == 1 else 's'} (→ {up:,} ← {n - up:,})",
             f"→ {human_size(b_up)} ← {human_size(b_down)}"]
    if flow.error:
        parts.append(f"error: {clean_line(flow.error)}")
    elif flow.is_finished:
        parts.append("closed")
    else:
        parts.append("open")
    return " · ".join(parts)


class MessagesPane(Widget, can_focus=False):
    """The Messages tab: a summary line and the list of messages."""

    DEFAULT_CSS = """
    MessagesPane { height: 1fr; layout: vertical; }
    MessagesPane #ws-summary { height: 1; padding: 0 1; color: $text-muted; }
    MessagesPane OptionList { height: 1fr; border: none; padding: 0; text-wrap: nowrap; text-overflow: ellipsis; }
    MessagesPane OptionList:focus { border: none; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "View message", id="messages.open", tooltip="(Messages) show the message whole"),
        Binding("greater_than_sign", "send(False)", "Send to server", key_display=">", id="messages.send_server",
                tooltip="(Messages) send a new message to the server"),
        Binding("less_than_sign", "send(True)", "Send to client", key_display="<", id="messages.send_client",
                tooltip="(Messages) send a new message to the client"),
        Binding("e", "edit", "Edit message", id="messages.edit", tooltip="(Messages) edit the paused message"),
        Binding("X", "drop", "Drop message", id="messages.drop",
                tooltip="(Messages) drop the paused message (not sent on)"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.flow: Flow | None = None
        self._shown = 0  # rows built for self.flow
        self._paused_row: int | None = None
        self._omitted = 0  # flow.websocket.omitted when the rows were last brought up to date
        self._rows: list[Msg] = []  # the messages the rows show, in order

    def compose(self) -> ComposeResult:
        yield Static("", id="ws-summary", markup=False)
        yield OptionList(id="ws-list")

    @property
    def list(self) -> OptionList:
        return self.query_one("#ws-list", OptionList)

    def _paused_message(self) -> Msg | None:
        flow = self.flow
        ctl = getattr(getattr(self.app, "engine", None), "intercept", None)
        p = ctl.paused.get(flow.id) if ctl is not None and flow is not None else None
        return p.message if p is not None and p.phase == "message" else None

    def show(self, flow: Flow | None) -> None:
        """Show (or refresh) `flow`'s messages: only rows not built yet are added."""
        if not self.is_mounted:
            return
        ol = self.list
        msgs, omitted = messages_of(flow)
        shift = omitted - self._omitted  # rows that left the front (the flow keeps the last 10 000)
        if flow is not self.flow or shift < 0 or shift > self._shown or (
                msgs and shift < self._shown and msgs[0] is not self._first_after(shift)):
            ol.clear_options()
            self._shown = 0
            self._paused_row = None
        elif shift:
            for _ in range(shift):
                ol.remove_option_at_index(0)
            self._shown -= shift
            if self._paused_row is not None:
                self._paused_row = self._paused_row - shift if self._paused_row >= shift else None
        self.flow = flow
        self._omitted = omitted
        self._rows = msgs[:self._shown]
        paused = self._paused_message()
        if self._paused_row is not None and self._paused_row < len(msgs):
            # the row that showed ⏸ (it resumed, or was edited): rebuilt
            ol.replace_option_prompt_at_index(self._paused_row, message_row(msgs[self._paused_row]))
            self._paused_row = None
        if len(msgs) > self._shown:
            follow = ol.highlighted is None or ol.highlighted >= self._shown - 1
            ol.add_options([Option(message_row(m, m is paused)) for m in msgs[self._shown:]])
            self._shown = len(msgs)
            self._rows = msgs
            if follow:
                ol.highlighted = self._shown - 1
        if paused is not None:
            for i in range(len(msgs) - 1, -1, -1):
                if msgs[i] is paused:
                    ol.replace_option_prompt_at_index(i, message_row(paused, True))
                    self._paused_row = i
                    if ol.highlighted != i:
                        ol.highlighted = i
                    break
        text = summary(flow) if flow is not None else ""
        if paused is not None:
            text += " · ⏸ a message is paused: e edit, X drop, a resume"
        self.query_one("#ws-summary", Static).update(text)

    def _first_after(self, shift: int) -> Msg | None:
        """The message the first row shows once `shift` rows left the front."""
        return self._rows[shift] if shift < len(self._rows) else None

    def selected(self) -> Msg | None:
        flow = self.flow
        i = self.list.highlighted
        if not has_messages(flow) or i is None:
            return None
        msgs = messages_of(flow)[0]
        return msgs[i] if 0 <= i < len(msgs) else None

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        msg = self.selected()
        if msg is not None and self.flow is not None:
            self.app.push_screen(MessageScreen(self.flow, msg))

    def action_send(self, to_client: bool) -> None:
        flow = self.flow
        if flow is None:
            return
        app = self.app
        from omniproxy_tui.widgets.prompt import PromptScreen

        tcp = flow.websocket is None

        def submit(text: str) -> str | None:
            if tcp:
                return app.run_command_checked("inject.tcp", str(flow.id), to_client, text)  # type: ignore[attr-defined]
            return app.run_command_checked("inject.websocket", str(flow.id), to_client, text, True)  # type: ignore[attr-defined]

        app.push_screen(PromptScreen(
            f"send to the {'client' if to_client else 'server'} (text): ", submit,
            help="⏎ send the text (UTF-8) · esc cancel" if tcp else
            "⏎ send as a text message · esc cancel (inject.websocket on the : prompt sends binary)"))

    def action_edit(self) -> None:
        flow = self.flow
        if flow is None or self._paused_message() is None:
            self.notify("no paused message in this flow", severity="warning", timeout=2)
            return
        self.app.edit_flow(flow)  # type: ignore[attr-defined]  (a prompt with the message's text)

    def action_drop(self) -> None:
        flow = self.flow
        if flow is not None:
            self.app.run_command("websocket.message.drop", str(flow.id), quiet=False)  # type: ignore[attr-defined]


def message_document(msg: Msg, mode: str) -> tuple[Document, str]:
    """One message whole through the content views; and the status line."""
    ct = None  # binary: the views detect what it is (protobuf, msgpack, hex ...)
    text = is_text(msg)
    if text:
        ct = "application/json" if msg.content.lstrip()[:1] in (b"{", b"[") else "text/plain; charset=utf-8"
    view = view_body(msg.content, ct, mode=mode, limit_lines=None)
    doc = Document()
    who = "client → server" if msg.from_client else "server → client"
    doc.add(Text.assemble((who, "bold"), "  ", (_clock(msg.timestamp), "dim"), "  ",
                          ("text" if text else "binary", "#c678dd"), "  ",
                          (human_size(msg.size), "#e5c07b"), "  ", (message_marks(msg), "bold #e06c75")))
    if msg.truncated:
        doc.add(Text(f"(the first {human_size(len(msg.content))} of {human_size(msg.size)}: the rest was not kept)",
                     "dim"))
    doc.add("")
    doc.add_lines(view.lines, view.hang)
    status = f"{view.name} (view: {mode}) · m cycles · esc back"
    return doc, status


class MessageScreen(Screen):
    """One WebSocket or TCP message whole."""

    DEFAULT_CSS = """
    MessageScreen LineView { height: 1fr; }
    MessageScreen #msg-status { height: 1; padding: 0 1; background: $panel; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "back", "Back", show=False),
        Binding("m", "cycle_mode", "View", id="message.view_mode", tooltip="(message) cycle the content view"),
    ]

    def __init__(self, flow: Flow, msg: Msg, on_close: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.flow = flow
        self.msg = msg
        self.mode = "auto"

    def compose(self) -> ComposeResult:
        yield LineView(id="msg-view")
        yield Static("", id="msg-status", markup=False)

    def on_mount(self) -> None:
        self._build()
        self.query_one(LineView).focus()

    def _build(self) -> None:
        doc, status = message_document(self.msg, self.mode)
        self.query_one(LineView).set_document(doc)
        self.query_one("#msg-status", Static).update(status)

    def action_cycle_mode(self) -> None:
        self.mode = CYCLE_MODES[(CYCLE_MODES.index(self.mode) + 1) % len(CYCLE_MODES)]
        self._build()

    def action_back(self) -> None:
        self.app.pop_screen()

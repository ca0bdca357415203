"""A scrolling, wrapping, searchable, selectable view of a long list of highlighted lines.

Line API (only visible rows are rendered) so a full 50 MiB body scrolls as fast as a short one.
Lines are soft-wrapped at the widget width; continuation rows are indented (headers hang under
their value column). `/`-style search highlights every match and scrolls the current one into view.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import accumulate

from rich.cells import cell_len, get_character_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.selection import Selection
from textual.strip import Strip

from omniproxy_tui.views.colors import for_light
from omniproxy_tui.views.contentviews import HexLines, StyledLines

MAX_MATCHES = 10_000
SYNC_SEARCH_LINES = 50_000  # bigger documents are searched in a worker thread
_MATCH = Style(bgcolor="#5f5f00", color="#ffffff")
_CURRENT = Style(bgcolor="#ffd700", color="#000000", bold=True)


class _Texts:
    """Loose lines given as ready-made Texts (titles, headers) with their plain strings."""

    def __init__(self) -> None:
        self.texts: list[Text] = []
        self.plain: list[str] = []

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> Text:
        return self.texts[i]


Lines = StyledLines | _Texts


class Document:
    """Lines made of blocks (loose lines and whole content views) without copying the views."""

    def __init__(self) -> None:
        self._blocks: list[tuple[Lines, int]] = []  # (lines, hang)
        self._starts: list[int] = []
        self._loose: _Texts | None = None
        self._len = 0

    def add(self, line: Text | str = "", hang: int = 0) -> None:
        """One line (a Text keeps its styles); `hang` indents its wrapped continuation rows."""
        text = line if isinstance(line, Text) else Text(line)
        if self._loose is None or self._blocks[-1][1] != hang:
            self._loose = _Texts()
            self._push(self._loose, hang)
        self._loose.texts.append(text)
        self._loose.plain.append(text.plain)
        self._len += 1

    def add_lines(self, lines: StyledLines, hang: int = 0) -> None:
        self._loose = None
        self._push(lines, hang)
        self._len += len(lines)

    def _push(self, lines: Lines, hang: int) -> None:
        self._starts.append(self._len)
        self._blocks.append((lines, hang))

    def __len__(self) -> int:
        return self._len

    def _find(self, i: int) -> tuple[Lines, int, int]:
        b = bisect_right(self._starts, i) - 1
        lines, hang = self._blocks[b]
        return lines, i - self._starts[b], hang

    def text(self, i: int) -> Text:
        lines, j, _ = self._find(i)
        return lines[j]

    def plain(self, i: int) -> str:
        lines, j, _ = self._find(i)
        return lines.plain[j]

    def hang(self, i: int) -> int:
        return self._find(i)[2]

    def blocks(self) -> list[tuple[int, Lines, int]]:
        return [(s, lines, hang) for s, (lines, hang) in zip(self._starts, self._blocks, strict=True)]

    def all_plain(self) -> list[str]:
        out: list[str] = []
        for lines, _ in self._blocks:
            out.extend(lines.plain)
        return out


_HEX_QUERY = re.compile(r"(?:[0-9a-fA-F]{2}[ :]?)+")


def _hex_col(b: int) -> int:
    """Column of byte b (0-15) in a HexLines row ("00000010  xx xx ... xx  xx ... xx  ascii")."""
    return 10 + 3 * b + (b >= 8)


def find_hex_matches(dump: HexLines, start: int, query: str, limit: int) -> list[tuple]:
    """Matches in a hex dump, searched in its bytes rather than row by row: a row holds 16 bytes,
    so a string (or a byte sequence typed as hex) across a row break was missed before. The query
    matches as text (ASCII case ignored) and, when it reads as hex bytes ("de ad", "dead"), as
    those bytes. Each match is (line, start, end, pieces): pieces are (line, start, end) spans,
    the bytes in the hex columns and in the text column, on every row the match covers."""
    data = memoryview(dump.data)[:len(dump) * 16].tobytes()
    needles = [query.encode("utf-8").lower()]
    if _HEX_QUERY.fullmatch(query.strip()):
        try:
            raw = bytes.fromhex(query.replace(":", " "))
        except ValueError:
            raw = b""
        if raw and raw not in needles:
            needles.append(raw)
    offsets: dict[int, int] = {}  # offset -> length (the longer one if both kinds match there)
    for k, needle in enumerate(needles):
        hay = data.lower() if k == 0 else data
        pos = hay.find(needle)
        while pos >= 0 and len(offsets) < limit * 2:
            offsets[pos] = max(offsets.get(pos, 0), len(needle))
            pos = hay.find(needle, pos + 1)
    out: list[tuple] = []
    for off in sorted(offsets)[:limit]:
        end = off + offsets[off]
        pieces = []
        for row in range(off // 16, (end - 1) // 16 + 1):
            b0, b1 = max(off, row * 16) - row * 16, min(end, row * 16 + 16) - row * 16
            pieces.append((start + row, _hex_col(b0), _hex_col(b1 - 1) + 2))
            pieces.append((start + row, 60 + b0, 60 + b1))
        first = pieces[0]
        out.append((first[0], first[1], first[2], tuple(pieces)))
    return out


def match_pieces(m: tuple) -> tuple[tuple[int, int, int], ...]:
    """The (line, start, end) spans a match highlights: one, or several for a hex match."""
    return m[3] if len(m) > 3 else (m,)


def find_matches(doc: Document, query: str) -> list[tuple]:
    """(line, start, end) of every case-insensitive literal match, at most MAX_MATCHES. A match
    in a hex dump carries its spans as a fourth item (see find_hex_matches)."""
    out: list[tuple] = []
    if not query:
        return out
    finder = re.compile(re.escape(query), re.I).finditer
    for start, lines, _ in doc.blocks():
        if isinstance(lines.plain, HexLines):
            out.extend(find_hex_matches(lines.plain, start, query, MAX_MATCHES - len(out)))
            if len(out) >= MAX_MATCHES:
                return out[:MAX_MATCHES]
            continue
        for j, s in enumerate(lines.plain):
            for m in finder(s):
                out.append((start + j, m.start(), m.end()))
            if len(out) >= MAX_MATCHES:
                return out[:MAX_MATCHES]
    return out


class LineView(ScrollView, can_focus=True):
    """Shows a Document; `search()` / `next_match()` / `prev_match()` drive the highlights."""

    ALLOW_SELECT = True
    DEFAULT_CSS = """
    LineView {
        background: $surface;
        color: $foreground;
        overflow-y: scroll;
        overflow-x: hidden;
        scrollbar-size-vertical: 1;
        height: 1fr;
        &:focus { background-tint: $foreground 4%; }
    }
    """
    BINDINGS = [
        Binding("j", "scroll_down", "Down", show=False),
        Binding("k", "scroll_up", "Up", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Bottom", show=False),
        Binding("ctrl+f", "page_down", "Page down", show=False),
        Binding("ctrl+b", "page_up", "Page up", show=False),
    ]

    class MatchesChanged(Message):
        """The match list or the current match moved (for a "match 3/17" status)."""

        def __init__(self, view: LineView) -> None:
            super().__init__()
            self.view = view

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.doc = Document()
        self._width = 0
        self._row_start: list[int] | None = None  # None: one row per line
        self._cuts: LRUCache[int, list[int]] = LRUCache(4096)
        self._strips: LRUCache[int, Strip] = LRUCache(1024)
        # the widget's own style, read once per style change: `rich_style` walks every ancestor's
        # styles on each read, and the rows below a short document are drawn with it on every frame
        self._base: Style | None = None
        self.query_text = ""
        self.matches: list[tuple] = []  # (line, start, end[, pieces]): see find_matches
        self._by_line: dict[int, list[int]] = {}
        self.current = -1

    # --- content -------------------------------------------------------------------------

    def set_document(self, doc: Document, keep_scroll: bool = False) -> None:
        y = self.scroll_y
        self.doc = doc
        self._cuts.clear()
        self._relayout()
        if self.query_text:
            self.search(self.query_text, keep_current=True, scroll=False)
        if keep_scroll:
            self.scroll_to(y=y, animate=False, immediate=True)
        else:
            self.scroll_to(0, 0, animate=False, immediate=True)
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()  # the theme changed: rows are drawn with its colours
        self._base = None

    @property
    def base_style(self) -> Style:
        """`rich_style`, cached until the styles change (focus, theme)."""
        base = self._base
        if base is None:
            base = self._base = self.rich_style
        return base

    def on_resize(self) -> None:
        if self._avail() != self._width:
            self._relayout()
            self.refresh()  # the rows were cut for the old width

    def _avail(self) -> int:
        return max(8, self.scrollable_content_region.width)

    def _relayout(self) -> None:
        """Rows per line for the current width (skipped when every line fits)."""
        width = self._width = self._avail()
        self._strips.clear()
        self._cuts.clear()
        doc = self.doc
        counts: list[int] = []
        wraps = False
        for start, lines, _ in doc.blocks():
            plain = lines.plain
            if isinstance(plain, list):
                lens = list(map(len, plain))
                wide = not "".join(plain).isascii()
            else:  # computed lines (hex) are uniform and ASCII
                lens = [len(plain[0]), len(plain[-1])] if len(plain) else []
                lens = [max(lens, default=0)] * len(plain)
                wide = False
            if wide:
                lens = [n if s.isascii() else cell_len(s) for n, s in zip(lens, plain, strict=True)]
            if lens and max(lens) > width:
                wraps = True
                for i, n in enumerate(lens):
                    counts.append(1 if n <= width else len(self._line_cuts(start + i)))
            else:
                counts.extend([1] * len(lens))
        if wraps:
            self._row_start = [0, *accumulate(counts)]
            rows = self._row_start[-1]
        else:
            self._row_start = None
            rows = len(doc)
        size = Size(width, rows)
        if size != self.virtual_size:
            # Not `self.virtual_size = size`: that reactive lays out and repaints the whole screen,
            # on every cursor move while the detail beside the flow table follows the focus. The
            # height is the container's (1fr) and the scrollbar is always there (overflow-y:
            # scroll): only the scrollbar depends on it.
            self.set_reactive(ScrollView.virtual_size, size)
            self._scroll_update(size)

    def _indent(self, i: int, width: int) -> int:
        plain = self.doc.plain(i)
        hang = self.doc.hang(i) or (len(plain) - len(plain.lstrip(" ")) + 2)
        return hang if hang < width // 2 else 2

    def _line_cuts(self, i: int) -> list[int]:
        """Char offsets where each visual row of line i starts."""
        cuts = self._cuts.get(i)
        if cuts is not None:
            return cuts
        s = self.doc.plain(i)
        width = self._width
        avail = max(1, width - self._indent(i, width))
        cuts = [0]
        if s.isascii():
            pos = width
            while pos < len(s):
                cuts.append(pos)
                pos += avail
        else:
            room, cells = width, 0
            for j, ch in enumerate(s):
                w = get_character_cell_size(ch)
                if cells + w > room:
                    cuts.append(j)
                    room, cells = avail, 0
                cells += w
        self._cuts[i] = cuts
        return cuts

    def row_of(self, line: int, char: int = 0) -> int:
        if self._row_start is None:
            return line
        cuts = self._line_cuts(line)
        return self._row_start[line] + bisect_right(cuts, char) - 1

    def _line_at(self, row: int) -> tuple[int, int]:
        if self._row_start is None:
            return row, 0
        i = bisect_right(self._row_start, row) - 1
        return i, row - self._row_start[i]

    # --- rendering -----------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        row = int(self.scroll_offset.y) + y
        width = self.scrollable_content_region.width
        if row >= self.virtual_size.height or row >= self._rows():
            return Strip.blank(width, self.base_style)
        selection = self.text_selection
        if selection is None:
            hit = self._strips.get(row)
            if hit is not None and hit.cell_length == width:
                return hit
        strip = self._render_row(row, width, selection)
        if selection is None:
            self._strips[row] = strip
        return strip

    def _rows(self) -> int:
        return len(self.doc) if self._row_start is None else self._row_start[-1]

    def _render_row(self, row: int, width: int, selection: Selection | None) -> Strip:
        i, k = self._line_at(row)
        base = self.base_style
        text = self.doc.text(i)
        indent = 0
        start, end = 0, len(text.plain)
        if self._row_start is not None:
            cuts = self._line_cuts(i)
            start = cuts[k]
            end = cuts[k + 1] if k + 1 < len(cuts) else len(text.plain)
            indent = self._indent(i, self._width) if k else 0
        piece = text[start:end] if (start, end) != (0, len(text.plain)) else text.copy()
        # keep the line's own base style (header names, titles) on top of the widget's colours
        piece.style = base + self.app.console.get_style(text.style) if text.style else base
        piece.no_wrap = True
        for m in self._by_line.get(i, ()):
            for line, ms, me in match_pieces(self.matches[m]):
                if line == i and ms < end and me > start:
                    piece.stylize(_CURRENT if m == self.current else _MATCH, max(0, ms - start), me - start)
        if selection is not None and (span := selection.get_span(i)) is not None:
            s0, s1 = span
            s1 = len(text.plain) if s1 == -1 else s1
            if s0 < end and s1 > start:
                sel = self.screen.get_component_rich_style("screen--selection")
                piece.stylize(sel, max(0, s0 - start), s1 - start)
        # Text.render() drops the base style of a Text without spans: apply it to every segment
        segments = list(Segment.apply_style(piece.render(self.app.console), piece.style))
        if not self.app.current_theme.dark:  # the syntax colours are for dark backgrounds
            segments = for_light(segments)
        strip = Strip(segments).apply_offsets(start, i)
        if indent:
            pad = Segment(" " * indent, base + Style.from_meta({"offset": (start, i)}))
            strip = Strip([pad, *strip])
        return strip.crop_extend(0, width, base)

    def visible_text(self) -> list[str]:
        """What the user sees, row by row (for tests and debugging)."""
        return [self.render_line(y).text.rstrip() for y in range(self.scrollable_content_region.height)]

    # --- selection -----------------------------------------------------------------------

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        first = 0 if selection.start is None else selection.start.y
        last = len(self.doc) - 1 if selection.end is None else min(selection.end.y, len(self.doc) - 1)
        lines = [self.doc.plain(i) for i in range(first, last + 1)]
        shifted = Selection(
            None if selection.start is None else selection.start._replace(y=0),
            None if selection.end is None else selection.end._replace(y=selection.end.y - first),
        )
        return shifted.extract("\n".join(lines)), "\n"

    def selection_updated(self, selection: Selection | None) -> None:
        self._strips.clear()
        self.refresh()

    # --- search --------------------------------------------------------------------------

    def search(self, query: str, keep_current: bool = False, scroll: bool = True) -> None:
        """Highlight `query` (case-insensitive, literal); big documents are searched in a thread."""
        if len(self.doc) > SYNC_SEARCH_LINES and query:
            doc = self.doc

            def work() -> None:
                found = find_matches(doc, query)
                self.app.call_from_thread(self._apply_matches, doc, query, found, keep_current, scroll)

            self.run_worker(work, thread=True, exclusive=True, group="search")
            return
        self._apply_matches(self.doc, query, find_matches(self.doc, query), keep_current, scroll)

    def _apply_matches(self, doc: Document, query: str, found: list[tuple],
                       keep_current: bool, scroll: bool) -> None:
        if doc is not self.doc:
            return  # the document changed while a thread searched the old one
        old = self.matches[self.current] if keep_current and 0 <= self.current < len(self.matches) else None
        self.query_text = query
        self.matches = found
        self._by_line = {}
        for n, m in enumerate(found):
            for line in {p[0] for p in match_pieces(m)}:
                self._by_line.setdefault(line, []).append(n)
        self.current = -1
        if found:
            if old is not None and old in found:
                self.current = found.index(old)
            else:
                # start at the first match at or below the top of the view, as pagers do
                top = self._line_at(int(self.scroll_y))[0]
                self.current = next((n for n, m in enumerate(found) if m[0] >= top), 0)
            if scroll:
                self._scroll_to_current()
        self._strips.clear()
        self.refresh()
        self.post_message(self.MatchesChanged(self))

    def next_match(self, step: int = 1) -> None:
        if not self.matches:
            return
        self.current = (self.current + step) % len(self.matches)
        self._scroll_to_current()
        self._strips.clear()
        self.refresh()
        self.post_message(self.MatchesChanged(self))

    def _scroll_to_current(self) -> None:
        line, start = self.matches[self.current][:2]
        row = self.row_of(line, start)
        height = max(1, self.scrollable_content_region.height)
        if not self.scroll_y <= row < self.scroll_y + height:
            self.scroll_to(y=max(0, row - height // 3), animate=False, immediate=True)

    def clear_search(self) -> None:
        self.search("")

    @property
    def match_status(self) -> str:
        if not self.query_text:
            return ""
        if not self.matches:
            return "no match"
        more = "+" if len(self.matches) >= MAX_MATCHES else ""
        return f"match {self.current + 1}/{len(self.matches)}{more}"


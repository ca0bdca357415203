"""Colours for light themes.

The content views and the detail use fixed syntax colours (One Dark: light on dark). On a light
theme those are pale on pale (JSON strings were unreadable), so LineView swaps each for a darker
twin when the theme is light. Every twin has a contrast of at least 4.5:1 (WCAG AA) against the
surface, panel and background of every light theme Textual ships (tests/ui/test_chrome.py checks).
"""

from __future__ import annotations

from rich.color import Color
from rich.segment import Segment
from rich.style import Style

# dark-theme colour -> light-theme colour
LIGHT: dict[str, str] = {
    "#61afef": "#0a4688",  # keys, header names
    "#98c379": "#17581c",  # strings
    "#d19a66": "#673e00",  # numbers, attributes
    "#c678dd": "#6a1b8c",  # literals, meta
    "#e06c75": "#961a1a",  # tags, errors
    "#e5c07b": "#5a4300",  # warnings
}
_LIGHT_STYLES = {Color.parse(k).triplet: Style(color=v) for k, v in LIGHT.items()}


def for_light(segments: list[Segment]) -> list[Segment]:
    """The same segments with the dark-theme colours swapped for their light twins."""
    out = []
    for seg in segments:
        style = seg.style
        color = style.color if style is not None else None
        if color is not None and color.triplet is not None:
            twin = _LIGHT_STYLES.get(color.triplet)
            if twin is not None:
                seg = Segment(seg.text, style + twin, seg.control)
        out.append(seg)
    return out

"""Small server-side SVG charts for the dashboard: no JavaScript, no CDN, no library.

The console is served under a strict CSP and used on ward offices' machines: an inline
`<svg>` string renders everywhere, prints, and carries its own accessible name (`<title>`,
`<desc>` listing the data, `role="img"`). Every text that reaches the markup is escaped
(labels may be citizen-facing names, or anything an intent could be called), and characters
XML cannot hold are dropped. The viewBox is fixed, so the page scales the chart with CSS.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from datetime import date
from html import escape

WIDTH = 640
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"
BAR_COLOR = "#0b5394"
LINE_COLOR = "#b3191f"
AXIS_COLOR = "#666666"
GRID_COLOR = "#e3e3e3"
TEXT_COLOR = "#222222"
EMPTY_TEXT = "Chưa có dữ liệu trong khoảng thời gian này."


def _xml_safe(text: str) -> str:
    """Drop characters XML 1.0 forbids (controls, surrogates, U+FFFE/U+FFFF)."""
    return "".join(ch for ch in text if ch in "\t\n\r" or (
        0x20 <= ord(ch) <= 0xD7FF or 0xE000 <= ord(ch) <= 0xFFFD or ord(ch) >= 0x10000))


def esc(text: object) -> str:
    """Escape for XML text and attribute values."""
    return escape(_xml_safe(str(text)), quote=True)


def number_vi(value: float) -> str:
    """Vietnamese number format: 1.234 and 12,5 (dot for thousands, comma for decimals)."""
    if float(value).is_integer():
        return f"{int(value):,}".replace(",", ".")
    whole, frac = f"{value:,.1f}".split(".")
    return f"{whole.replace(',', '.')},{frac}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _nice_max(value: float) -> tuple[float, float]:
    """(axis maximum, tick step): a round step giving 2–5 ticks above the data."""
    if value <= 0:
        return 1.0, 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for factor in (0.1, 0.2, 0.5, 1, 2, 5, 10):
        step = factor * magnitude
        if step >= 1 or value < 1:
            if math.ceil(value / step) <= 5:
                return round(math.ceil(value / step) * step, 10), round(step, 10)
    return math.ceil(value / magnitude) * magnitude, magnitude


def _chart_id(kind: str, title: str) -> str:
    return f"chart-{kind}-{hashlib.sha1(title.encode()).hexdigest()[:8]}"


def _open(kind: str, title: str, desc: str, height: int, chart_id: str | None) -> list[str]:
    cid = chart_id or _chart_id(kind, title)
    cid = "".join(ch for ch in cid if ch.isalnum() or ch in "-_") or "chart"
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" lang="vi" '
        f'aria-labelledby="{cid}-title {cid}-desc" font-family="{esc(FONT)}" '
        f'font-size="13" class="chart chart-{kind}">',
        f'<title id="{cid}-title">{esc(title)}</title>',
        f'<desc id="{cid}-desc">{esc(desc)}</desc>',
        f'<text x="4" y="18" font-size="15" font-weight="bold" fill="{TEXT_COLOR}">'
        f"{esc(_shorten(title, 80))}</text>",
    ]


def _empty(kind: str, title: str, chart_id: str | None) -> str:
    parts = _open(kind, title, EMPTY_TEXT, 80, chart_id)
    parts.append(f'<text x="4" y="56" fill="{AXIS_COLOR}">{esc(EMPTY_TEXT)}</text></svg>')
    return "".join(parts)


def bar_chart(items: Sequence[tuple[str, float]], *, title: str, unit: str = "",
              desc: str | None = None, chart_id: str | None = None,
              label_chars: int = 34) -> str:
    """Horizontal bars, one row per (label, value), largest first as given.

    Horizontal because the labels are long Vietnamese names (procedures, intents); a label
    is cut to `label_chars` on the chart and given whole in the bar's tooltip and in the
    description. `unit` follows each value ("cuộc", "%").
    """
    if not items:
        return _empty("bar", title, chart_id)
    row, top, left, right = 26, 34, 250, 70
    height = top + row * len(items) + 10
    suffix = f" {unit}" if unit and unit != "%" else unit
    summary = "; ".join(f"{label}: {number_vi(value)}{suffix}" for label, value in items)
    parts = _open("bar", title, desc or summary, height, chart_id)
    peak, _ = _nice_max(max(float(v) for _, v in items))
    span = WIDTH - left - right
    for i, (label, value) in enumerate(items):
        y = top + i * row
        w = 0.0 if peak <= 0 else max(0.0, float(value)) / peak * span
        full = f"{label}: {number_vi(value)}{suffix}"
        parts.append(
            f'<g><title>{esc(full)}</title>'
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" fill="{TEXT_COLOR}">'
            f"{esc(_shorten(str(label), label_chars))}</text>"
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" rx="2" '
            f'fill="{BAR_COLOR}"/>'
            f'<text x="{left + w + 6:.1f}" y="{y + 15}" fill="{TEXT_COLOR}">'
            f"{esc(number_vi(value) + suffix)}</text></g>")
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - 10}" '
                 f'stroke="{AXIS_COLOR}"/></svg>')
    return "".join(parts)


def _day_label(day: date | str) -> str:
    return day.strftime("%d/%m") if isinstance(day, date) else str(day)


def _day_full(day: date | str) -> str:
    return day.strftime("%d/%m/%Y") if isinstance(day, date) else str(day)


def line_chart(points: Sequence[tuple[date | str, float]], *, title: str, unit: str = "",
               desc: str | None = None, chart_id: str | None = None) -> str:
    """A line over days (or any ordered labels) with a dot and a tooltip per point.

    At most about ten x labels are written (every n-th day), so a 90-day range stays
    readable; the description lists every point for screen readers.
    """
    if not points:
        return _empty("line", title, chart_id)
    height, top, bottom, left, right = 280, 40, 36, 52, 28
    suffix = f" {unit}" if unit else ""
    summary = "; ".join(f"{_day_full(d)}: {number_vi(v)}{suffix}" for d, v in points)
    parts = _open("line", title, desc or summary, height, chart_id)
    peak, step = _nice_max(max(float(v) for _, v in points))
    plot_h, plot_w = height - top - bottom, WIDTH - left - right
    ticks = int(round(peak / step))
    for i in range(ticks + 1):
        value = step * i
        y = top + plot_h - value / peak * plot_h
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{WIDTH - right}" y2="{y:.1f}" '
                     f'stroke="{GRID_COLOR}"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                     f'fill="{AXIS_COLOR}">{esc(number_vi(value))}</text>')
    n = len(points)
    xs = [left + (plot_w / 2 if n == 1 else plot_w * i / (n - 1)) for i in range(n)]
    ys = [top + plot_h - max(0.0, float(v)) / peak * plot_h for _, v in points]
    if n > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
        parts.append(f'<polyline points="{path}" fill="none" stroke="{LINE_COLOR}" '
                     f'stroke-width="2"/>')
    every = max(1, math.ceil(n / 10))
    for i, ((day, value), x, y) in enumerate(zip(points, xs, ys, strict=True)):
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{LINE_COLOR}">'
                     f"<title>{esc(f'{_day_full(day)}: {number_vi(value)}{suffix}')}</title>"
                     f"</circle>")
        if (n - 1 - i) % every == 0:  # counted from the end: the last day is always named
            parts.append(f'<text x="{x:.1f}" y="{height - bottom + 18}" text-anchor="middle" '
                         f'fill="{AXIS_COLOR}">{esc(_day_label(day))}</text>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{WIDTH - right}" '
                 f'y2="{top + plot_h}" stroke="{AXIS_COLOR}"/></svg>')
    return "".join(parts)

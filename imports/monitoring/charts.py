"""Charts as inline SVG, drawn on the server: no JavaScript, no chart library, no CDN.

Every text that reaches the SVG (labels, tooltips) is escaped here; numbers are formatted by us. Each chart is
an <svg role="img"> with an aria-label, and each mark carries a <title> (the browser's tooltip) and data-value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

AXIS = "#767676"
GRID = "#e0e0e0"
FONT = 'font-family="sans-serif" font-size="11"'


@dataclass(frozen=True)
class Bar:
    label: str  # axis label (may be empty: only some columns are labelled)
    value: float
    title: str  # tooltip, the figure in words


def _number(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:,.0f}k"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def _svg(width: int, height: int, label: str, body: list[str], css_class: str, *, fluid: bool = True) -> SafeString:
    # Time series stretch to the page's width; a bar list keeps its size (its text would shrink otherwise).
    size = 'width="100%"' if fluid else f'width="{width}" height="{height}"'
    head = (
        f'<svg class="ops-chart {css_class}" role="img" aria-label="{escape(label)}" viewBox="0 0 {width} {height}" '
        f'{size} preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>"
    )
    return mark_safe(head + "".join(body) + "</svg>")  # noqa: S308 - every text inside went through escape()


def column_chart(
    bars: Sequence[Bar], *, label: str, color: str = "#417690", width: int = 840, height: int = 200, unit: str = ""
) -> SafeString:
    """Vertical bars left to right (e.g. one per hour), a y axis from 0 to the largest value."""
    left, right, top, bottom = 48, 8, 10, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((bar.value for bar in bars), default=0) or 1
    step = plot_w / max(len(bars), 1)
    body = _y_axis(left, top, plot_w, plot_h, peak, unit)
    for i, bar in enumerate(bars):
        h = plot_h * bar.value / peak
        x = left + i * step
        body.append(
            f'<rect class="bar" x="{x + step * 0.1:.1f}" y="{top + plot_h - h:.1f}" width="{max(step * 0.8, 1):.1f}" '
            f'height="{h:.1f}" fill="{color}" data-value="{bar.value:g}"><title>{escape(bar.title)}</title></rect>'
        )
        if bar.label:
            body.append(
                f'<text x="{x + step / 2:.1f}" y="{height - 10}" text-anchor="middle" fill="{AXIS}" {FONT}>'
                f"{escape(bar.label)}</text>"
            )
    return _svg(width, height, label, body, "column-chart")


def line_chart(
    points: Sequence[Bar],
    *,
    label: str,
    color: str = "#ba2121",
    width: int = 840,
    height: int = 200,
    unit: str = "",
    threshold: float | None = None,
    peak: float | None = None,
) -> SafeString:
    """A line through the points (None-free values), a dashed threshold line, labels under some points."""
    left, right, top, bottom = 48, 8, 10, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = peak or max([p.value for p in points] + [threshold or 0]) or 1
    step = plot_w / max(len(points) - 1, 1)
    body = _y_axis(left, top, plot_w, plot_h, peak, unit)
    if threshold is not None:
        y = top + plot_h - plot_h * min(threshold / peak, 1)
        body.append(
            f'<line class="threshold" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{color}" '
            f'stroke-dasharray="4 3" stroke-opacity="0.6"><title>threshold {_number(threshold)}{escape(unit)}'
            "</title></line>"
        )
    coords = [(left + i * step, top + plot_h - plot_h * min(p.value / peak, 1)) for i, p in enumerate(points)]
    if coords:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        body.append(f'<polyline class="line" points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
    for (x, y), point in zip(coords, points, strict=True):
        if point.value:
            body.append(
                f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{color}" data-value="{point.value:g}">'
                f"<title>{escape(point.title)}</title></circle>"
            )
        if point.label:
            body.append(
                f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" fill="{AXIS}" {FONT}>'
                f"{escape(point.label)}</text>"
            )
    return _svg(width, height, label, body, "line-chart")


def bar_list(bars: Sequence[Bar], *, label: str, color: str = "#417690", width: int = 320) -> SafeString:
    """Horizontal bars, one row each with its label and value: for a few named things (queues, formats)."""
    row, label_w, value_w = 22, 110, 50
    height = max(len(bars), 1) * row + 4
    peak = max((bar.value for bar in bars), default=0) or 1
    plot_w = width - label_w - value_w
    body: list[str] = []
    if not bars:
        body.append(f'<text x="0" y="15" fill="{AXIS}" {FONT}>nothing to show</text>')
    for i, bar in enumerate(bars):
        y = i * row + 2
        w = max(plot_w * bar.value / peak, 1 if bar.value else 0)
        text = bar.label if len(bar.label) <= 18 else bar.label[:17] + "…"
        body.append(
            f'<text x="0" y="{y + 14}" fill="#333" {FONT}>{escape(text)}</text>'
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" '
            f'fill="{color}" data-value="{bar.value:g}"><title>{escape(bar.title)}</title></rect>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 14}" fill="#333" {FONT}>{_number(bar.value)}</text>'
        )
    return _svg(width, height, label, body, "bar-list", fluid=False)


def _y_axis(left: int, top: int, plot_w: int, plot_h: int, peak: float, unit: str) -> list[str]:
    lines = []
    for fraction in (0, 0.5, 1):
        y = top + plot_h - plot_h * fraction
        lines.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        lines.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{AXIS}" {FONT}>'
            f"{_number(peak * fraction)}{escape(unit)}</text>"
        )
    return lines

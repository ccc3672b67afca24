"""Charts as inline SVG, rendered on the server: no JavaScript, readable by screen readers.

Every chart is an `<svg role="img">` whose `<title>` and `<desc>` say what it shows; each
bar or point carries its own `<title>` ("label: value") so hovering or a screen reader
gives the exact number. Coordinates are rounded to two decimals so output is stable.
Colours come from CSS classes (`chart`, `bar`, `line`, `point`, `label`, `value`, `axis`)
styled in static/console.css.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

Series = Sequence[tuple[str, float]]

_TOP, _BOTTOM, _LEFT, _RIGHT = 20.0, 40.0, 48.0, 12.0
_ROW = 26.0  # height of one bar of a horizontal chart
_LABEL_WIDTH = 180.0  # room for command names left of horizontal bars


def _num(x: float) -> str:
    """A coordinate with at most two decimals and no trailing zeros (`12`, `3.5`, `0.33`)."""
    text = f"{round(x, 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def value_text(value: float, unit: str = "") -> str:
    """A value as shown on a chart: integers without decimals, others with one."""
    shown = str(int(value)) if float(value).is_integer() else f"{value:.1f}"
    return f"{shown}{unit}"


def _open(chart_id: str, title: str, desc: str, width: float, height: float) -> list[str]:
    cid = escape(chart_id)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{cid}" '
        f'viewBox="0 0 {_num(width)} {_num(height)}" width="{_num(width)}" '
        f'height="{_num(height)}" role="img" aria-labelledby="{cid}-title {cid}-desc">',
        f'<title id="{cid}-title">{escape(title)}</title>',
        f'<desc id="{cid}-desc">{escape(desc)}</desc>',
    ]


def _empty(chart_id: str, title: str, width: float, height: float) -> str:
    parts = _open(chart_id, title, "No data yet.", width, height)
    parts.append(
        f'<text class="empty" x="{_num(width / 2)}" y="{_num(height / 2)}" '
        'text-anchor="middle">no data yet</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _describe(series: Series, unit: str) -> str:
    return "; ".join(f"{label}: {value_text(value, unit)}" for label, value in series) + "."


def _scale_max(series: Series, max_value: float | None) -> float:
    top = max_value if max_value is not None else max(v for _, v in series)
    return top if top > 0 else 1.0


def bar_chart(
    series: Series,
    *,
    chart_id: str,
    title: str,
    unit: str = "",
    width: float = 640,
    height: float = 220,
    max_value: float | None = None,
    label_every: int | None = None,
) -> str:
    """Vertical bars, one per (label, value), labelled below; for series over time."""
    if not series:
        return _empty(chart_id, title, width, height)
    top = _scale_max(series, max_value)
    plot_w = width - _LEFT - _RIGHT
    plot_h = height - _TOP - _BOTTOM
    slot = plot_w / len(series)
    bar_w = slot * 0.7
    # Label only every k-th bar when they would overlap (about 40px per label).
    every = label_every or max(1, math.ceil(len(series) * 40 / plot_w))
    base = _TOP + plot_h
    parts = _open(chart_id, title, _describe(series, unit), width, height)
    parts.append(
        f'<line class="axis" x1="{_num(_LEFT)}" y1="{_num(base)}" '
        f'x2="{_num(width - _RIGHT)}" y2="{_num(base)}"/>'
    )
    parts.append(
        f'<text class="scale" x="{_num(_LEFT - 6)}" y="{_num(_TOP + 4)}" '
        f'text-anchor="end">{escape(value_text(top, unit))}</text>'
    )
    for i, (label, value) in enumerate(series):
        h = plot_h * max(value, 0) / top
        x = _LEFT + i * slot + (slot - bar_w) / 2
        shown = escape(f"{label}: {value_text(value, unit)}")
        parts.append(
            f'<rect class="bar" x="{_num(x)}" y="{_num(base - h)}" width="{_num(bar_w)}" '
            f'height="{_num(h)}"><title>{shown}</title></rect>'
        )
        if i % every == 0:
            parts.append(
                f'<text class="label" x="{_num(x + bar_w / 2)}" y="{_num(base + 16)}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts)


def hbar_chart(
    series: Series,
    *,
    chart_id: str,
    title: str,
    unit: str = "",
    width: float = 640,
    max_value: float | None = None,
) -> str:
    """Horizontal bars with the label on the left and the value at the end; for names."""
    height = _TOP + _ROW * max(len(series), 1) + 10
    if not series:
        return _empty(chart_id, title, width, height)
    top = _scale_max(series, max_value)
    plot_w = width - _LABEL_WIDTH - 60  # room for the value after the longest bar
    parts = _open(chart_id, title, _describe(series, unit), width, height)
    for i, (label, value) in enumerate(series):
        y = _TOP + i * _ROW
        w = plot_w * max(value, 0) / top
        shown = value_text(value, unit)
        parts.append(
            f'<text class="label" x="{_num(_LABEL_WIDTH - 8)}" y="{_num(y + 15)}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
        parts.append(
            f'<rect class="bar" x="{_num(_LABEL_WIDTH)}" y="{_num(y + 3)}" width="{_num(w)}" '
            f'height="{_num(_ROW - 8)}"><title>{escape(f"{label}: {shown}")}</title></rect>'
        )
        parts.append(
            f'<text class="value" x="{_num(_LABEL_WIDTH + w + 6)}" y="{_num(y + 15)}">'
            f"{escape(shown)}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)

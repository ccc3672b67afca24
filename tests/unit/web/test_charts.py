"""Server-rendered SVG charts: exact output for known series, escaping, empty data."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from opsroom.web.charts import bar_chart, hbar_chart, value_text

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    """Our own chart output, parsed to check it is well-formed XML."""
    return ET.fromstring(svg)  # noqa: S314 - trusted: made by the code under test


def test_a_bar_chart_of_two_values_is_exactly_this_svg() -> None:
    svg = bar_chart([("a", 2), ("b", 4)], chart_id="c1", title="Runs", width=200, height=100)
    assert svg == "\n".join(
        [
            '<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="c1" viewBox="0 0 200 100"'
            ' width="200" height="100" role="img" aria-labelledby="c1-title c1-desc">',
            '<title id="c1-title">Runs</title>',
            '<desc id="c1-desc">a: 2; b: 4.</desc>',
            '<line class="axis" x1="48" y1="60" x2="188" y2="60"/>',
            '<text class="scale" x="42" y="24" text-anchor="end">4</text>',
            '<rect class="bar" x="58.5" y="40" width="49" height="20"><title>a: 2</title></rect>',
            '<text class="label" x="83" y="76" text-anchor="middle">a</text>',
            '<rect class="bar" x="128.5" y="20" width="49" height="40"><title>b: 4</title></rect>',
            '<text class="label" x="153" y="76" text-anchor="middle">b</text>',
            "</svg>",
        ]
    )


def test_bar_heights_are_proportional_and_the_tallest_fills_the_plot() -> None:
    series = [("mon", 1), ("tue", 3), ("wed", 0), ("thu", 6)]
    svg = bar_chart(series, chart_id="days", title="Runs per day", width=400, height=160)
    root = _parse(svg)
    bars = root.findall(f"{SVG}rect")
    assert len(bars) == 4
    heights = [float(b.get("height", "")) for b in bars]
    plot = 160 - 20 - 40
    assert heights == [16.67, plot / 2, 0, plot]  # rounded to two decimals
    assert [b.findtext(f"{SVG}title") for b in bars] == ["mon: 1", "tue: 3", "wed: 0", "thu: 6"]
    # Every bar stands on the same base line.
    assert {float(b.get("y", "")) + float(b.get("height", "")) for b in bars} == {120.0}


def test_labels_are_thinned_when_there_are_many_bars_but_every_bar_keeps_its_title() -> None:
    series = [(f"d{i}", i) for i in range(30)]
    root = _parse(bar_chart(series, chart_id="m", title="Month", width=640))
    assert len(root.findall(f"{SVG}rect")) == 30
    labels = [t.text for t in root.findall(f"{SVG}text") if t.get("class") == "label"]
    assert labels == [f"d{i}" for i in range(0, 30, 3)]


@pytest.mark.parametrize("chart", [bar_chart, hbar_chart])
def test_labels_and_titles_are_escaped(chart) -> None:  # type: ignore[no-untyped-def]
    svg = chart([('<b>&"x"', 1)], chart_id='q"1', title="A < B & C")
    assert "<b>" not in svg
    assert "&lt;b&gt;&amp;&quot;x&quot;" in svg
    assert '<title id="q&quot;1-title">A &lt; B &amp; C</title>' in svg
    _parse(svg)  # still well-formed


def test_a_horizontal_bar_chart_shows_names_left_and_values_with_their_unit() -> None:
    svg = hbar_chart(
        [("store status", 50), ("net check", 12.5)],
        chart_id="fail",
        title="Failure rate",
        unit="%",
        width=440,
        max_value=100,
    )
    root = _parse(svg)
    assert root.get("height") == "82"  # 20 + 2 rows of 26 + 10
    bars = root.findall(f"{SVG}rect")
    # 440 - 180 - 60 = 200px for 100 %.
    assert [b.get("width") for b in bars] == ["100", "25"]
    texts = [(t.get("class"), t.text) for t in root.findall(f"{SVG}text")]
    assert texts == [
        ("label", "store status"),
        ("value", "50%"),
        ("label", "net check"),
        ("value", "12.5%"),
    ]
    assert root.findtext(f"{SVG}desc") == "store status: 50%; net check: 12.5%."


@pytest.mark.parametrize("chart", [bar_chart, hbar_chart])
def test_no_data_says_so_instead_of_drawing_nothing(chart) -> None:  # type: ignore[no-untyped-def]
    root = _parse(chart([], chart_id="e", title="Empty"))
    assert root.findall(f"{SVG}rect") == []
    assert [t.text for t in root.findall(f"{SVG}text")] == ["no data yet"]
    assert root.get("role") == "img"


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [(3, "", "3"), (3.0, "s", "3s"), (2.25, "s", "2.2s"), (33.333, "%", "33.3%"), (0, "%", "0%")],
)
def test_values_are_shown_without_needless_decimals(value: float, unit: str, shown: str) -> None:
    assert value_text(value, unit) == shown


def test_all_zero_values_draw_flat_bars_without_dividing_by_zero() -> None:
    svg = bar_chart([("a", 0), ("b", 0)], chart_id="z", title="Z")
    assert re.findall(r'height="([\d.]+)"><title>', svg) == ["0", "0"]

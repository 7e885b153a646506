"""The campaign page's Activity: its report (core/campaigns/reporting.py) drawn as an inline SVG bar chart, computed
here and rendered by templates/console/_report.html: no script, no stylesheet or font from elsewhere. Every bar and
every period has a title (shown on hover), and the numbers are in a table below the chart as well."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...campaigns.reporting import METRICS, Report, campaign_report
from ...errors import CampaignkitError

if TYPE_CHECKING:
    from ...runtime import Runtime

# (metric, label, colour): colours told apart with the common colour-vision deficiencies, and from the page's text.
SERIES = (("entered", "Entered", "#1f4fd1"), ("completed", "Completed", "#1a7f37"), ("failed", "Failed", "#c62828"),
          ("sent", "Messages sent", "#d98200"), ("events", "Events", "#7b3fb8"))
LAST = {"day": 30, "hour": 48}  # periods the page shows, ending now (or at the last activity of an ended campaign)
WIDTH, HEIGHT = 960, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 12, 30
MAX_LABELS = 12


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True)
class Column:
    """A period's whole height: hovering anywhere over it shows its five numbers."""

    x: float
    width: float
    title: str
    label: str | None  # under the axis, for every few periods


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    columns: list[Column]
    ticks: list[tuple[float, str]]  # (y, value) of the horizontal grid lines
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    bottom: float = HEIGHT - BOTTOM


def activity(runtime: Runtime, campaign_id: str, by: str | None) -> dict[str, Any]:
    """What templates/console/_report.html needs: the report of the last 30 days (or, ``by`` hour, 48 hours), its
    chart and the series; or the problem that stopped it, as a line on the page."""
    by = "hour" if by == "hour" else "day"
    try:
        report = campaign_report(runtime, campaign_id, by=by, last=LAST[by])
    except CampaignkitError as exc:
        return {"report": None, "report_problem": str(exc), "report_by": by}
    active = any(any(p.counts.values()) for p in report.periods)
    return {"report": report, "report_by": by, "series": SERIES, "report_last": LAST[by],
            "report_window": window(report), "chart": draw(report) if active else None, "report_problem": None}


def window(report: Report) -> str:
    """The days (inclusive) or hours (from the first's start to the last's end) the report covers."""
    if report.by == "day":
        last = report.periods[-1].start
        first = report.since.strftime("%d %b %Y")
        return first if last == report.since else f"{first} to {last.strftime('%d %b %Y')}"
    return f"{report.since.strftime('%d %b %Y %H:00')} to {report.until.strftime('%d %b %Y %H:00')}"


def draw(report: Report) -> Chart:
    """Grouped bars, one group per period, one bar per metric, on a scale whose top is a round number."""
    periods = report.periods
    top, ticks = _scale(max((max(p.counts.values()) for p in periods), default=0))
    plot_height = HEIGHT - TOP - BOTTOM
    span = (WIDTH - RIGHT - LEFT) / max(len(periods), 1)
    bar = max(span * 0.8 / len(SERIES), 1.0)
    every = math.ceil(len(periods) / MAX_LABELS)
    if report.by == "hour":  # on whole hours of the day, so that midnight, labelled with its date, is among them
        every = next(d for d in (1, 2, 3, 4, 6, 8, 12, 24) if d >= min(every, 24))
    bars: list[Bar] = []
    columns: list[Column] = []
    for index, period in enumerate(periods):
        x = LEFT + index * span
        named = dict(zip(METRICS, period.counts.values(), strict=True))
        when = period_name(report.by, period.start)
        for offset, (metric, label, colour) in enumerate(SERIES):
            height = plot_height * named[metric] / top
            if named[metric]:
                bars.append(Bar(round(x + span * 0.1 + offset * bar, 2), round(TOP + plot_height - height, 2),
                                round(bar, 2), round(height, 2), colour, f"{when} · {label.lower()}: {named[metric]}"))
        numbers = ", ".join(f"{label.lower()} {named[metric]}" for metric, label, _ in SERIES)
        labelled = period.start.hour % every == 0 if report.by == "hour" else index % every == 0
        columns.append(Column(round(x, 2), round(span, 2), f"{when} · {numbers}",
                              axis_label(report.by, period.start) if labelled else None))
    grid = [(round(TOP + plot_height - plot_height * value / top, 2), f"{value:,}".replace(",", " "))
            for value in ticks]
    return Chart(bars, columns, grid)


def period_name(by: str, start: Any) -> str:
    return start.strftime("%a %d %b %Y") if by == "day" else start.strftime("%a %d %b %Y %H:00 UTC")


def axis_label(by: str, start: Any) -> str:
    if by == "day" or start.hour == 0:
        return str(start.strftime("%d %b"))
    return str(start.strftime("%H:00"))


def _scale(highest: int) -> tuple[int, list[int]]:
    """A round top at or above ``highest`` (1, 2 or 5 times a power of ten per step, at most five steps)."""
    if highest <= 0:
        return 1, [0, 1]
    power = 10 ** max(int(math.log10(highest)) - 1, 0)
    for step in (power * m for m in (1, 2, 5, 10, 20, 50, 100)):
        if highest <= step * 5:
            top = step * math.ceil(highest / step)
            return top, list(range(0, top + 1, step))
    raise AssertionError("unreachable: a step of 100 powers covers the highest value")

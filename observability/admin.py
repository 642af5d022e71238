"""The admin's Performance page, beside the other operational pages in the index."""

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse

from core.admin import StaffPageAdmin
from observability.models import PerformancePage
from observability.perfstats import performance_report

WINDOW_CHOICES = (5, 15, 60)
DEFAULT_WINDOW = 15
SLOWEST_QUERIES = 10


def timeline_chart(timeline: list[dict[str, Any]], *, width: int = 720, height: int = 200) -> dict[str, Any]:
    """SVG geometry for requests per minute (bars, errors in red) and p95 latency (line).

    Drawn server-side so the page needs no JavaScript or chart library from a CDN.
    """
    left, right, top, bottom = 44, 52, 12, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    baseline, slot = top + plot_h, plot_w / max(1, len(timeline))
    max_count = max((row["count"] for row in timeline), default=0) or 1
    max_p95 = max((row["p95_ms"] or 0 for row in timeline), default=0) or 1
    bars, points, ticks = [], [], []
    for i, row in enumerate(timeline):
        x, minute = left + i * slot, row["minute"]
        bar_h, error_h = plot_h * row["count"] / max_count, plot_h * row["errors"] / max_count
        label = f"{minute:%H:%M} UTC: {row['count']} requests, {row['errors']} errors"
        if row["p95_ms"] is not None:
            label += f", p95 {row['p95_ms']} ms"
            points.append(f"{x + slot / 2:.1f},{baseline - plot_h * row['p95_ms'] / max_p95:.1f}")
        geometry = {"x": x + slot * 0.15, "w": max(1.0, slot * 0.7), "y": baseline - bar_h, "h": bar_h}
        geometry |= {"error_y": baseline - error_h, "error_h": error_h}
        bars.append({**{name: f"{value:.1f}" for name, value in geometry.items()}, "label": label})
        if i in {0, len(timeline) // 2, len(timeline) - 1}:
            ticks.append({"x": f"{x + slot / 2:.1f}", "label": f"{minute:%H:%M}"})
    return {
        **{"width": width, "height": height, "left": left, "right_x": width - right, "top": top},
        **{"baseline": baseline, "label_y": height - 8, "bars": bars, "ticks": ticks, "p95_points": " ".join(points)},
        "max_count": max_count if any(row["count"] for row in timeline) else 0,
        "max_p95": max_p95 if points else 0,
    }


@admin.register(PerformancePage)
class PerformancePageAdmin(StaffPageAdmin):
    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        asked = request.GET.get("minutes", "")
        minutes = int(asked) if asked in {str(choice) for choice in WINDOW_CHOICES} else DEFAULT_WINDOW
        report = performance_report(minutes=minutes, limit=SLOWEST_QUERIES)
        for row in [report["totals"], *report["endpoints"]]:
            row["error_percent"] = round(row["error_rate"] * 100, 2)
        context = {
            **self.admin_site.each_context(request),
            "title": "Performance",
            "opts": self.model._meta,
            "report": report,
            "chart": timeline_chart(report["timeline"]),
            "window_choices": WINDOW_CHOICES,
            "minutes": minutes,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "observability/admin/performance.html", context)

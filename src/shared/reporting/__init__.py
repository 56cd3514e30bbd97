"""Run reports: what a person reads after a run (report.md, report.html with charts).

Public surface: `ReportCollector` (fed chunk by chunk during a run), `write_run_report`,
`local_baseline`, the trends over runs (`load_run_summaries`, `build_trends`, `write_trend_report`),
and the interval helpers in `stats`.
"""

from shared.reporting.baseline import local_baseline
from shared.reporting.collector import ReportCollector
from shared.reporting.run_report import BaselineFigure, MetricLine, metric_lines, report_charts, write_run_report
from shared.reporting.stats import wilson_interval
from shared.reporting.trends import Trends, build_trends, load_run_summaries, write_trend_report

__all__ = [
    "BaselineFigure",
    "MetricLine",
    "ReportCollector",
    "Trends",
    "build_trends",
    "load_run_summaries",
    "local_baseline",
    "metric_lines",
    "report_charts",
    "wilson_interval",
    "write_run_report",
    "write_trend_report",
]

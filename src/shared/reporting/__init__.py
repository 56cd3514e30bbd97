"""Run reports: what a person reads after a run (report.md, report.html with charts).

Public surface: `ReportCollector` (fed chunk by chunk during a run), `write_run_report`,
`local_baseline`, and the interval helpers in `stats`.
"""

from shared.reporting.baseline import local_baseline
from shared.reporting.collector import ReportCollector
from shared.reporting.run_report import BaselineFigure, MetricLine, metric_lines, write_run_report
from shared.reporting.stats import wilson_interval

__all__ = [
    "BaselineFigure",
    "MetricLine",
    "ReportCollector",
    "local_baseline",
    "metric_lines",
    "wilson_interval",
    "write_run_report",
]

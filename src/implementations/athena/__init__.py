"""athena: an insurance-underwriting recommendation assistant, monitored by evalmon.

Product glue only: the trace generator (demo data), prompt patterns, the recommendation
extractor, athena's heuristic metrics and the monitor configs in config/.
"""

"""Sinks: where results leave a run. `publish_results` in shared.monitoring.publishing drives them."""

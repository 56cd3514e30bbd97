"""Monitoring: config, sources, sampling, the ledger, publishing, and the OnlineMonitor."""

"""Shared metrics. Importing this package registers them all (see `load_builtin_metrics`)."""

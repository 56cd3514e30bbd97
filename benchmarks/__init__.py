"""Performance figures (`make bench`): each bench_*.py module's main() prints its own."""

"""The default extractor's parts: text and document unpacking, field paths, and the trace rules.

`shared.monitoring.extractors` is the public entry point (resolve_extractor, extract_with_origins).
"""

"""Versioned SQL migrations, `NNNN_name.sql`, applied in order by `evalmon db migrate`.

Never edit an applied file: add the next number. The checksum of each applied file is stored so
`evalmon db status` can say when a file changed after it was applied.
"""

"""The ledger of scored items (dedup state): CSV for one machine, Postgres for many workers."""

-- evalmon schema v2: one result row per (monitor, source, item, metric, version), and run leases.
-- Applied inside one transaction by `evalmon db migrate`, with search_path set to the target schema:
-- never schema-qualify names here.

-- 1. Results were keyed by run_id, so a redo (a run killed after publishing but before recording
--    its ledger rows) added a second row per pair. Keep the newest row of each natural key, then
--    make that key the primary key: a redo now overwrites, and `run_id` says which run wrote the
--    row last (the run history stays in evaluation_runs).
UPDATE evaluation_results SET metric_version = '' WHERE metric_version IS NULL;

DELETE FROM evaluation_results
WHERE ctid IN (
    SELECT ctid FROM (
        SELECT ctid, row_number() OVER (
            PARTITION BY monitor, source_key, item_id, metric_name, metric_version
            ORDER BY created_at DESC, run_id DESC
        ) AS newest_first
        FROM evaluation_results
    ) ranked
    WHERE newest_first > 1
);

ALTER TABLE evaluation_results
    ALTER COLUMN metric_version SET NOT NULL,
    DROP CONSTRAINT evaluation_results_pkey,
    ADD CONSTRAINT evaluation_results_pkey PRIMARY KEY (monitor, source_key, item_id, metric_name, metric_version);

COMMENT ON COLUMN evaluation_results.run_id IS 'the run that wrote this row last';
COMMENT ON COLUMN evaluation_results.created_at IS 'when this row was last written';

-- 2. Run leases: every running evalmon process that uses the database keeps one row here and renews
--    it every few seconds (shared/database/lease.py). A run is live while its lease is unexpired;
--    a process on the same machine that finds the holder's process gone deletes the lease at once.
--    Claims and `running` run rows belong to live runs only.
CREATE TABLE run_leases (
    run_id        text COLLATE "C" PRIMARY KEY,
    monitor       text COLLATE "C" NOT NULL,
    source_key    text COLLATE "C" NOT NULL,
    host          text,
    pid           integer,
    process_ns    text,    -- boot id and pid namespace: pids compare only within one
    process_start bigint,  -- the holder's start time (clock ticks since boot): pids are reused
    started_at    timestamptz NOT NULL DEFAULT now(),
    renewed_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX run_leases_monitor_idx ON run_leases (monitor, source_key);

-- VOLATILE: a fresh snapshot on every call, so a claim that waited for another worker's row lock
-- sees that worker's lease even when it was written after the claiming statement began.
CREATE FUNCTION evalmon_run_is_live(candidate text) RETURNS boolean
LANGUAGE sql VOLATILE SET search_path FROM CURRENT AS $$
    SELECT EXISTS (SELECT 1 FROM run_leases WHERE run_id = candidate AND expires_at > clock_timestamp())
$$;

-- 3. A claim is held while its run's lease lives; the per-claim expiry is gone. Claims taken
--    before this migration belong to no lease: they are dropped (the items are simply re-claimed).
DELETE FROM item_claims;
ALTER TABLE item_claims DROP COLUMN expires_at;

-- evalmon schema v1: runs, items, results (natural keys), the analyst view, the ledger and claims.
-- Identifier columns use COLLATE "C": ids are opaque, and byte-wise comparison keeps the key
-- indexes fast (the ledger looks up thousands of candidate ids per page).
-- Applied inside one transaction by `evalmon db migrate`, with search_path set to the target schema:
-- never schema-qualify names here.

CREATE TABLE evaluation_runs (
    run_id          text COLLATE "C" PRIMARY KEY,
    monitor         text COLLATE "C" NOT NULL,
    source_key      text COLLATE "C" NOT NULL,
    window_since    timestamptz,
    window_until    timestamptz,
    status          text        NOT NULL DEFAULT 'running',
    config_hash     text,
    evalmon_version text,
    counts          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    summary         jsonb,
    started_at      timestamptz NOT NULL,
    published_at    timestamptz,
    finished_at     timestamptz
);
CREATE INDEX evaluation_runs_monitor_started_idx ON evaluation_runs (monitor, started_at DESC);

CREATE TABLE evaluation_items (
    source_key       text COLLATE "C" NOT NULL,
    item_id          text COLLATE "C" NOT NULL,
    trace_id         text,
    observation_id   text,
    session_id       text,
    source_timestamp timestamptz,
    query            text,
    actual_output    text,
    expected_output  text,
    content_hash     text,
    inputs           jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_key, item_id)
);
CREATE INDEX evaluation_items_trace_idx ON evaluation_items (trace_id);
CREATE INDEX evaluation_items_session_idx ON evaluation_items (session_id);

CREATE TABLE evaluation_results (
    run_id           text COLLATE "C" NOT NULL,
    source_key       text COLLATE "C" NOT NULL,
    item_id          text COLLATE "C" NOT NULL,
    metric_name      text COLLATE "C" NOT NULL,
    monitor          text COLLATE "C" NOT NULL,
    metric_key       text,
    metric_version   text,
    status           text NOT NULL,
    score            double precision,
    passed           boolean,
    threshold        double precision,
    label            text,
    explanation      text,
    signals          jsonb NOT NULL DEFAULT '{}'::jsonb,
    error            text,
    cost_usd         double precision,
    latency_s        double precision,
    model            text,
    prompt_name      text,
    prompt_version   text,
    input_tokens     integer,
    output_tokens    integer,
    source_timestamp timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, source_key, item_id, metric_name)
);
-- No foreign keys to runs or items: the sink writes all three in one transaction, and per-row
-- FK triggers would cost more than the bulk insert itself (the view uses a LEFT JOIN).
-- Analyst queries: a monitor's metric over time (time = when the trace happened, else when scored).
CREATE INDEX evaluation_results_monitor_metric_time_idx
    ON evaluation_results (monitor, metric_name, (coalesce(source_timestamp, created_at)));
-- Deliberately no other index: each one costs every bulk publish a B-tree insert per row
-- (results -> items joins use the items primary key). Add one in a later migration if an
-- analyst query needs it, e.g. ON evaluation_results (source_key, item_id).

-- Results with their item; LEFT JOIN so a result never disappears from the view.
CREATE VIEW evaluation_results_with_items AS
SELECT
    r.run_id,
    r.monitor,
    r.source_key,
    r.item_id,
    r.metric_name,
    r.metric_key,
    r.metric_version,
    r.status,
    r.score,
    r.passed,
    r.threshold,
    r.label,
    r.explanation,
    r.signals,
    r.error,
    r.cost_usd,
    r.latency_s,
    r.model,
    r.prompt_name,
    r.prompt_version,
    r.input_tokens,
    r.output_tokens,
    r.created_at,
    coalesce(r.source_timestamp, r.created_at) AS ts,
    i.trace_id,
    i.observation_id,
    i.session_id,
    i.source_timestamp,
    i.query,
    i.actual_output,
    i.expected_output,
    i.content_hash,
    i.inputs,
    i.metadata
FROM evaluation_results r
LEFT JOIN evaluation_items i ON i.source_key = r.source_key AND i.item_id = r.item_id;

-- The ledger (DESIGN.md section 3): which metric version each item was scored and published with.
CREATE TABLE scored_items (
    monitor        text COLLATE "C" NOT NULL,
    source_key     text COLLATE "C" NOT NULL,
    item_id        text COLLATE "C" NOT NULL,
    metric_name    text COLLATE "C" NOT NULL,
    metric_version text NOT NULL,
    run_id         text COLLATE "C" NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (monitor, source_key, item_id, metric_name)
);

-- Leased claims (DESIGN.md section 9): one live worker per item; expired leases are taken over.
CREATE TABLE item_claims (
    monitor    text COLLATE "C" NOT NULL,
    source_key text COLLATE "C" NOT NULL,
    item_id    text COLLATE "C" NOT NULL,
    run_id     text COLLATE "C" NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (monitor, source_key, item_id)
);
CREATE INDEX item_claims_run_idx ON item_claims (run_id);

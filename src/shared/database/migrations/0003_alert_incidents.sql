-- evalmon schema v3: alert incidents (shared/monitoring/incidents.py, docs/alerts.md).
-- Applied inside one transaction by `evalmon db migrate`, with search_path set to the target schema:
-- never schema-qualify names here.

-- The newest window each monitor's alert rules were evaluated on: a run whose window does not end
-- after it (a backfill or a rerun) sends no alert messages.
CREATE TABLE alert_monitors (
    monitor           text COLLATE "C" PRIMARY KEY,
    last_window_until timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- One row per incident: a rule that started firing, with the level people were last told about
-- (`value`, and `level`: the figures the "worsened" test compares with). At most one open
-- incident per (monitor, rule); closed ones stay as the alert history.
CREATE TABLE alert_incidents (
    incident_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    monitor         text COLLATE "C" NOT NULL,
    rule_key        text COLLATE "C" NOT NULL,
    metric_name     text COLLATE "C" NOT NULL,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'dropped')),
    opened_run_id   text NOT NULL,
    opened_since    timestamptz NOT NULL,
    opened_until    timestamptz NOT NULL,
    runs_open       integer NOT NULL DEFAULT 1,
    value           double precision NOT NULL,
    level           jsonb NOT NULL,
    notified_run_id text NOT NULL,
    closed_run_id   text,
    closed_at       timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX alert_incidents_one_open_idx ON alert_incidents (monitor, rule_key) WHERE status = 'open';
CREATE INDEX alert_incidents_monitor_time_idx ON alert_incidents (monitor, opened_until DESC);

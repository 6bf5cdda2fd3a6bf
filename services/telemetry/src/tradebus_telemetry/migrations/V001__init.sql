-- Data-quality issues, one row per issue event (its deterministic id is the natural key).
CREATE TABLE quality_issues (
    event_id    text PRIMARY KEY,
    symbol      text NOT NULL,
    interval    text NOT NULL,
    kind        text NOT NULL,
    severity    text NOT NULL,
    detail      text NOT NULL,
    bar_time    timestamptz,
    detected_at timestamptz NOT NULL,
    mode        text NOT NULL,
    trace_id    text NOT NULL
);
CREATE INDEX quality_issues_detected_at ON quality_issues (detected_at DESC);

-- Readiness as published: the status, the failing points and the full evaluation.
CREATE TABLE readiness_snapshots (
    checked_at     timestamptz PRIMARY KEY,
    status         text NOT NULL,
    failing        text[] NOT NULL,
    failure_points jsonb NOT NULL
);

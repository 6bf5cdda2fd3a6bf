-- Circuit breakers (tradebus_risk.breaker): one row per symbol that ever had a fill failure,
-- a trip or a reset, and ACCOUNT (the equity-drop breaker and its reference). Written in the
-- batch's transaction, so a replay or a crash trips the same breakers at the same bars.
CREATE TABLE breaker (
    scope         text PRIMARY KEY,
    state         text NOT NULL CHECK (state IN ('closed', 'open', 'half_open')),
    since         timestamptz,
    reopens_at    timestamptz,
    trigger       text NOT NULL DEFAULT '',
    detail        text NOT NULL DEFAULT '',
    fill_failures integer NOT NULL DEFAULT 0,
    probe         text,
    ref_equity    numeric,
    ref_at        timestamptz,
    trips         integer NOT NULL DEFAULT 0
);

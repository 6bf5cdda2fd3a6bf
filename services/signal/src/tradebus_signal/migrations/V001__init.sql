-- Recent bars per (symbol, interval): enough to rebuild indicator state after a restart and to
-- serve POST /v1/signal. Older bars are pruned; the aggregator keeps the full history.
CREATE TABLE bars (
    symbol       text        NOT NULL,
    interval     text        NOT NULL,
    open_time    timestamptz NOT NULL,
    close_time   timestamptz NOT NULL,
    open         numeric     NOT NULL,
    high         numeric     NOT NULL,
    low          numeric     NOT NULL,
    close        numeric     NOT NULL,
    volume       numeric     NOT NULL,
    quote_volume numeric     NOT NULL,
    trades       integer     NOT NULL,
    complete     boolean     NOT NULL,
    source       text        NOT NULL,
    revision     integer     NOT NULL,
    PRIMARY KEY (symbol, interval, open_time)
);

-- Every emitted signal, as published.
CREATE TABLE signals (
    event_id   text        PRIMARY KEY,
    symbol     text        NOT NULL,
    interval   text        NOT NULL,
    bar_time   timestamptz NOT NULL,
    state      text        NOT NULL,
    confidence numeric     NOT NULL,
    mode       text        NOT NULL,
    trace_id   text        NOT NULL,
    event      jsonb       NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX signals_symbol_bar_time ON signals (symbol, bar_time DESC);

-- Closed trades as received on exec.trade.*: the single source every figure is recomputed from.
CREATE TABLE trades (
    trade_id     text PRIMARY KEY,
    event_id     text NOT NULL,
    trace_id     text NOT NULL,
    mode         text NOT NULL CHECK (mode IN ('live', 'replay')),
    symbol       text NOT NULL,
    strategy     text NOT NULL,
    direction    text NOT NULL,
    quantity     numeric NOT NULL,
    entry_price  numeric NOT NULL,
    exit_price   numeric NOT NULL,
    entry_time   timestamptz NOT NULL,
    exit_time    timestamptz NOT NULL,
    gross_pnl    numeric NOT NULL,
    fees         numeric NOT NULL,
    net_pnl      numeric NOT NULL,
    exit_reason  text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX trades_exit_time ON trades (exit_time, trade_id);
CREATE INDEX trades_strategy ON trades (strategy);

-- Figures per local day (ROLLUP_TIMEZONE) of the trades' exits. `revision` is the hash of the
-- figures; a row whose `published_revision` lags it still owes its rollups.daily event (outbox).
CREATE TABLE daily_performance (
    day                 date PRIMARY KEY,
    trades              integer NOT NULL,
    wins                integer NOT NULL,
    win_rate            numeric NOT NULL,
    gross_pnl           numeric NOT NULL,
    net_pnl             numeric NOT NULL,
    fees                numeric NOT NULL,
    profit_factor       numeric,
    max_drawdown        numeric NOT NULL,
    sharpe              numeric,
    mode                text NOT NULL,
    revision            text NOT NULL,
    published_revision  text,
    computed_at         timestamptz NOT NULL
);
CREATE INDEX daily_performance_unpublished ON daily_performance (day)
    WHERE published_revision IS DISTINCT FROM revision;

-- Figures per strategy over all of its trades.
CREATE TABLE strategy_performance (
    strategy            text PRIMARY KEY,
    trades              integer NOT NULL,
    wins                integer NOT NULL,
    win_rate            numeric NOT NULL,
    gross_pnl           numeric NOT NULL,
    net_pnl             numeric NOT NULL,
    fees                numeric NOT NULL,
    profit_factor       numeric,
    max_drawdown        numeric NOT NULL,
    sharpe              numeric,
    mode                text NOT NULL,
    revision            text NOT NULL,
    published_revision  text,
    computed_at         timestamptz NOT NULL
);
CREATE INDEX strategy_performance_unpublished ON strategy_performance (strategy)
    WHERE published_revision IS DISTINCT FROM revision;

-- One row per local day whose end-of-day job completed, so only one instance ever runs it.
CREATE TABLE eod_runs (
    day       date PRIMARY KEY,
    instance  text NOT NULL,
    ran_at    timestamptz NOT NULL DEFAULT now()
);

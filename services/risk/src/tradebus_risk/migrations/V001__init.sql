-- The paper account: one row. Realised P&L is gross; fees are counted apart.
CREATE TABLE account (
    id               smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    initial_balance  numeric NOT NULL,
    cash             numeric NOT NULL,
    realized_pnl     numeric NOT NULL DEFAULT 0,
    fees             numeric NOT NULL DEFAULT 0,
    peak_equity      numeric NOT NULL,
    frozen           boolean NOT NULL DEFAULT false,
    day              date,
    day_start_equity numeric NOT NULL DEFAULT 0,
    day_realized     numeric NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Open longs, one per symbol (closed ones live on in trades).
CREATE TABLE positions (
    symbol       text PRIMARY KEY,
    position_id  text NOT NULL,
    quantity     numeric NOT NULL,
    entry_price  numeric NOT NULL,
    entry_fee    numeric NOT NULL,
    stop         numeric,
    targets      numeric[] NOT NULL DEFAULT '{}',
    mark_price   numeric NOT NULL,
    opened_at    timestamptz NOT NULL,
    strategy     text NOT NULL,
    trace_id     text NOT NULL,
    mode         text NOT NULL
);

-- Paper market orders and their single fill.
CREATE TABLE orders (
    order_id     text PRIMARY KEY,
    symbol       text NOT NULL,
    side         text NOT NULL,
    purpose      text NOT NULL,
    quantity     numeric NOT NULL,
    reason       text NOT NULL,
    signal_id    text,
    position_id  text NOT NULL,
    submitted_at timestamptz NOT NULL,
    trace_id     text NOT NULL,
    mode         text NOT NULL,
    strategy     text NOT NULL,
    stop         numeric,
    targets      numeric[] NOT NULL DEFAULT '{}',
    status       text NOT NULL,
    fill_price   numeric,
    fee          numeric,
    filled_at    timestamptz
);
CREATE INDEX orders_pending ON orders (symbol) WHERE status = 'submitted';

-- Closed round trips.
CREATE TABLE trades (
    trade_id    text PRIMARY KEY,
    symbol      text NOT NULL,
    strategy    text NOT NULL,
    quantity    numeric NOT NULL,
    entry_price numeric NOT NULL,
    exit_price  numeric NOT NULL,
    entry_time  timestamptz NOT NULL,
    exit_time   timestamptz NOT NULL,
    gross_pnl   numeric NOT NULL,
    fees        numeric NOT NULL,
    net_pnl     numeric NOT NULL,
    exit_reason text NOT NULL,
    mode        text NOT NULL
);
CREATE INDEX trades_by_exit ON trades (exit_time DESC);

-- Every verdict on a signal (one per signal id) and every account event (freeze, reset).
CREATE TABLE audit (
    id          bigserial PRIMARY KEY,
    signal_id   text UNIQUE,
    symbol      text,
    decision    text NOT NULL,
    reason      text NOT NULL,
    detail      text NOT NULL,
    event_time  timestamptz NOT NULL,
    mode        text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- Bars and signals received but not yet applied (the event-time merge holds them here).
CREATE TABLE inbox (
    event_id    text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('signal', 'bar')),
    symbol      text NOT NULL,
    at          timestamptz NOT NULL,
    live        boolean NOT NULL,
    payload     text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_order ON inbox (symbol, at, kind);

-- Per symbol: how far each stream was received and applied, and the position event counter.
CREATE TABLE symbol_state (
    symbol       text PRIMARY KEY,
    bar_seen     timestamptz,
    signal_seen  timestamptz,
    base_ms      bigint,
    bar_applied  timestamptz,
    position_seq bigint NOT NULL DEFAULT 0
);

-- Transactional outbox: events written with the state change that caused them, sent after.
CREATE TABLE outbox (
    seq        bigserial PRIMARY KEY,
    event_id   text NOT NULL UNIQUE,
    event_type text NOT NULL,
    subject    text NOT NULL,
    payload    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;

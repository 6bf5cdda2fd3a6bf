-- Every 1m bar ingest published, by where it came from (a synthetic and a replayed bar for the
-- same minute are different facts and both kept).
CREATE TABLE bars (
    source       text        NOT NULL,
    symbol       text        NOT NULL,
    open_time    timestamptz NOT NULL,
    open         numeric     NOT NULL,
    high         numeric     NOT NULL,
    low          numeric     NOT NULL,
    close        numeric     NOT NULL,
    volume       numeric     NOT NULL CHECK (volume >= 0),
    quote_volume numeric     NOT NULL CHECK (quote_volume >= 0),
    trades       bigint      NOT NULL CHECK (trades >= 0),
    stored_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, symbol, open_time),
    CHECK (low <= open AND open <= high AND low <= close AND close <= high)
);

-- How far each symbol's feed got: the last open time whose publication JetStream acked, and
-- its close (the synthetic path continues from it after a restart).
CREATE TABLE checkpoints (
    source      text        NOT NULL,
    symbol      text        NOT NULL,
    open_time   timestamptz NOT NULL,
    last_close  numeric     NOT NULL,
    bars_stored bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, symbol)
);

-- Every bar the aggregator knows: the 1m bars it consumed and the higher bars it published.
-- A higher bar is stored only once published, so a stored higher bar means "published at this revision".
CREATE TABLE bars (
    symbol       text        NOT NULL,
    interval     text        NOT NULL CHECK (interval IN ('1m', '5m', '15m', '1h', '4h', '1d', '1w')),
    open_time    timestamptz NOT NULL,
    open         numeric     NOT NULL,
    high         numeric     NOT NULL,
    low          numeric     NOT NULL,
    close        numeric     NOT NULL,
    volume       numeric     NOT NULL CHECK (volume >= 0),
    quote_volume numeric     NOT NULL CHECK (quote_volume >= 0),
    trades       bigint      NOT NULL CHECK (trades >= 0),
    complete     boolean     NOT NULL,
    revision     integer     NOT NULL DEFAULT 0 CHECK (revision >= 0),
    source       text        NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval, open_time)
);

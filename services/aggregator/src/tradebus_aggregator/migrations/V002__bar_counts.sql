-- Bar counts per symbol and interval for GET /v1/meta/instruments, kept by a statement-level
-- trigger in the same transaction as every insert (COPY and INSERT ... ON CONFLICT alike: the
-- transition table holds only the rows actually inserted, not the ones updated), so the
-- endpoint reads a few rows instead of counting the whole table.
CREATE TABLE bar_counts (
    symbol   text   NOT NULL,
    interval text   NOT NULL,
    bars     bigint NOT NULL CHECK (bars >= 0),
    PRIMARY KEY (symbol, interval)
);

INSERT INTO bar_counts (symbol, interval, bars)
SELECT symbol, interval, count(*) FROM bars GROUP BY symbol, interval;

CREATE FUNCTION count_inserted_bars() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO bar_counts AS c (symbol, interval, bars)
    SELECT symbol, interval, count(*) FROM inserted GROUP BY symbol, interval
    ON CONFLICT (symbol, interval) DO UPDATE SET bars = c.bars + excluded.bars;
    RETURN NULL;
END;
$$;

CREATE TRIGGER bars_counted AFTER INSERT ON bars
REFERENCING NEW TABLE AS inserted
FOR EACH STATEMENT EXECUTE FUNCTION count_inserted_bars();

-- One account per quote asset (issue 15): `balances` holds each funded asset's cash and running
-- totals; the `account` row keeps the book's version and mirrors the home asset (the first of
-- RISK_BALANCES, USDT by default) for readers of the single-account columns. An existing
-- account row was the USDT account: it becomes the USDT balance.
CREATE TABLE balances (
    asset            text PRIMARY KEY,
    initial_balance  numeric NOT NULL,
    cash             numeric NOT NULL,
    realized_pnl     numeric NOT NULL DEFAULT 0,
    fees             numeric NOT NULL DEFAULT 0,
    peak_equity      numeric NOT NULL,
    frozen           boolean NOT NULL DEFAULT false,
    day              date,
    day_start_equity numeric NOT NULL DEFAULT 0,
    day_realized     numeric NOT NULL DEFAULT 0
);
INSERT INTO balances
SELECT 'USDT', initial_balance, cash, realized_pnl, fees, peak_equity, frozen, day, day_start_equity, day_realized
FROM account WHERE id = 1;

-- A pending entry's planned price (its notional counts in the exposure until it fills).
ALTER TABLE orders ADD COLUMN est_price numeric;

-- Per symbol, the closes sampled for the correlation groups (exposure.py), oldest first. A batch
-- passes only the samples it took; save_batch appends them and keeps the last `sample_keep`.
ALTER TABLE symbol_state ADD COLUMN sample_times timestamptz[] NOT NULL DEFAULT '{}',
    ADD COLUMN sample_closes numeric[] NOT NULL DEFAULT '{}';
CREATE FUNCTION keep_last(a anyarray, n integer) RETURNS anyarray
LANGUAGE sql IMMUTABLE AS $$ SELECT a[greatest(cardinality(a) - n + 1, 1):] $$;

-- save_batch as V003's, plus the balance rows (the account row is written as before) and the
-- samples' length.
DROP FUNCTION save_batch(
    numeric, numeric, numeric, numeric, boolean, date, numeric, numeric, bigint,
    text[], positions[], symbol_state[], orders[], trades[],
    text[], text[], text[], text[], text[], timestamptz[], text[],
    text[], text[], text[], text[],
    text[], text[], text[], timestamptz[], boolean[], text[], text[]
);
CREATE FUNCTION save_batch(
    new_cash numeric, new_realized_pnl numeric, new_fees numeric, new_peak_equity numeric, new_frozen boolean,
    new_day date, new_day_start_equity numeric, new_day_realized numeric, new_version bigint,
    touched text[], holding_rows positions[], symbol_rows symbol_state[], order_rows orders[], trade_rows trades[],
    audit_signal_ids text[], audit_symbols text[], audit_decisions text[], audit_reasons text[],
    audit_details text[], audit_times timestamptz[], audit_modes text[],
    outbox_ids text[], outbox_types text[], outbox_subjects text[], outbox_payloads text[],
    stage_ids text[], stage_kinds text[], stage_symbols text[], stage_times timestamptz[], stage_live boolean[],
    stage_payloads text[], unstage_ids text[], balance_rows balances[], sample_keep integer
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE account SET cash = new_cash, realized_pnl = new_realized_pnl, fees = new_fees,
        peak_equity = new_peak_equity, frozen = new_frozen, day = new_day, day_start_equity = new_day_start_equity,
        day_realized = new_day_realized, version = new_version, updated_at = now()
    WHERE id = 1;
    INSERT INTO balances SELECT * FROM unnest(balance_rows)
    ON CONFLICT (asset) DO UPDATE SET cash = EXCLUDED.cash, realized_pnl = EXCLUDED.realized_pnl,
        fees = EXCLUDED.fees, peak_equity = EXCLUDED.peak_equity, frozen = EXCLUDED.frozen, day = EXCLUDED.day,
        day_start_equity = EXCLUDED.day_start_equity, day_realized = EXCLUDED.day_realized;
    IF cardinality(touched) > 0 THEN
        DELETE FROM positions AS p WHERE p.symbol = ANY(touched);
        INSERT INTO positions SELECT * FROM unnest(holding_rows);
        INSERT INTO symbol_state SELECT * FROM unnest(symbol_rows)
        ON CONFLICT (symbol) DO UPDATE SET bar_seen = EXCLUDED.bar_seen, signal_seen = EXCLUDED.signal_seen,
            base_ms = EXCLUDED.base_ms, bar_applied = EXCLUDED.bar_applied, position_seq = EXCLUDED.position_seq,
            sample_times = keep_last(symbol_state.sample_times || EXCLUDED.sample_times, sample_keep),
            sample_closes = keep_last(symbol_state.sample_closes || EXCLUDED.sample_closes, sample_keep);
    END IF;
    IF cardinality(order_rows) > 0 THEN
        INSERT INTO orders SELECT * FROM unnest(order_rows)
        ON CONFLICT (order_id) DO UPDATE SET quantity = EXCLUDED.quantity, status = EXCLUDED.status,
            fill_price = EXCLUDED.fill_price, fee = EXCLUDED.fee, filled_at = EXCLUDED.filled_at;
    END IF;
    IF cardinality(trade_rows) > 0 THEN
        INSERT INTO trades SELECT * FROM unnest(trade_rows) ON CONFLICT (trade_id) DO NOTHING;
    END IF;
    IF cardinality(audit_signal_ids) > 0 THEN
        INSERT INTO audit (signal_id, symbol, decision, reason, detail, event_time, mode)
        SELECT u.signal_id, u.symbol, u.decision, u.reason, u.detail, u.event_time, u.mode
        FROM unnest(audit_signal_ids, audit_symbols, audit_decisions, audit_reasons, audit_details, audit_times,
            audit_modes) WITH ORDINALITY AS u (signal_id, symbol, decision, reason, detail, event_time, mode, n)
        ORDER BY u.n
        ON CONFLICT (signal_id) DO NOTHING;
    END IF;
    IF cardinality(outbox_ids) > 0 THEN
        INSERT INTO outbox (event_id, event_type, subject, payload)
        SELECT u.event_id, u.event_type, u.subject, u.payload
        FROM unnest(outbox_ids, outbox_types, outbox_subjects, outbox_payloads)
            WITH ORDINALITY AS u (event_id, event_type, subject, payload, n)
        ORDER BY u.n
        ON CONFLICT (event_id) DO NOTHING;
    END IF;
    IF cardinality(stage_ids) > 0 THEN
        INSERT INTO inbox (event_id, kind, symbol, at, live, payload)
        SELECT * FROM unnest(stage_ids, stage_kinds, stage_symbols, stage_times, stage_live, stage_payloads)
        ON CONFLICT (event_id) DO NOTHING;
    END IF;
    IF cardinality(unstage_ids) > 0 THEN
        DELETE FROM inbox AS i WHERE i.event_id = ANY(unstage_ids);
    END IF;
END $$;

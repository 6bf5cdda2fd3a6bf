-- A batch's transaction in four round trips (BEGIN, lock_book, save_batch, COMMIT) instead of
-- one per statement: every statement was a round trip, risk's transactions the largest share
-- of PostgreSQL's CPU in a replay. Both are VOLATILE PL/pgSQL, so each statement inside takes
-- a new snapshot: what lock_book reads was committed before the lock was granted.

-- The book lock, then the account's version and which of `signal_ids` were decided already.
CREATE FUNCTION lock_book(signal_ids text[], OUT book_version bigint, OUT decided text[])
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tradebus.risk.book'));
    SELECT a.version INTO book_version FROM account AS a WHERE a.id = 1;
    IF cardinality(signal_ids) > 0 THEN
        decided := ARRAY(SELECT d.signal_id FROM audit AS d WHERE d.signal_id = ANY(signal_ids));
    END IF;
END $$;

-- What one batch changed, in order: the account (with the new version); the positions and
-- symbol rows of the touched symbols (rows of the tables' own types); orders, trades, audit
-- (in its order) and outbox rows; the inbox rows to add and to delete. Empty parts are skipped.
CREATE FUNCTION save_batch(
    new_cash numeric, new_realized_pnl numeric, new_fees numeric, new_peak_equity numeric, new_frozen boolean,
    new_day date, new_day_start_equity numeric, new_day_realized numeric, new_version bigint,
    touched text[], holding_rows positions[], symbol_rows symbol_state[], order_rows orders[], trade_rows trades[],
    audit_signal_ids text[], audit_symbols text[], audit_decisions text[], audit_reasons text[],
    audit_details text[], audit_times timestamptz[], audit_modes text[],
    outbox_ids text[], outbox_types text[], outbox_subjects text[], outbox_payloads text[],
    stage_ids text[], stage_kinds text[], stage_symbols text[], stage_times timestamptz[], stage_live boolean[],
    stage_payloads text[], unstage_ids text[]
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE account SET cash = new_cash, realized_pnl = new_realized_pnl, fees = new_fees,
        peak_equity = new_peak_equity, frozen = new_frozen, day = new_day, day_start_equity = new_day_start_equity,
        day_realized = new_day_realized, version = new_version, updated_at = now()
    WHERE id = 1;
    IF cardinality(touched) > 0 THEN
        DELETE FROM positions AS p WHERE p.symbol = ANY(touched);
        INSERT INTO positions SELECT * FROM unnest(holding_rows);
        INSERT INTO symbol_state SELECT * FROM unnest(symbol_rows)
        ON CONFLICT (symbol) DO UPDATE SET bar_seen = EXCLUDED.bar_seen, signal_seen = EXCLUDED.signal_seen,
            base_ms = EXCLUDED.base_ms, bar_applied = EXCLUDED.bar_applied, position_seq = EXCLUDED.position_seq;
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

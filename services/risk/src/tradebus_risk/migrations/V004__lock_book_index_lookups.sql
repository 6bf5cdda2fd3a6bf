-- lock_book finds which of a batch's signal ids were decided already (`signal_id = ANY(...)`).
-- Planned while the audit table was empty, that lookup kept a plan scanning the whole table
-- for every batch (a replay's audit grows to 86,400 rows: 18 of its 55 PostgreSQL CPU
-- seconds), and a fresh plan for a batch of a few hundred ids may still prefer a hashed scan
-- of the whole table. The lookups are probes of the unique index, whatever the table's size
-- or statistics.
ALTER FUNCTION lock_book(text[]) SET enable_seqscan = off;

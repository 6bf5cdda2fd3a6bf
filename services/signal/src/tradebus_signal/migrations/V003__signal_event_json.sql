-- A signal's event is kept as the JSON published, in `json`: PostgreSQL only checks its syntax,
-- where `jsonb` parsed every ~4 kB event into a tree (a third of the service's database CPU in a
-- replay) that nothing queries. Rows stored before keep jsonb's rendering of their event.
ALTER TABLE signals ALTER COLUMN event TYPE json USING event::json;

-- Changing the type reset the column's compression to the server's default: lz4 again (V002).
DO $$
BEGIN
    ALTER TABLE signals ALTER COLUMN event SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 not available: signal events stay pglz-compressed';
END
$$;

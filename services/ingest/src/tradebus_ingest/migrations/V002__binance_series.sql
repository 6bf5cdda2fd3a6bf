-- Binance's WebSocket and REST deliver the same exchange data: both are stored as one series,
-- source 'binance', so a minute is kept once whichever transport brought it; `transport` says
-- which one did (binance-ws / binance-rest). Other sources store their own name in both.
ALTER TABLE bars ADD COLUMN transport text;
UPDATE bars SET transport = source;

"""The Binance spot adapter: kline payloads, the REST client, the kline WebSocket, and the feed
that keeps one gap-free 1m series per symbol from them. The rest of ingest sees only bars."""

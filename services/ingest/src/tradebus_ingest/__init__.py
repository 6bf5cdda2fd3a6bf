"""tradebus ingest service."""

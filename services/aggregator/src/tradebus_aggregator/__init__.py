"""tradebus aggregator service."""

"""tradebus signal service."""

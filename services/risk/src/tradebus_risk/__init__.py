"""tradebus risk service."""

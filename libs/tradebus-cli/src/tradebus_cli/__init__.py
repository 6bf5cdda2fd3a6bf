"""tradebus command line."""

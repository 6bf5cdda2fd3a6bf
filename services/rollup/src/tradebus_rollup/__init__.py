"""tradebus rollup service."""

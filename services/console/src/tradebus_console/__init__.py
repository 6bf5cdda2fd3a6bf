"""tradebus console: the trader's live web page (charts, signals, account, decisions, readiness)."""

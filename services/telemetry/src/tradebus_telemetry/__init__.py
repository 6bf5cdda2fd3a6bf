"""tradebus telemetry service."""

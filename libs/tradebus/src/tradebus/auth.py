"""The bearer-token guard for mutating HTTP endpoints (`TRADEBUS_API_TOKEN`)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Header, HTTPException
from pydantic import SecretStr


def bearer_token_guard(configured: SecretStr | None) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency admitting only `Authorization: Bearer <configured>`.

    With no token configured the endpoints refuse (503) rather than stand open.
    """

    async def require(authorization: str | None = Header(default=None)) -> None:
        expected = configured.get_secret_value() if configured else ""
        if not expected:
            raise HTTPException(503, "TRADEBUS_API_TOKEN is not configured; mutating endpoints are disabled")
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    return require

"""One rule for a symbol in an HTTP request, the same in every service.

- a symbol the stack is configured for (`SYMBOLS`) but holds no data for yet: 200, empty (`[]`
  for a list, `null` for a single answer);
- a well-formed symbol the stack does not know: 404, the message naming the known ones;
- something that cannot be a symbol (not alphanumeric): 422, like any malformed parameter.

An empty `SYMBOLS` (some tests) knows every symbol. Case does not matter (`btcusdt` is
`BTCUSDT`). Services declare `UNKNOWN_SYMBOL` in their routes' `responses` so the OpenAPI
document says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from fastapi import HTTPException, Query

RULE: Final = (
    "A symbol the stack is configured for (SYMBOLS) but has no data for yet answers 200 with an empty "
    "result; a symbol it does not know answers 404 naming the known ones."
)
UNKNOWN_SYMBOL: Final[dict[int | str, dict[str, Any]]] = {
    404: {"description": "Unknown symbol: not in SYMBOLS. The message names the symbols this stack knows."}
}


def known(value: str, symbols: Sequence[str]) -> str:
    """`value` as a configured symbol (upper case); HTTPException 422 or 404 otherwise."""
    symbol = value.strip().upper()
    if not symbol.isascii() or not symbol.isalnum():
        raise HTTPException(422, f"symbol must be alphanumeric like BTCUSDT, got {value!r}")
    if symbols and symbol not in symbols:  # no SYMBOLS: whatever arrives (admission does the same)
        raise HTTPException(404, f"unknown symbol {symbol}; this stack knows {', '.join(symbols)} (SYMBOLS)")
    return symbol


def required_symbol(symbols: Sequence[str]) -> Callable[[str], str]:
    """A FastAPI dependency: the `symbol` query parameter, required, known (see `known`)."""

    example = symbols[0] if symbols else "BTCUSDT"

    def dependency(symbol: str = Query(description=f"e.g. {example}. {RULE}")) -> str:
        return known(symbol, symbols)

    return dependency


def optional_symbol(symbols: Sequence[str]) -> Callable[[str | None], str | None]:
    """A FastAPI dependency: the `symbol` query parameter, optional (None: all), known when given."""

    def dependency(symbol: str | None = Query(None, description=f"Only this symbol. {RULE}")) -> str | None:
        return None if symbol is None else known(symbol, symbols)

    return dependency

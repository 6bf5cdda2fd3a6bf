"""A readable account of a signal, built only from the signal's own fields (UTF-8 text)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from tradebus.display import price, ratio, tick_of
from tradebus.events import HorizonSignal, Signal

_TAG_WORDS = {
    "trend_up": "EMA fast above EMA slow",
    "trend_down": "EMA fast below EMA slow",
    "macd_bullish": "MACD histogram positive",
    "macd_bearish": "MACD histogram negative",
    "rsi_overbought": "RSI overbought",
    "rsi_oversold": "RSI oversold",
    "above_upper_band": "close above the upper Bollinger band",
    "below_lower_band": "close below the lower Bollinger band",
}


def horizon_line(h: HorizonSignal, tags: Iterable[str]) -> str:
    """The line of one horizon, from its signal and its own (unprefixed) rationale tags; it
    changes only with the horizon, so the engine keeps it with the horizon's score."""
    words = [_TAG_WORDS[t] for t in tags if t in _TAG_WORDS]
    rsi = h.features.get("rsi")
    if rsi is not None:
        words.append(f"RSI {rsi:.1f}")
    quality = h.features.get("quality", Decimal(1))
    if quality < 1:
        words.append(f"low data quality ({h.bars} bars, quality {quality:.2f})")
    detail = ", ".join(words) or "not enough bars for any indicator"
    return f"• {h.interval}: {h.direction.value}, strength {h.strength}, confidence {h.confidence} — {detail}"


def explanation(signal: Signal, horizon_lines: Sequence[str]) -> str:
    """`horizon_lines` are the `horizon_line`s of `signal.horizons`, in order."""
    c = signal.consensus
    horizons = ", ".join(h.interval for h in signal.horizons)
    lines = [
        f"{signal.symbol} {signal.interval} close {signal.price} → {signal.state.value}, "
        f"confidence {signal.confidence}.",
        f"Consensus {c.consensus_direction.value} (agreement {c.agreement_score}) across {horizons}.",
    ]
    lines.extend(horizon_lines)
    if signal.plan is not None:
        p = signal.plan
        tick = tick_of(signal.price)
        targets = " / ".join(price(t, tick) for t in p.targets)
        lines.append(
            f"Plan: entry {price(p.entry, tick)}, stop {price(p.stop, tick)}, targets {targets}, "
            f"risk/reward {ratio(p.risk_reward, 2)}."
        )
    elif "no_plan" in signal.rationale:
        lines.append("No trade plan: the base horizon has no ATR yet.")
    return "\n".join(lines)

"""Synthetic, time-varying traffic with closed-form cumulative counts.

The request rate of a server is a sum of cosines, so the number of requests served up to any
time is its exact integral: counters computed from it never go down, whatever order the
scrapes come in. Requests are split into a "calm" and a "busy" regime (the busy share rises
with the load); each regime has its own latency distribution, so latency percentiles rise at
peak load while every cumulative histogram bucket still only grows.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

LOAD_PERIOD_SECONDS = 600.0
RIPPLE_PERIOD_SECONDS = 97.0
LOAD_AMPLITUDE = 0.6
RIPPLE_AMPLITUDE = 0.08


@dataclass(frozen=True)
class Wave:
    """f(t) = sum of amplitude * cos(omega * t + phase) over `terms` (omega 0: a constant)."""

    terms: tuple[tuple[float, float, float], ...]

    def __call__(self, t: float) -> float:
        return sum(a * math.cos(w * t + p) for a, w, p in self.terms)

    def integral(self, t: float) -> float:
        """The integral of f from 0 to t."""
        total = 0.0
        for a, w, p in self.terms:
            if w == 0.0:
                total += a * math.cos(p) * t
            else:
                total += a * (math.sin(w * t + p) - math.sin(p)) / w
        return total

    def __mul__(self, other: Wave) -> Wave:
        terms = []
        for a1, w1, p1 in self.terms:
            for a2, w2, p2 in other.terms:
                terms.append((a1 * a2 / 2, w1 + w2, p1 + p2))
                terms.append((a1 * a2 / 2, w1 - w2, p1 - p2))
        return Wave(tuple(terms))


def constant(value: float) -> tuple[float, float, float]:
    return (value, 0.0, 0.0)


def sine(amplitude: float, period: float, phase: float) -> tuple[float, float, float]:
    return (amplitude, 2 * math.pi / period, phase - math.pi / 2)


@dataclass(frozen=True)
class Progress:
    """A workload at one instant: cumulative requests per regime and the current rates."""

    calm_requests: float
    busy_requests: float
    rate: float
    busy_share: float
    peak_rate: float

    @property
    def requests(self) -> float:
        return self.calm_requests + self.busy_requests


@dataclass(frozen=True)
class Workload:
    """Requests per second of one server, and which share of them meets a busy server."""

    rate: Wave
    busy_share: Wave
    busy_rate: Wave
    peak_rate: float

    @classmethod
    def sinusoidal(cls, mean_rate: float, rng: random.Random) -> Workload:
        phase = rng.uniform(0, 2 * math.pi)
        rate = Wave(
            (
                constant(mean_rate),
                sine(mean_rate * LOAD_AMPLITUDE, LOAD_PERIOD_SECONDS, phase),
                sine(mean_rate * RIPPLE_AMPLITUDE, RIPPLE_PERIOD_SECONDS, rng.uniform(0, 6.3)),
            )
        )
        busy_share = Wave((constant(0.5), sine(0.5, LOAD_PERIOD_SECONDS, phase)))
        peak = mean_rate * (1 + LOAD_AMPLITUDE + RIPPLE_AMPLITUDE)
        return cls(rate, busy_share, rate * busy_share, peak)

    def at(self, t: float) -> Progress:
        requests = self.rate.integral(t)
        busy = self.busy_rate.integral(t)
        return Progress(
            calm_requests=requests - busy,
            busy_requests=busy,
            rate=max(0.0, self.rate(t)),
            busy_share=min(1.0, max(0.0, self.busy_share(t))),
            peak_rate=self.peak_rate,
        )


@dataclass(frozen=True)
class LogNormal:
    """A latency (or size) distribution given by its median and log-space spread."""

    median: float
    sigma: float

    def cdf(self, x: float) -> float:
        if x == math.inf:
            return 1.0
        if x <= 0:
            return 0.0
        return 0.5 * (1 + math.erf(math.log(x / self.median) / (self.sigma * math.sqrt(2))))

    @property
    def mean(self) -> float:
        return self.median * math.exp(self.sigma**2 / 2)

    def scaled(self, factor: float) -> LogNormal:
        return LogNormal(self.median * factor, self.sigma)


@dataclass(frozen=True)
class RegimeDistribution:
    """What one observation looks like in the calm and in the busy regime."""

    calm: LogNormal
    busy: LogNormal

    def mean_now(self, busy_share: float) -> float:
        return (1 - busy_share) * self.calm.mean + busy_share * self.busy.mean

    def scaled(self, factor: float) -> RegimeDistribution:
        return RegimeDistribution(self.calm.scaled(factor), self.busy.scaled(factor))

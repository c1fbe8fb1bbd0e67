"""Static SVG drawing primitives: scales, axes with ticks, markers, lines, bands, a PNG raster.

Only geometry: data values in, SVG text out. Every piece of text is escaped here.
Coordinates are rounded to 0.1 px to keep files small.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

import numpy as np
from numpy.typing import ArrayLike, NDArray

NICE_STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)


def esc(text: object) -> str:
    """HTML/SVG-escape any value's text (quotes included, for attributes)."""
    return escape(str(text), quote=True)


def num(value: float) -> str:
    """A coordinate with at most one decimal, no trailing zeros."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def tick_label(value: float) -> str:
    """Short tick text: ``0.5``, ``12``, ``1e-03``."""
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.0e}"
    return f"{value:.4g}"


@dataclass(frozen=True)
class Scale:
    """Maps data [lo, hi] to pixels [a, b], linearly or in log10."""

    lo: float
    hi: float
    a: float
    b: float
    log: bool = False

    def __call__(self, value: float) -> float:
        """The pixel coordinate of ``value``."""
        if self.log:
            lo, hi, v = math.log10(self.lo), math.log10(self.hi), math.log10(max(value, self.lo))
        else:
            lo, hi, v = self.lo, self.hi, value
        t = 0.5 if hi == lo else (v - lo) / (hi - lo)
        return self.a + t * (self.b - self.a)

    def array(self, values: ArrayLike) -> NDArray[np.float64]:
        """The mapping applied to an array (NaN where a log scale meets values ≤ 0)."""
        v = np.asarray(values, dtype=np.float64)
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.where(v > 0, np.log10(np.maximum(v, self.lo)), np.nan)
            lo, hi = math.log10(self.lo), math.log10(self.hi)
        else:
            lo, hi = self.lo, self.hi
        t = np.full_like(v, 0.5) if hi == lo else (v - lo) / (hi - lo)
        return np.asarray(self.a + t * (self.b - self.a), dtype=np.float64)

    def ticks(self, target: int = 5) -> list[float]:
        """Round tick values inside [lo, hi]: 1-2-2.5-5 steps, or decades on a log scale."""
        lo, hi = min(self.lo, self.hi), max(self.lo, self.hi)
        if self.log:
            return _log_ticks(lo, hi)
        return _linear_ticks(lo, hi, target)

    def labels(self, ticks: Sequence[float]) -> list[str]:
        """The texts of ticks on this scale (one style for all of a log axis)."""
        return log_tick_labels(ticks) if self.log else [tick_label(t) for t in ticks]


def _linear_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(target, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(s * mag for s in NICE_STEPS if s * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    count = math.floor((hi - first) / step + 1e-9) + 1
    return [round(first + i * step, 12) for i in range(count)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Decades (every k-th when there are many); within fewer than two decades the
    1-2-5 values, then 1…9 multiples, then round linear steps: never fewer than two."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    stride = max(1, math.ceil((last - first) / 6))
    decades = [10.0**k for k in range(first, last + 1, stride) if lo <= 10.0**k <= hi]
    if len(decades) >= 2:
        return decades
    for mantissas in ((1.0, 2.0, 5.0), tuple(float(m) for m in range(1, 10))):
        ticks = [round(m * 10.0**k, 12) for k in range(first, last + 1) for m in mantissas]
        inside = [v for v in ticks if lo <= v <= hi]
        if len(inside) >= 2:
            return inside
    for target in (3, 5):
        ticks = _linear_ticks(lo, hi, target)
        if len(ticks) >= 2:
            return ticks
    return _linear_ticks(lo, hi, 10)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
# Ticks that all lie in this range read best as plain numbers (0.01 … 1000).
PLAIN_RANGE = (0.01, 1000.0)


def log_tick_labels(ticks: Sequence[float]) -> list[str]:
    """Log-axis tick texts in one style per axis: plain numbers when every tick lies in
    [0.01, 1000] (``0.01``, ``0.1``, ``1``), else powers of ten for all of them
    (``10⁻⁴``, ``2×10⁻⁴``, ``10⁰``), never ``1e-04`` beside ``0.01``."""
    if all(PLAIN_RANGE[0] <= t <= PLAIN_RANGE[1] for t in ticks):
        return [f"{t:.3g}" for t in ticks]
    return [_power_label(t) for t in ticks]


def _power_label(value: float) -> str:
    if value <= 0 or not math.isfinite(value):
        return tick_label(value)
    exponent = math.floor(math.log10(value) + 1e-9)
    mantissa = float(f"{value / 10.0**exponent:.3g}")
    power = f"10{str(exponent).translate(_SUPERSCRIPT)}"
    return power if mantissa == 1.0 else f"{mantissa:g}×{power}"


def padded(lo: float, hi: float, frac: float = 0.05, log: bool = False) -> tuple[float, float]:
    """Data range widened by ``frac`` on each side (multiplicatively on a log scale)."""
    if log:
        span = math.log10(hi / lo) if hi > lo else 1.0
        factor = 10.0 ** (frac * span)
        return lo / factor, hi * factor
    if hi == lo:
        return lo - 1.0, hi + 1.0
    pad = (hi - lo) * frac
    return lo - pad, hi + pad


@dataclass(frozen=True)
class Plot:
    """A chart's pixel box and data scales."""

    width: int
    height: int
    x: Scale
    y: Scale

    @classmethod
    def make(
        cls,
        width: int,
        height: int,
        xr: tuple[float, float],
        yr: tuple[float, float],
        *,
        xlog: bool = False,
        ylog: bool = False,
        margin: tuple[int, int, int, int] = (12, 14, 34, 50),
    ) -> Plot:
        """``margin`` = (top, right, bottom, left) in pixels."""
        top, right, bottom, left = margin
        x = Scale(xr[0], xr[1], left, width - right, xlog)
        y = Scale(yr[0], yr[1], height - bottom, top, ylog)
        return cls(width, height, x, y)

    @property
    def left(self) -> float:
        """Left edge of the plot area (pixels)."""
        return self.x.a

    @property
    def right(self) -> float:
        """Right edge of the plot area (pixels)."""
        return self.x.b

    @property
    def top(self) -> float:
        """Top edge of the plot area (pixels)."""
        return self.y.b

    @property
    def bottom(self) -> float:
        """Bottom edge of the plot area (pixels)."""
        return self.y.a


def svg(plot: Plot, body: Iterable[str], label: str, cls: str = "chart") -> str:
    """The ``<svg>`` element around ``body``, with an accessible label."""
    return (
        f'<svg class="{cls}" viewBox="0 0 {plot.width} {plot.height}" width="{plot.width}" '
        f'height="{plot.height}" role="img" aria-label="{esc(label)}">' + "".join(body) + "</svg>"
    )


def axes(
    plot: Plot,
    xlabel: str,
    ylabel: str,
    xticks: Sequence[float] | None = None,
    yticks: Sequence[float] | None = None,
) -> str:
    """Frame, grid lines (one path), tick labels and axis titles."""
    grid: list[str] = []
    labels: list[str] = []
    top, bottom, left, right = num(plot.top), num(plot.bottom), num(plot.left), num(plot.right)
    xs = plot.x.ticks() if xticks is None else list(xticks)
    for t, text in zip(xs, plot.x.labels(xs), strict=True):
        px = num(plot.x(t))
        grid.append(f"M{px} {top}V{bottom}")
        labels.append(
            f'<text class="tick tx" x="{px}" y="{num(plot.bottom + 13)}">{esc(text)}</text>'
        )
    ys = plot.y.ticks() if yticks is None else list(yticks)
    for t, text in zip(ys, plot.y.labels(ys), strict=True):
        py = num(plot.y(t))
        grid.append(f"M{left} {py}H{right}")
        labels.append(f'<text class="tick ty" x="{num(plot.left - 4)}" y="{py}">{esc(text)}</text>')
    mid_x, mid_y = num((plot.left + plot.right) / 2), num((plot.top + plot.bottom) / 2)
    return (
        f'<path class="grid" d="{"".join(grid)}"/>'
        f'<rect class="frame" x="{left}" y="{top}" width="{num(plot.right - plot.left)}" '
        f'height="{num(plot.bottom - plot.top)}"/>'
        + "".join(labels)
        + f'<text class="axis" x="{mid_x}" y="{plot.height - 4}">{esc(xlabel)}</text>'
        f'<text class="axis" transform="translate(12 {mid_y}) rotate(-90)">{esc(ylabel)}</text>'
    )


def hband(plot: Plot, lo: float, hi: float, cls: str, title: str = "") -> str:
    """A horizontal band between data values ``lo`` and ``hi`` (clipped to the plot)."""
    y0 = min(max(plot.y(hi), plot.top), plot.bottom)
    y1 = min(max(plot.y(lo), plot.top), plot.bottom)
    tip = f"<title>{esc(title)}</title>" if title else ""
    return (
        f'<rect class="{cls}" x="{num(plot.left)}" y="{num(y0)}" '
        f'width="{num(plot.right - plot.left)}" height="{num(max(y1 - y0, 0))}">{tip}</rect>'
    )


def vband(plot: Plot, lo: float, hi: float, cls: str, title: str = "") -> str:
    """A vertical band between x data values ``lo`` and ``hi`` (clipped to the plot)."""
    x0 = min(max(plot.x(lo), plot.left), plot.right)
    x1 = min(max(plot.x(hi), plot.left), plot.right)
    tip = f"<title>{esc(title)}</title>" if title else ""
    return (
        f'<rect class="{cls}" x="{num(x0)}" y="{num(plot.top)}" width="{num(max(x1 - x0, 1))}" '
        f'height="{num(plot.bottom - plot.top)}">{tip}</rect>'
    )


def vline(plot: Plot, x: float, cls: str, label: str = "", title: str = "", level: int = 0) -> str:
    """A vertical marker line at data ``x``; its label at the top, ``level`` lines down."""
    px = num(plot.x(x))
    text = (
        f'<text class="mark" x="{px}" y="{num(plot.top + 10 + 11 * level)}" dx="3">'
        f"{esc(label)}</text>"
        if label
        else ""
    )
    tip = f"<title>{esc(title)}</title>" if title else ""
    return (
        f'<g class="{cls}"><line x1="{px}" x2="{px}" y1="{num(plot.top)}" '
        f'y2="{num(plot.bottom)}"/>{text}{tip}</g>'
    )


def path(plot: Plot, xs: ArrayLike, ys: ArrayLike, cls: str, min_px: float = 2.0) -> str:
    """A polyline through data points in whole pixels, relative moves, skipping points
    closer than ``min_px`` (in |dx| + |dy|) to the last kept one: lossless at screen
    resolution and a few bytes per point. Non-finite points are left out."""
    px = np.rint(plot.x.array(xs))
    py = np.rint(plot.y.array(ys))
    ok = np.isfinite(px) & np.isfinite(py)
    px, py = px[ok], py[ok]
    if px.size > 1:  # drop repeats of the same pixel before the (short) Python loop
        keep = np.concatenate(([True], (np.diff(px) != 0) | (np.diff(py) != 0)))
        px, py = px[keep], py[keep]
    if px.size < 2:
        return ""
    out = [f"M{int(px[0])} {int(py[0])}"]
    lx, ly = px[0], py[0]
    for x, y in zip(px[1:].tolist(), py[1:].tolist(), strict=True):
        if abs(x - lx) + abs(y - ly) >= min_px:
            out.append(f"l{int(x - lx)} {int(y - ly)}")
            lx, ly = x, y
    if (lx, ly) != (px[-1], py[-1]):
        out.append(f"l{int(px[-1] - lx)} {int(py[-1] - ly)}")
    return f'<path class="{cls}" d="{"".join(out)}"/>'


def dot(
    plot: Plot, x: float, y: float, cls: str, title: str, r: float = 3.0, row: int | None = None
) -> str:
    """A circle marker with a hover title; ``row`` links it to a table row (``data-row``)."""
    link = "" if row is None else f' data-row="{row}"'
    return (
        f'<circle class="{cls}" cx="{num(plot.x(x))}" cy="{num(plot.y(y))}" r="{num(r)}"{link}>'
        f"<title>{esc(title)}</title></circle>"
    )


def legend(items: Sequence[tuple[str, str]], x: float, y: float) -> str:
    """A one-line legend: (css class of the swatch, label) pairs, spaced by label length."""
    parts = []
    px = x
    for cls, label in items:
        parts.append(
            f'<rect class="{cls}" x="{num(px)}" y="{num(y - 8)}" width="10" height="10"/>'
            f'<text class="tick" x="{num(px + 14)}" y="{num(y)}">{esc(label)}</text>'
        )
        px += 34 + 6.2 * len(label)
    return f'<g class="legend">{"".join(parts)}</g>'


def png(rows: Sequence[Sequence[tuple[int, int, int]]]) -> str:
    """An RGB image (rows of pixels, top row first) as a ``data:`` URI of a PNG file.

    Writes the PNG container by hand (signature, IHDR, one zlib IDAT, IEND; filter 0
    per scan line), so heat maps of any size cost a few bytes per cell, not an element.
    """
    height, width = len(rows), len(rows[0]) if rows else 0

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(data).decode()

"""Drawing helpers for pyconvnet.show, on Pillow's ImageDraw: text that fits a width, axis
ticks, dashed lines and a line-chart panel.

Text uses Pillow's built-in font (Aileron, scalable from Pillow 10.1), so nothing is looked up on
the system. Its character set is small (no arrows, dashes or accented letters): labels stick to
ASCII, and `plain` folds names from datasets to it.
"""
from __future__ import annotations

import functools
import math
import unicodedata

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MARGIN = 16                 # around every picture
WHITE = (255, 255, 255)
INK = (30, 30, 30)          # text and axes
MUTED = (110, 110, 110)     # secondary text
GRID = (225, 225, 225)
BLUE = (31, 119, 180)       # training
ORANGE = (230, 120, 20)     # validation
RED = (214, 39, 40)
GREEN = (44, 140, 44)


@functools.lru_cache(maxsize=None)
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def line_height(fnt) -> int:
    """Vertical space one line of text takes (ascent + descent)."""
    ascent, descent = fnt.getmetrics()
    return ascent + descent


def text_width(text: str, fnt) -> int:
    return math.ceil(fnt.getlength(text))


def plain(text: str) -> str:
    """`text` folded to ASCII for the built-in font: accents dropped, other characters as '?'."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c if c.isascii() else "?" for c in decomposed if not unicodedata.combining(c))


def fit(text: str, fnt, width: int) -> str:
    """`text`, cut and ended with an ellipsis if it is wider than `width` pixels."""
    if text_width(text, fnt) <= width:
        return text
    while text and text_width(text + "...", fnt) > width:
        text = text[:-1]
    return text.rstrip() + "..."


def text(draw: ImageDraw.ImageDraw, xy, s: str, fnt, fill=INK, align: str = "left") -> None:
    """`s` with the top of its line at xy[1], starting at, centred on or ending at xy[0]."""
    x, y = xy
    if align == "center":
        x -= text_width(s, fnt) / 2
    elif align == "right":
        x -= text_width(s, fnt)
    draw.text((x, y), s, font=fnt, fill=fill)


def header_height(s: int = 1) -> int:
    """The height canvas() gives the margin, title and subtitle above the content."""
    return MARGIN * s + line_height(font(17 * s)) + 2 * s + line_height(font(12 * s)) + 12 * s


def canvas(width: int, body_height: int, title: str, subtitle: str, s: int = 1):
    """A white picture `width` wide with a centred title and subtitle at the top, then
    `body_height` pixels for the content and a bottom margin (lengths in units of s pixels).
    Returns (image, its ImageDraw, the y where the content starts)."""
    big, small = font(17 * s), font(12 * s)
    header = header_height(s)
    im = Image.new("RGB", (width, header + body_height + MARGIN * s), WHITE)
    draw = ImageDraw.Draw(im)
    inner = width - 2 * MARGIN * s
    text(draw, (width / 2, MARGIN * s), fit(title, big, inner), big, align="center")
    text(draw, (width / 2, MARGIN * s + line_height(big) + 2 * s), fit(subtitle, small, inner), small, MUTED,
         align="center")
    return im, draw, header


def legend(draw: ImageDraw.ImageDraw, entries, centre_x: float, y: float, s: int = 1) -> None:
    """One row of (label, colour, style) entries centred on centre_x, the top of its text at y.
    Styles: "line", "thin" (a 1-unit line), "dashed", "marker" (a short dashed vertical)."""
    fnt = font(12 * s)
    sample, gap, pad = 26 * s, 6 * s, 18 * s
    total = sum(sample + gap + text_width(label, fnt) + pad for label, _, _ in entries) - pad
    x, mid = centre_x - total / 2, y + line_height(fnt) / 2
    for label, colour, style in entries:
        if style == "dashed":
            dashed_line(draw, [(x, mid), (x + sample, mid)], colour, 2 * s, (7 * s, 4 * s))
        elif style == "marker":
            dashed_line(draw, [(x + sample / 2, mid - 8 * s), (x + sample / 2, mid + 8 * s)], colour, s, (4 * s, 4 * s))
        else:
            draw.line([(x, mid), (x + sample, mid)], fill=colour, width=(1 if style == "thin" else 2) * s)
        text(draw, (x + sample + gap, y), label, fnt)
        x += sample + gap + text_width(label, fnt) + pad


def nice_ticks(lo: float, hi: float, max_ticks: int = 6) -> np.ndarray:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) covering [lo, hi]."""
    if not hi > lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, max_ticks - 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return np.arange(first, last + 1) * step


def tick_label(value: float, ticks) -> str:
    """`value` with as many decimals as the tick spacing needs."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:.{decimals}f}"


def dashed_line(draw: ImageDraw.ImageDraw, points, fill, width: int, dash: tuple = (8, 5)) -> None:
    """A polyline drawn in dashes of dash[0] pixels separated by dash[1], the pattern running on
    across vertices."""
    on, off = dash
    phase = 0.0  # distance into the current on+off period
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        length = math.hypot(x1 - x0, y1 - y0)
        t = 0.0
        while t < length:
            in_period = phase % (on + off)
            run = (on - in_period) if in_period < on else (on + off - in_period)
            end = min(length, t + run)
            if in_period < on:
                a, b = t / length, end / length
                draw.line([(x0 + a * (x1 - x0), y0 + a * (y1 - y0)), (x0 + b * (x1 - x0), y0 + b * (y1 - y0))],
                          fill=fill, width=width)
            phase += end - t
            t = end


def enlarge(image: np.ndarray, side: int) -> Image.Image:
    """An HWC uint8 RGB array shown about `side` pixels wide: whole-pixel enlargement (blocks,
    no invented detail) when it is smaller, a Lanczos reduction when it is larger."""
    im = Image.fromarray(np.ascontiguousarray(image))
    h, w = image.shape[:2]
    if w >= side:
        return im.resize((side, max(1, round(h * side / w))), Image.LANCZOS)
    k = max(1, side // w)
    return im.resize((w * k, h * k), Image.NEAREST)


class Panel:
    """A line chart in the box (x0, y0, x1, y1): a frame with grid lines, tick labels and axis
    titles; data coordinates map linearly onto the plot area inside. `s` scales every length (the
    curves are drawn at s times the final size, then reduced, for smooth lines)."""

    def __init__(self, draw, box, xlim, ylim, title: str, xlabel: str, s: int = 1, max_xticks: int = 8):
        self.draw, self.s = draw, s
        self.small, self.label = font(11 * s), font(13 * s)
        x0, y0, x1, y1 = box
        self.yticks = nice_ticks(*ylim, max_ticks=6)
        self.xticks = nice_ticks(*xlim, max_ticks=max_xticks)
        self.xticks = self.xticks[self.xticks == np.round(self.xticks)]  # epochs: whole numbers only
        ylabels = [tick_label(v, self.yticks) for v in self.yticks]
        left = max(text_width(t, self.small) for t in ylabels) + 8 * s
        lh = line_height(self.small)
        self.area = (x0 + left, y0 + line_height(self.label) + 6 * s, x1 - 4 * s, y1 - 2 * lh - 8 * s)
        self.xlim = (min(xlim[0], self.xticks[0]), max(xlim[1], self.xticks[-1]))
        self.ylim = (min(ylim[0], self.yticks[0]), max(ylim[1], self.yticks[-1]))
        ax0, ay0, ax1, ay1 = self.area
        text(draw, ((ax0 + ax1) / 2, y0), title, self.label, align="center")
        for v, t in zip(self.yticks, ylabels):
            y = self.y(v)
            draw.line([(ax0, y), (ax1, y)], fill=GRID, width=s)
            text(draw, (ax0 - 5 * s, y - lh / 2), t, self.small, MUTED, align="right")
        for v in self.xticks:
            x = self.x(v)
            draw.line([(x, ay0), (x, ay1)], fill=GRID, width=s)
            text(draw, (x, ay1 + 3 * s), tick_label(v, self.xticks), self.small, MUTED, align="center")
        text(draw, ((ax0 + ax1) / 2, ay1 + lh + 5 * s), xlabel, self.small, MUTED, align="center")
        draw.rectangle(self.area, outline=MUTED, width=s)

    def x(self, v: float) -> float:
        ax0, _, ax1, _ = self.area
        return ax0 + (v - self.xlim[0]) / (self.xlim[1] - self.xlim[0]) * (ax1 - ax0)

    def y(self, v: float) -> float:
        _, ay0, _, ay1 = self.area
        return ay1 - (v - self.ylim[0]) / (self.ylim[1] - self.ylim[0]) * (ay1 - ay0)

    def line(self, xs, ys, fill, width: int = 2, dashed: bool = False, dots: bool = False) -> None:
        pts = [(self.x(a), self.y(b)) for a, b in zip(xs, ys)]
        w = width * self.s
        if len(pts) > 1:
            if dashed:
                dashed_line(self.draw, pts, fill, w, (7 * self.s, 4 * self.s))
            else:
                self.draw.line(pts, fill=fill, width=w, joint="curve")
        if dots or len(pts) == 1:
            r = (width + 1.5) * self.s
            for x, y in pts:
                self.draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)

    def vline(self, xv: float, fill, label: str = "") -> None:
        """A dashed vertical marker at xv, its label just right of it at the top."""
        x = self.x(xv)
        _, ay0, _, ay1 = self.area
        dashed_line(self.draw, [(x, ay0), (x, ay1)], fill, self.s, (4 * self.s, 4 * self.s))
        if label:
            text(self.draw, (x + 3 * self.s, ay0 + 2 * self.s), label, self.small, fill)

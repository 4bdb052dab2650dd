"""Shared rendering helpers: thread-safe figures (object API + Agg), PNG bytes, heatmaps."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from functools import lru_cache

import matplotlib
import numpy as np
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize, PowerNorm
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.image import AxesImage
from matplotlib.text import Text
from PIL import Image

# DejaVu Sans ships with matplotlib and covers ç ğ ı İ ö ş ü (and ᵀ √ · → ₁₂₃).
FONT_FAMILY = "DejaVu Sans"
MAX_PNG_BYTES = 1_000_000
DPI = 100
MISSING_GLYPH = "?"

Formatter = Callable[[float], str]


@lru_cache(maxsize=1)
def _font_charmap() -> frozenset[int]:
    path = font_manager.findfont(font_manager.FontProperties(family=FONT_FAMILY))
    return frozenset(FT2Font(path).get_charmap())


def has_glyphs(text: str) -> bool:
    """True when the figure font can draw every character of `text`."""
    charmap = _font_charmap()
    return all(ord(ch) in charmap or ch.isspace() for ch in text)


def displayable(text: str) -> str:
    """`text` with characters the font cannot draw (emoji, rare scripts) replaced by '?'."""
    charmap = _font_charmap()
    return "".join(ch if ord(ch) in charmap or ch.isspace() else MISSING_GLYPH for ch in text)


def new_figure(width_px: int, height_px: int, *, layout: str | None = "constrained") -> Figure:
    """A white Figure of exactly width_px x height_px with its own Agg canvas (no pyplot)."""
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout=layout)
    fig.set_facecolor("white")
    FigureCanvasAgg(fig)
    return fig


def figure_to_png(fig: Figure, *, max_bytes: int = MAX_PNG_BYTES) -> bytes:
    """Draw once on the Agg canvas and encode with PIL; quantise if it would exceed max_bytes."""
    for text in fig.findobj(Text):
        text.set_fontfamily(FONT_FAMILY)
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    image = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])  # (H, W, 3)
    data = _encode(image)
    if len(data) > max_bytes:
        data = _encode(image.quantize(colors=256))
    check_png(data, max_bytes=max_bytes)
    return data


def _encode(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def check_png(data: bytes, *, max_bytes: int = MAX_PNG_BYTES) -> tuple[int, int]:
    """Decode with PIL and return (width, height); ValueError when invalid or too large."""
    if len(data) >= max_bytes:
        raise ValueError(f"PNG is {len(data)} bytes, limit {max_bytes}")
    with Image.open(io.BytesIO(data)) as image:
        if image.format != "PNG":
            raise ValueError(f"expected a PNG, got {image.format}")
        image.load()
        return image.size


def fmt_number(decimals: int = 2, *, trim_integers: bool = False, strip: bool = False) -> Formatter:
    """Formatter for cell annotations; `trim_integers` prints 2 not 2.00, `strip` drops '0.'."""

    def fmt(value: float) -> str:
        if trim_integers and float(value).is_integer():
            return str(int(value))
        text = f"{value:.{decimals}f}"
        if float(text) == 0:
            text = text.lstrip("-")  # no "-0.0"
        if strip and text.startswith(("0.", "-0.")):
            text = text.replace("0.", ".", 1)
        return text

    return fmt


def heatmap(
    ax: Axes,
    data: np.ndarray,
    *,
    title: str | None = None,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    fmt: Formatter | None = None,
    cmap: str = "Blues",
    vmin: float | None = None,
    vmax: float | None = None,
    diverging: bool = False,
    gamma: float | None = None,
    mask: np.ndarray | None = None,
    annot_size: float = 12,
    label_size: float = 12,
    title_size: float = 15,
    cell_lines: bool = True,
    label_colors: Sequence[str] | None = None,
) -> AxesImage:
    """Draw a matrix as an image; optional numbers in cells (text colour follows the cell),
    masked cells left white, column labels on top."""
    values = np.asarray(data, dtype=float)
    if values.ndim == 1:
        values = values[None, :]
    shown = np.ma.masked_array(values, mask=mask) if mask is not None else values
    if diverging:  # symmetric around zero; vmax (if given) sets the shared limit
        visible = values[~mask] if mask is not None else values.ravel()
        visible = visible[np.isfinite(visible)]
        limit = vmax if vmax is not None else float(np.abs(visible).max(initial=0.0)) or 1.0
        vmin, vmax, cmap = -limit, limit, "RdBu_r"
    colormap = matplotlib.colormaps[cmap].with_extremes(bad="white")
    norm = PowerNorm(gamma, vmin=vmin, vmax=vmax) if gamma else Normalize(vmin=vmin, vmax=vmax)
    image = ax.imshow(shown, cmap=colormap, norm=norm, aspect="auto", interpolation="nearest")
    rows, cols = values.shape
    # Tick objects are expensive: create them only where there are labels.
    ax.set_xticks(range(cols), list(col_labels)) if col_labels is not None else ax.set_xticks([])
    ax.set_yticks(range(rows), list(row_labels)) if row_labels is not None else ax.set_yticks([])
    ax.tick_params(labelsize=label_size, length=0, pad=3)
    if col_labels is not None:
        ax.xaxis.tick_top()
    if label_colors is not None:
        for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
            for tick, color in zip(ticks, label_colors, strict=False):
                tick.set_color(color)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if cell_lines:
        ax.vlines(np.arange(1, cols) - 0.5, -0.5, rows - 0.5, colors="white", linewidth=2)
        ax.hlines(np.arange(1, rows) - 0.5, -0.5, cols - 0.5, colors="white", linewidth=2)
    if fmt is not None:
        for i in range(rows):
            for j in range(cols):
                if mask is not None and mask[i, j]:
                    continue
                red, green, blue, _ = colormap(float(image.norm(values[i, j])))
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.55
                ax.text(
                    j,
                    i,
                    fmt(values[i, j]),
                    ha="center",
                    va="center",
                    fontsize=annot_size,
                    color="white" if dark else "#1a1a1a",
                )
    if title:
        ax.set_title(title, fontsize=title_size, fontweight="bold", loc="left", pad=8)
    return image


class PixelLayout:
    """Top-to-bottom layout in pixels, cheaper and steadier than constrained layout for tall pages.

    Add headings and rows of axes; `finish()` sizes the figure to what was added."""

    def __init__(self, width_px: int, *, margin_px: int = 12) -> None:
        self.fig = new_figure(width_px, 100, layout=None)
        self.width = width_px
        self.margin = margin_px
        self.y = float(margin_px)
        self._axes: list[tuple[Axes, tuple[float, float, float, float]]] = []
        self._texts: list[tuple[Text, float, float]] = []

    def text(
        self,
        text: str,
        *,
        size: float,
        x_px: float | None = None,
        after_px: float = 6,
        **kwargs: object,
    ) -> Text:
        """A line of text whose top sits at the cursor; centred when x_px is None."""
        centred = x_px is None
        x = self.width / 2 if centred else x_px
        artist = self.fig.text(
            0, 0, text, fontsize=size, va="top", ha="center" if centred else "left", **kwargs
        )
        self._texts.append((artist, x, self.y))
        self.y += size * DPI / 72 * (1.3 * (text.count("\n") + 1)) + after_px
        return artist

    def row(
        self,
        height_px: float,
        ratios: Sequence[float],
        *,
        top_px: float = 34,
        bottom_px: float = 14,
        left_px: float = 60,
        right_px: float = 16,
        gap_px: float | Sequence[float] = 24,
    ) -> list[Axes]:
        """A band of axes side by side; top_px leaves room for titles and top tick labels."""
        gaps = [gap_px] * (len(ratios) - 1) if isinstance(gap_px, int | float) else list(gap_px)
        usable = self.width - left_px - right_px - sum(gaps)
        total = float(sum(ratios))
        self.y += top_px
        axes, x = [], float(left_px)
        for i, ratio in enumerate(ratios):
            w = usable * ratio / total
            ax = self.fig.add_axes((0, 0, 1, 1))
            self._axes.append((ax, (x, self.y, w, height_px)))
            axes.append(ax)
            x += w + (gaps[i] if i < len(gaps) else 0)
        self.y += height_px + bottom_px
        return axes

    def finish(self, bottom_px: float | None = None) -> Figure:
        """Fix the figure height and convert every pixel position to figure fractions."""
        height = self.y + (self.margin if bottom_px is None else bottom_px)
        self.fig.set_size_inches(self.width / DPI, height / DPI)
        for ax, (x, y, w, h) in self._axes:
            ax.set_position((x / self.width, 1 - (y + h) / height, w / self.width, h / height))
        for artist, x, y in self._texts:
            artist.set_position((x / self.width, 1 - y / height))
        return self.fig

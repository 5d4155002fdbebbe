"""Pure drawing functions: masks, overlays, error maps, panels and the figures of the notebooks.

Two layers:

* array functions (``colorize``, ``overlay``, ``error_map``, ``side_by_side``, ``frame_panel``,
  ``compare_panel``, ``pair_panel``) turn frames and masks into uint8 RGB arrays; ``to_png_bytes`` encodes one. The
  widgets in ``lib.viz.widgets`` only call these, so what a widget shows is tested here.
* figure functions (``sample_grid``, ``comparison_grid``, ``class_frequency_plot``, ``histogram``,
  ``entrants_over_time_plot``) return matplotlib figures; ``save_figure`` writes one as PNG into
  ``figures/``.

Every class id has one fixed colour (``lib.common.classes.PALETTE``), the same in every figure and widget.
Frame indices are 0-based like the files (``image_0.png`` .. ``image_21.png``): the model sees
t = 0..10 and predicts t = 21 (the task's "frame 22").
"""

import html
import io

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from PIL import Image

from lib.common.classes import CLASS_NAMES, NUM_CLASSES, PALETTE

LAST_INPUT = 10  # index of the last frame the model sees
TARGET = 21  # index of the frame to predict

# Colours of the error map (RGB uint8).
ERROR_COLORS = {
    "false positive": (255, 40, 220),  # predicted an object where the truth is background
    "missed": (40, 170, 255),  # truth has an object, prediction says background
    "wrong class": (255, 215, 0),  # both say object, but different classes
}
_DIM = 0.35  # brightness kept for correct pixels in the error map


# ----------------------------------------------------------------------------------------------
# arrays
# ----------------------------------------------------------------------------------------------
def _check_mask(mask):
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask is (H, W) class ids, got shape {mask.shape}")
    if mask.dtype.kind not in "iu":
        raise ValueError(f"a mask holds integer class ids, got dtype {mask.dtype}")
    if mask.size and (int(mask.min()) < 0 or int(mask.max()) >= NUM_CLASSES):
        raise ValueError(f"class ids must lie in 0..{NUM_CLASSES - 1}, got {int(mask.min())}..{int(mask.max())}")
    return mask


def _rgb(image):
    """(H, W, 3) uint8 from an RGB or grey image (uint8, or float in 0..1)."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        if a.dtype.kind == "f" and a.size and float(np.nanmax(a)) <= 1.0:
            a = a * 255.0
        a = np.clip(np.nan_to_num(a), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"an image is (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    return np.ascontiguousarray(a[..., :3])


def colorize(mask):
    """(H, W) class ids -> (H, W, 3) uint8 RGB with the fixed colour of each class."""
    return PALETTE[_check_mask(mask)]


def overlay(image, mask, alpha=0.5, background=False):
    """The image with each object's pixels blended towards its class colour (weight ``alpha``).
    Background pixels keep the image unless ``background`` is True."""
    img = _rgb(image).astype(np.float32)
    mask = _check_mask(mask)
    if img.shape[:2] != mask.shape:
        raise ValueError(f"image {img.shape[:2]} and mask {mask.shape} differ in size")
    col = PALETTE[mask].astype(np.float32)
    sel = np.ones(mask.shape, bool) if background else (mask != 0)
    out = img.copy()
    out[sel] = (1 - alpha) * img[sel] + alpha * col[sel]
    return np.round(out).astype(np.uint8)


def error_map(pred, true, image=None):
    """Where a predicted mask is right and wrong, as (H, W, 3) uint8.

    Correct pixels are dimmed (the true class colour, or the image when ``image`` is given); wrong
    pixels are bright: ``ERROR_COLORS['false positive']`` (object predicted on background),
    ``['missed']`` (object predicted as background), ``['wrong class']`` (object of another class).
    """
    pred, true = _check_mask(pred), _check_mask(true)
    if pred.shape != true.shape:
        raise ValueError(f"prediction {pred.shape} and truth {true.shape} differ in size")
    base = PALETTE[true] if image is None else _rgb(image)
    out = (base.astype(np.float32) * _DIM).astype(np.uint8)
    wrong = pred != true
    out[wrong & (true == 0)] = ERROR_COLORS["false positive"]
    out[wrong & (pred == 0)] = ERROR_COLORS["missed"]
    out[wrong & (true != 0) & (pred != 0)] = ERROR_COLORS["wrong class"]
    return out


def side_by_side(*panels, sep=3, sep_value=255):
    """Panels (H, W[, 3]) concatenated left to right with ``sep`` pixel separators; shorter panels
    are padded at the bottom. ``None`` panels are skipped."""
    panels = [_rgb(p) for p in panels if p is not None]
    if not panels:
        raise ValueError("side_by_side needs at least one panel")
    h = max(p.shape[0] for p in panels)
    parts = []
    for i, p in enumerate(panels):
        if p.shape[0] < h:
            p = np.concatenate([p, np.full((h - p.shape[0], p.shape[1], 3), sep_value, np.uint8)], axis=0)
        if i and sep:
            parts.append(np.full((h, sep, 3), sep_value, np.uint8))
        parts.append(p)
    return np.concatenate(parts, axis=1)


def upscale(array, factor):
    """Nearest-neighbour enlargement by an integer factor (keeps masks crisp)."""
    factor = int(factor)
    if factor <= 1:
        return np.asarray(array)
    return np.repeat(np.repeat(np.asarray(array), factor, axis=0), factor, axis=1)


def frame_panel(image, mask=None, alpha=0.5, scale=1):
    """What the video viewer shows for one frame: image | mask | overlay (image alone without a mask)."""
    if mask is None:
        out = _rgb(image)
    else:
        out = side_by_side(image, colorize(mask), overlay(image, mask, alpha))
    return upscale(out, scale)


def compare_panel(image, true, pred, scale=1):
    """What the compare viewer shows: image | true mask | predicted mask | error map over the image.
    ``image`` may be None (masks only)."""
    out = side_by_side(image, colorize(true), colorize(pred), error_map(pred, true, image))
    return upscale(out, scale)


def pair_panel(image, true, pred_a, pred_b, scale=1, sep=3):
    """What the side-by-side viewer of two runs shows, in two rows: image | prediction A | prediction B above
    true mask | error map of A | error map of B (each column's error under its prediction). ``image`` may be None
    (then the true mask stands alone in the first column)."""
    h, w = np.asarray(true).shape
    blank = np.full((h, w, 3), 255, np.uint8)
    top = side_by_side(blank if image is None else image, colorize(pred_a), colorize(pred_b), sep=sep)
    bottom = side_by_side(colorize(true), error_map(pred_a, true, image), error_map(pred_b, true, image), sep=sep)
    out = np.concatenate([top, np.full((sep, top.shape[1], 3), 255, np.uint8), bottom], axis=0)
    return upscale(out, scale)


def to_png_bytes(array, compress_level=1):
    """PNG encoding of an (H, W[, 3]) image array (deterministic for equal arrays)."""
    buf = io.BytesIO()
    Image.fromarray(_rgb(array)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# legends
# ----------------------------------------------------------------------------------------------
def present_classes(*masks):
    """Sorted object class ids (background excluded) present in any of the masks."""
    ids = set()
    for m in masks:
        if m is not None:
            ids.update(int(i) for i in np.unique(np.asarray(m)))
    ids.discard(0)
    return sorted(ids)


def _hex(cid):
    r, g, b = (int(v) for v in PALETTE[int(cid)])
    return f"#{r:02x}{g:02x}{b:02x}"


def legend_handles(ids, background=False):
    """matplotlib patches (colour + name) for class ids; pass them to ``ax.legend(handles=...)``."""
    ids = [int(i) for i in ids if background or int(i) != 0]
    return [
        Patch(facecolor=PALETTE[i] / 255.0, edgecolor="black", linewidth=0.5, label=f"{i:2d} {CLASS_NAMES[i]}")
        for i in ids
    ]


def error_legend_handles():
    return [
        Patch(facecolor=np.array(c) / 255.0, edgecolor="black", linewidth=0.5, label=k) for k, c in ERROR_COLORS.items()
    ]


def add_class_legend(ax, *masks, ids=None, fontsize=7, **kwargs):
    """A legend on ``ax`` listing the classes present in the masks (or the given ``ids``) with their colour."""
    ids = present_classes(*masks) if ids is None else ids
    kw = dict(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, fontsize=fontsize)
    kw.update(kwargs)
    if not ids:
        return None
    return ax.legend(handles=legend_handles(ids), **kw)


def legend_html(ids, extra=None):
    """Small HTML legend (colour swatch + id + name per class) for widgets; ``extra`` adds
    (label, rgb) entries, e.g. ``ERROR_COLORS.items()``."""
    items = [(f"{int(i)} {CLASS_NAMES[int(i)]}", _hex(i)) for i in ids if int(i) != 0]
    if extra:
        items += [(k, "#" + "".join(f"{int(v):02x}" for v in c)) for k, c in extra]
    spans = [
        f'<span style="display:inline-block;margin-right:10px;white-space:nowrap">'
        f'<span style="display:inline-block;width:11px;height:11px;background:{c};border:1px solid #000;'
        f'vertical-align:middle;margin-right:3px"></span>{html.escape(label)}</span>'
        for label, c in items
    ]
    return '<div style="font-size:12px;line-height:1.6">' + ("".join(spans) or "no objects") + "</div>"


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------
def _frame_title(t):
    role = " (last input)" if t == LAST_INPUT else " (target)" if t == TARGET else ""
    return f"t={t}{role}"


def _video_label(vid):
    return f"video_{int(vid):05d}" if isinstance(vid, (int, np.integer)) else str(vid)


def _hide_ticks(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)


def sample_grid(frames, masks, video_ids, frame_indices=(0, LAST_INPUT, TARGET), legend=True, panel_size=1.9):
    """Rows = videos, columns = image (and mask, when ``masks`` is given) at each chosen frame.

    ``frames`` (n, T, H, W, 3), ``masks`` (n, T', H, W) or None, ``video_ids`` n labels (ints become
    ``video_00042``). Frame indices past the video's length are left out. A legend per row lists
    the classes of that row's masks.
    """
    n = len(video_ids)
    T = frames.shape[1]
    ts = [int(t) for t in frame_indices if 0 <= int(t) < T]
    if not ts:
        raise ValueError(f"none of the frame indices {tuple(frame_indices)} exists in videos of {T} frames")
    per = 2 if masks is not None else 1
    ncol = len(ts) * per
    h, w = frames.shape[2:4]
    fig, axes = plt.subplots(
        n,
        ncol,
        figsize=(ncol * panel_size * w / h + (2.2 if legend and masks is not None else 0), n * panel_size + 0.4),
        squeeze=False,
    )
    for r in range(n):
        shown = []
        for j, t in enumerate(ts):
            ax = axes[r, j * per]
            ax.imshow(np.asarray(frames[r, t]))
            _hide_ticks(ax)
            if r == 0:
                ax.set_title(f"image {_frame_title(t)}", fontsize=8)
            if masks is not None:
                ax = axes[r, j * per + 1]
                if t < masks.shape[1]:
                    m = np.asarray(masks[r, t])
                    ax.imshow(colorize(m), interpolation="nearest")
                    shown.append(m)
                _hide_ticks(ax)
                if r == 0:
                    ax.set_title(f"mask {_frame_title(t)}", fontsize=8)
        axes[r, 0].set_ylabel(_video_label(video_ids[r]), fontsize=8)
        if legend and shown:
            add_class_legend(axes[r, -1], *shown)
    fig.tight_layout(pad=0.3, w_pad=0.2, h_pad=0.3)
    return fig


def comparison_grid(images, true_masks, pred_masks, video_ids, scores=None, score_name="IoU", panel_size=1.9):
    """Rows = videos: image | true mask | predicted mask | error map (prediction comparisons).

    ``images`` (n, H, W, 3) or None, masks (n, H, W); ``scores`` optional per-row numbers for the labels.
    """
    n = len(video_ids)
    cols = (["image"] if images is not None else []) + ["true", "predicted", "error"]
    h, w = np.asarray(true_masks[0]).shape
    fig, axes = plt.subplots(
        n, len(cols), figsize=(len(cols) * panel_size * w / h + 2.2, n * panel_size + 0.6), squeeze=False
    )
    for r in range(n):
        t, p = np.asarray(true_masks[r]), np.asarray(pred_masks[r])
        img = None if images is None else np.asarray(images[r])
        arrays = ([img] if img is not None else []) + [colorize(t), colorize(p), error_map(p, t, img)]
        for j, (name, a) in enumerate(zip(cols, arrays)):
            ax = axes[r, j]
            ax.imshow(a, interpolation="nearest")
            _hide_ticks(ax)
            if r == 0:
                ax.set_title(name, fontsize=9)
        label = _video_label(video_ids[r])
        if scores is not None:
            label += f"\n{score_name} {float(scores[r]):.3f}"
        axes[r, 0].set_ylabel(label, fontsize=8)
        add_class_legend(axes[r, -1], t, p, fontsize=6)
    fig.legend(handles=error_legend_handles(), loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(pad=0.3, w_pad=0.2, h_pad=0.3, rect=(0, 0.04, 1, 1))
    return fig


def class_frequency_plot(counts, title="Class frequencies", ylabel="pixels", background=False, log=False):
    """Bar chart of a (49,) count per class, bars in the class colours, labelled with class names.
    Background (id 0) is left out unless ``background``; its share is given in the title."""
    counts = np.asarray(counts, dtype=np.float64).reshape(-1)
    if counts.shape[0] != NUM_CLASSES:
        raise ValueError(f"expected {NUM_CLASSES} counts, got {counts.shape[0]}")
    ids = np.arange(0 if background else 1, NUM_CLASSES)
    fig, ax = plt.subplots(figsize=(13, 4.6))
    ax.bar(np.arange(len(ids)), counts[ids], color=PALETTE[ids] / 255.0, edgecolor="black", linewidth=0.4)
    ax.set_xticks(np.arange(len(ids)))
    ax.set_xticklabels([f"{CLASS_NAMES[i]} ({i})" for i in ids], rotation=90, fontsize=7)
    ax.set_xlim(-0.7, len(ids) - 0.3)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    total = counts.sum()
    if not background and total > 0:
        title = f"{title}; background (not shown): {counts[0] / total:.1%}"
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.tight_layout()
    return fig


def _integral(v):
    return v.size > 0 and np.all(np.isfinite(v)) and np.allclose(v, np.round(v))


def histogram(values, title, xlabel, bins=None, log=False, ax=None, color="#4c72b0"):
    """Histogram with n / mean / median / 5th-95th percentiles in a corner.
    Integer values over a small range get one bar per integer."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.8))
    else:
        fig = ax.figure
    if v.size == 0:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
    else:
        if bins is None:
            if _integral(v) and v.max() - v.min() <= 60:
                bins = np.arange(v.min() - 0.5, v.max() + 1.5)
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            else:
                bins = min(50, max(10, int(np.sqrt(v.size))))
        ax.hist(v, bins=bins, color=color, edgecolor="white", linewidth=0.5)
        p5, p50, p95 = np.percentile(v, [5, 50, 95])
        text = f"n={v.size}\nmean={v.mean():.4g}\nmedian={p50:.4g}\np5..p95={p5:.4g}..{p95:.4g}"
        # a legend without a handle: matplotlib places it where it covers the fewest bars
        ax.legend([Patch(alpha=0)], [text], loc="best", handlelength=0, handletextpad=0, fontsize=8, framealpha=0.85)
        if not log:
            ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.tight_layout()
    return fig


def entrants_over_time_plot(first_frames, num_frames=22, last_input=LAST_INPUT, title=None):
    """Bar chart of the frame where each object first appears (one value per object; negative or NaN
    values = never appears, ignored). Objects first seen after the last input frame are the
    'late entrants' no model can know from frames 0..last_input; they get their own colour."""
    v = np.asarray(first_frames, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v) & (v >= 0)].astype(int)
    counts = np.bincount(v, minlength=num_frames)[:num_frames] if v.size else np.zeros(num_frames, int)
    t = np.arange(num_frames)
    fig, ax = plt.subplots(figsize=(9, 3.8))
    late = t > last_input
    ax.bar(t[~late], counts[~late], color="#4c72b0", label=f"first seen in t=0..{last_input} (input)")
    ax.bar(t[late], counts[late], color="#dd8452", label=f"first seen after t={last_input} (late entrant)")
    top = counts.max() if counts.size else 0
    for ti, c in zip(t, counts):
        if c:
            ax.text(ti, c + top * 0.01, str(int(c)), ha="center", va="bottom", fontsize=7)
    ax.axvline(last_input + 0.5, color="black", linestyle="--", linewidth=1)
    ax.set_xticks(t)
    ax.set_xlim(-0.7, num_frames - 0.3)
    ax.set_ylim(0, max(1, top) * 1.12)
    ax.set_xlabel("frame index t of first appearance")
    ax.set_ylabel("objects")
    share = float((v > last_input).mean()) if v.size else float("nan")
    ax.set_title(title or f"When objects first appear ({v.size} objects, {share:.1%} enter after t={last_input})")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.tight_layout()
    return fig


def save_figure(fig, name, figures_dir, dpi=110, close=False):
    """Write ``fig`` as ``<figures_dir>/<name>.png`` (folder created, atomic write); returns the path.
    ``close`` frees the figure afterwards (scripts; notebooks keep it to display it)."""
    from lib.common.files import atomic_path
    from lib.common.paths import resolve

    name = str(name)
    path = resolve(figures_dir) / (name if name.lower().endswith(".png") else name + ".png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    if close:
        plt.close(fig)
    return path


def rollout_figure(preds, trues, video_ids, first_frame=11, panel_size=1.0):
    """For each video two rows, true and predicted masks of frames ``first_frame`` .. (0-based indices),
    so a person sees where an autoregressive rollout drifts. ``preds``/``trues``: (n, S, H, W)."""
    preds, trues = np.asarray(preds), np.asarray(trues)
    n, steps = preds.shape[:2]
    h, w = preds.shape[2:]
    fig, axes = plt.subplots(
        2 * n, steps, figsize=(steps * panel_size * w / h, 2 * n * panel_size + 0.4), squeeze=False
    )
    for r in range(n):
        for s in range(steps):
            for j, (name, arr) in enumerate((("true", trues), ("pred", preds))):
                ax = axes[2 * r + j, s]
                ax.imshow(colorize(arr[r, s]), interpolation="nearest")
                _hide_ticks(ax)
                if r == 0 and j == 0:
                    ax.set_title(_frame_title(first_frame + s), fontsize=7)
                if s == 0:
                    ax.set_ylabel(f"{_video_label(video_ids[r])}\n{name}", fontsize=7)
    fig.tight_layout(pad=0.2, w_pad=0.1, h_pad=0.1)
    return fig


def curves(history, panels, figsize=None):
    """Training curves: one panel per ``(key, ylabel)`` in ``panels``, epoch on the x axis."""
    ep = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, len(panels), figsize=figsize or (4.5 * len(panels), 3), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        ax.plot(ep, [r.get(key, np.nan) for r in history], "o-")
        ax.set(xlabel="epoch", ylabel=label)
    fig.tight_layout()
    return fig


def oracle_figure(rows, costs, title="Where frame-22 IoU is lost (val)"):
    """Left: IoU of predictors and oracles ({name: {source: IoU}}, one bar per source); right: the IoU each
    failure category costs ({predictor: {category: {"iou_cost": x, "objects": n}}}, lib/objects/oracle.py)."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 0.35 * max(len(rows), 6) + 1.2))
    names = list(rows)
    sources = list(dict.fromkeys(s for r in rows.values() for s in r))
    y = np.arange(len(names))
    h = 0.8 / max(len(sources), 1)
    for j, src in enumerate(sources):
        a1.barh(y - 0.4 + h * (j + 0.5), [rows[n].get(src, np.nan) for n in names], h, label=f"{src} inputs")
    a1.set_yticks(y, names, fontsize=7)
    a1.invert_yaxis()
    a1.set_xlim(0, 1)
    a1.set_xlabel("frame-22 IoU")
    a1.legend(fontsize=7, loc="upper right")
    a1.set_title(title, fontsize=9)
    preds = list(costs)
    cats = list(dict.fromkeys(c for v in costs.values() for c in v))
    x = np.arange(len(cats))
    w = 0.8 / max(len(preds), 1)
    for j, name in enumerate(preds):
        a2.bar(x - 0.4 + w * (j + 0.5), [costs[name][c]["iou_cost"] for c in cats], w, label=name)
    first = costs[preds[0]] if preds else {}
    a2.set_xticks(x, [f"{c}\n({first[c]['objects']} objects)" for c in cats], fontsize=7)
    a2.set_ylabel("IoU gained if these objects were right")
    a2.legend(fontsize=7)
    a2.set_title("What each failure category costs (U-Net inputs)", fontsize=9)
    fig.tight_layout()
    return fig

"""Statistics of mask videos (N, T, H, W) of class ids: how hard is a dataset (docs/dataset.md, Calibration)?

Used to calibrate the synthetic generator against the real data (copy-frame-11 IoU ~0.24, late entrants,
object sizes) and to describe any dataset in the notebooks.
"""

import numpy as np

from lib.common.classes import NUM_CLASSES
from lib.common.metrics import jaccard


def _check(masks):
    masks = np.asarray(masks)
    if masks.ndim != 4:
        raise ValueError(f"masks must be (N, T, H, W), got shape {masks.shape}")
    return masks


def copy_frame_iou(masks, src=10, dst=21):
    """The task metric of predicting frame `dst` by copying frame `src`, stacked over all videos:
    (mean IoU, per-class IoU)."""
    masks = _check(masks)
    return jaccard(masks[:, src], masks[:, dst])


def areas(masks):
    """(N, T, NUM_CLASSES) pixel count of each class in each frame."""
    masks = _check(masks)
    n, t = masks.shape[:2]
    out = np.zeros((n, t, NUM_CLASSES), np.int64)
    offs = (np.arange(t) * NUM_CLASSES)[:, None]
    for i in range(n):  # one video at a time keeps the int64 copy small
        flat = masks[i].reshape(t, -1).astype(np.int64) + offs
        out[i] = np.bincount(flat.ravel(), minlength=t * NUM_CLASSES).reshape(t, NUM_CLASSES)
    return out


def _ids_per_frame(masks):
    """(N, T, NUM_CLASSES) bool: which objects (non-zero ids) are visible in each frame."""
    present = areas(masks) > 0
    present[..., 0] = False
    return present


def objects_per_frame(masks):
    """(N, T) number of distinct objects (non-zero ids) in each frame."""
    return _ids_per_frame(_check(masks)).sum(-1)


def first_appearance(masks):
    """(N, NUM_CLASSES) frame index where each class first appears in each video, -1 if never
    (column 0, the background, is -1). A histogram of the values >= 0 shows entrants over time."""
    present = _ids_per_frame(_check(masks))
    first = np.where(present.any(1), present.argmax(1), -1)
    first[:, 0] = -1
    return first


def entrants(masks, after=10):
    """Per video, the sorted list of ids whose first appearance is after frame index `after`."""
    first = first_appearance(masks)
    return [sorted(np.nonzero(f > after)[0].tolist()) for f in first]


def object_sizes(masks):
    """Equivalent diameter 2*sqrt(area/pi) in px of every visible object in every frame (1-D array)."""
    a = areas(masks)[..., 1:]
    return 2 * np.sqrt(a[a > 0] / np.pi)


def moved_pixels(masks, a=10, b=21):
    """(N,) number of pixels whose label differs between frames `a` and `b`."""
    masks = _check(masks)
    return (masks[:, a] != masks[:, b]).reshape(len(masks), -1).sum(1)


def class_frequencies(masks):
    """(NUM_CLASSES,) pixel count of each class over all frames."""
    return areas(masks).sum((0, 1))


def summarize(masks, src=10, dst=21):
    """The numbers that say how hard a mask dataset is, as a flat dict of plain floats."""
    masks = _check(masks)
    iou, _ = copy_frame_iou(masks, src, dst)
    a = areas(masks)
    present = a[..., 1:] > 0
    first = np.where(present.any(1), present.argmax(1), -1)  # (N, 48) first frame of each object
    sizes = 2 * np.sqrt(a[..., 1:][present] / np.pi)
    p5, p50, p95 = np.percentile(sizes, [5, 50, 95]) if len(sizes) else (np.nan,) * 3
    return {
        "videos": int(len(masks)),
        "copy_frame_iou": float(iou),
        "objects_per_frame": float(present.sum(-1).mean()),
        "objects_per_video": float((first >= 0).sum(1).mean()),
        "late_entrant_share": float((first > src).any(1).mean()),
        "size_p5": float(p5),
        "size_p50": float(p50),
        "size_p95": float(p95),
        "moved_pixels": float(moved_pixels(masks, src, dst).mean()),
    }

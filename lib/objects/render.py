"""The renderer: predicted objects pasted into the frame-22 mask.

Each object's mask of its reference frame (last clean input frame, else the last visible one) is moved by its
predicted displacement and scaled about its centroid (``motion.ObjectPrediction``); objects are drawn far to
near, i.e. in order of their predicted bottom row (lowest in the image last, on top); pixels moved outside the
frame are dropped (no wrap-around).

    mask22 = render(masks[:11], motion.predict_from_tracks(tracks.tracks(masks[:11]), settings))
"""

import numpy as np

from lib.objects import tracks


def object_pixels(masks_in, cid, t, denoise=False):
    """(ys, xs) of object ``cid`` in frame ``t`` (its largest blob only with ``denoise``)."""
    frame = np.asarray(masks_in[t])
    sel = tracks.largest_component(frame, cid) if denoise else frame == cid
    return np.nonzero(sel)


def place(ys, xs, c, new_c, scale, h, w):
    """Pixels of the moved (and scaled) object, clipped to the frame: (ys, xs) int arrays."""
    empty = np.zeros(0, np.int64)
    if not (np.isfinite(scale) and scale > 0 and np.isfinite(new_c).all()):
        return empty, empty
    if abs(scale - 1.0) < 1e-3:
        d = np.rint(np.asarray(new_c) - np.asarray(c)).astype(np.int64)
        ny, nx = ys + d[0], xs + d[1]
    else:  # inverse mapping over the target bbox, nearest neighbour
        y0, x0 = ys.min(), xs.min()
        src = np.zeros((ys.max() - y0 + 1, xs.max() - x0 + 1), bool)
        src[ys - y0, xs - x0] = True
        ty0 = int(np.floor(new_c[0] + (y0 - 0.5 - c[0]) * scale))
        ty1 = int(np.ceil(new_c[0] + (ys.max() + 0.5 - c[0]) * scale))
        tx0 = int(np.floor(new_c[1] + (x0 - 0.5 - c[1]) * scale))
        tx1 = int(np.ceil(new_c[1] + (xs.max() + 0.5 - c[1]) * scale))
        # only the part inside the frame: a point predicted near the horizon can scale up a thousandfold
        ty0, ty1, tx0, tx1 = max(ty0, 0), min(ty1, h - 1), max(tx0, 0), min(tx1, w - 1)
        if ty0 > ty1 or tx0 > tx1:
            return empty, empty
        gy, gx = np.mgrid[ty0 : ty1 + 1, tx0 : tx1 + 1]
        sy = np.rint(c[0] + (gy - new_c[0]) / scale).astype(np.int64) - y0
        sx = np.rint(c[1] + (gx - new_c[1]) / scale).astype(np.int64) - x0
        ok = (sy >= 0) & (sy < src.shape[0]) & (sx >= 0) & (sx < src.shape[1])
        ok[ok] = src[sy[ok], sx[ok]]
        ny, nx = gy[ok], gx[ok]
    keep = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
    return ny[keep], nx[keep]


def render_layers(masks_in, predictions, H=None, W=None, denoise=False):
    """The objects ``render`` draws, far to near (by predicted bottom row, then id): a list of dicts with
    ``cid``, ``pred`` (the ObjectPrediction), ``new_c`` (the predicted centroid of its pixels), ``bottom`` and
    ``placed`` (the (ys, xs) pixels it covers in the frame). Objects without reference pixels are left out."""
    masks_in = np.asarray(masks_in)
    h = masks_in.shape[1] if H is None else H
    w = masks_in.shape[2] if W is None else W
    out = []
    for cid, p in predictions.items():
        ys, xs = object_pixels(masks_in, cid, p.ref_t, denoise)
        if not len(ys):
            continue
        c = np.array([ys.mean(), xs.mean()])  # rendering is about the pixels' own centroid
        new_c = c + np.asarray(p.disp, float)
        bottom = new_c[0] + (ys.max() - c[0]) * p.scale
        placed = place(ys, xs, c, new_c, p.scale, h, w)
        out.append({"bottom": bottom, "cid": int(cid), "pred": p, "new_c": new_c, "placed": placed})
    out.sort(key=lambda layer: (layer["bottom"], layer["cid"]))
    return out


def render(masks_in, predictions, H=None, W=None, denoise=False):
    """The predicted (H, W) uint8 mask: each object's mask of its reference frame (last clean frame, else
    last visible) moved by its predicted displacement and scaled about its centroid; objects drawn far to
    near, i.e. in order of their predicted bottom row (lowest in the image last, on top); pixels moved
    outside the frame are dropped (no wrap-around)."""
    masks_in = np.asarray(masks_in)
    h = masks_in.shape[1] if H is None else H
    w = masks_in.shape[2] if W is None else W
    out = np.zeros((h, w), np.uint8)
    for layer in render_layers(masks_in, predictions, h, w, denoise):
        out[layer["placed"]] = layer["cid"]
    return out

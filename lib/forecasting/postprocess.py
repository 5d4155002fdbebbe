"""New-object suppression (docs/recipe.md, step 4).

A class id is one object, so a predicted frame-22 id that never appears in the (U-Net) masks of frames
0-10 is most likely a known object whose attributes the model blurred: it is mapped to the known object
with the nearest attributes (cost: colour 4, shape 2, material 1). Then every connected blob under
``min_blob`` pixels becomes background. (True late entrants cannot be predicted from frames 0-10 anyway.)
"""

import numpy as np
from scipy import ndimage

from lib.common.classes import attributes

COST = {"color": 4, "shape": 2, "material": 1}


def attribute_cost(a, b):
    """Attribute distance between two class ids 1..48."""
    sa, ma, ca = attributes(a)
    sb, mb, cb = attributes(b)
    return COST["color"] * (ca != cb) + COST["shape"] * (sa != sb) + COST["material"] * (ma != mb)


def nearest_known(cid, known):
    """The known id with the smallest attribute cost to ``cid`` (ties: the smaller id)."""
    return min(sorted(known), key=lambda k: attribute_cost(cid, k))


def suppress(pred, known_ids, min_blob=100, remap=True):
    """Post-process one predicted mask (H, W) given the ids seen in the input frames."""
    out = np.array(pred, copy=True)
    known = {int(k) for k in np.asarray(list(known_ids)).ravel() if int(k) != 0}
    if remap:
        for cid in np.unique(out):
            if cid != 0 and int(cid) not in known:
                out[out == cid] = nearest_known(int(cid), known) if known else 0
    if min_blob:
        for cid in np.unique(out):
            if cid == 0:
                continue
            blobs, n = ndimage.label(out == cid)
            sizes = np.bincount(blobs.ravel(), minlength=n + 1)
            small = np.nonzero(sizes < min_blob)[0]
            small = small[small > 0]
            if len(small):
                out[np.isin(blobs, small)] = 0
    return out


def suppress_batch(preds, input_masks, min_blob=100, remap=True):
    """``suppress`` for (N, H, W) predictions with their (N, T, H, W) input masks."""
    return np.stack([suppress(p, np.unique(m), min_blob, remap) for p, m in zip(preds, input_masks)])

"""The re-simulated frame 22 with another predictor's objects where the simulation has them move freely.

Re-simulation is strongest where objects meet (a collision is the simulator's to resolve), and the learned object
model of lib/objects where they move alone (measured by notebook 06's failure categories). ``combine`` takes
each object the simulation has touching another one between frames 10 and 21 (``predict.predict(...,
touching=True)``) from the re-simulated mask, and every other object from the other predictor's mask.

    mask22 = combine(resim_mask, learned_mask, touched_ids)
"""

import numpy as np


def combine(resim_mask, other_mask, touched_ids):
    """(H, W) uint8: ``other_mask`` with the objects ``touched_ids`` (class ids) replaced by their pixels in
    ``resim_mask`` (drawn over the other objects where they overlap)."""
    out = np.array(other_mask, copy=True)
    touched_ids = np.asarray(touched_ids, np.int64)
    if not len(touched_ids):
        return out
    out[np.isin(out, touched_ids)] = 0
    take = np.isin(resim_mask, touched_ids)
    out[take] = np.asarray(resim_mask)[take]
    return out


def combine_split(resim_masks, other_masks, touched):
    """(N, H, W) ``combine`` of each video: ``touched`` is a list of class-id arrays, one per video."""
    return np.stack([combine(r, o, t) for r, o, t in zip(resim_masks, other_masks, touched)])

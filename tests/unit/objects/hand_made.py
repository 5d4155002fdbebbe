"""Hand-made mask videos and tracks for the tests of lib/objects (imported by the tests of this folder)."""

import numpy as np

from lib.objects import tracks

H, W = 160, 240


def square_video(t_len=11, cid=5, y=40, x=20, vx=3, vy=0, size=10):
    m = np.zeros((t_len, H, W), np.uint8)
    for t in range(t_len):
        y0, x0 = y + vy * t, x + vx * t
        m[t, max(y0, 0) : max(y0 + size, 0), max(x0, 0) : max(x0 + size, 0)] = cid
    return m


def synthetic_track(positions, cid=5, area=100, t_len=11):
    """A Track with exact float centroids (a 10x10 object far from the border) at the given frames."""
    stats = [{} for _ in range(t_len)]
    for t, (y, x) in positions.items():
        stats[t][cid] = (area, y, x, (int(y) - 5, int(x) - 5, int(y) + 5, int(x) + 5))
    return tracks.tracks_from_stats(stats, (H, W))

"""Bootstrap intervals over videos (lib/common/metrics.py): the stacked task metric recomputed per resample."""

import numpy as np
import pytest

from lib.common.classes import NUM_CLASSES
from lib.common.metrics import jaccard


def _videos(n, seed, noise):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 6, (n, 12, 16))
    p = t.copy()
    flip = rng.random(t.shape) < noise
    p[flip] = rng.integers(0, 6, int(flip.sum()))
    return p, t


def test_bootstrap_interval_is_the_stacked_metric_resampled_over_videos():
    from lib.common import metrics as M

    p, t = _videos(12, 0, 0.3)
    cms = M.per_video_confusion(p, t)
    assert cms.shape == (12, NUM_CLASSES, NUM_CLASSES)
    assert M.stacked_iou(cms.sum(0)) == pytest.approx(jaccard(p, t)[0])  # summed: the stacked metric
    lo, hi = M.bootstrap_ci(cms, n_boot=200, seed=3)
    assert lo < jaccard(p, t)[0] < hi and hi - lo < 0.2
    # the same numbers as resampling the videos themselves and scoring each resample with the task metric
    w = M._resample_weights(12, 200, 3)
    draws = [np.repeat(np.arange(12), c.astype(int)) for c in w]
    naive = [jaccard(p[d], t[d])[0] for d in draws]
    assert [lo, hi] == pytest.approx(list(np.percentile(naive, [2.5, 97.5])))
    # more videos: a narrower interval
    p2, t2 = _videos(120, 1, 0.3)
    lo2, hi2 = M.bootstrap_ci(M.per_video_confusion(p2, t2), n_boot=200)
    assert hi2 - lo2 < hi - lo


def test_paired_bootstrap_of_a_difference():
    from lib.common import metrics as M

    p, t = _videos(30, 0, 0.2)
    worse = p.copy()
    worse[:, :4] = 0  # the same predictor with a band of errors: worse on every video
    a, b = M.per_video_confusion(p, t), M.per_video_confusion(worse, t)
    d = M.bootstrap_diff_ci(a, b, n_boot=300)
    assert d["diff"] == pytest.approx(jaccard(p, t)[0] - jaccard(worse, t)[0])
    assert 0 < d["ci"][0] <= d["diff"] <= d["ci"][1]
    assert M.bootstrap_diff_ci(a, a, n_boot=50) == {"diff": 0.0, "ci": [0.0, 0.0]}
    with pytest.raises(ValueError, match="same videos"):
        M.bootstrap_diff_ci(a, b[:3])

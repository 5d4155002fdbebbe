"""lib.objects.learned on masks-only synthetic videos: the untrained model is its baseline; select="last"."""

import numpy as np
import pytest
import torch

from lib.data import scene, synth
from lib.objects import learned

FIRST = synth.extra_first_id(100)  # after the cpu profile's 100 unlabeled videos
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_untrained_model_is_the_baseline_on_masks_only_videos():
    cfg = dict(learned.DEFAULT_CFG, baseline="decel", size_b=0.0)
    _, m, _ = scene.render_video(FIRST, 0, rgb_frames=[], mask_frames=synth.MASK_FRAMES)
    item = learned.video_objects(m, cfg, with_target=True)
    assert item["cids"] and item["tmask"].any()
    (preds,) = learned.predict_items(learned.build_model(cfg), [item], "cpu")
    for c, p in preds.items():
        assert np.allclose(p.disp, item["preds"][c].disp) and np.isclose(p.scale, item["preds"][c].scale)


def test_train_dynamics_select_last(tmp_path):
    vids = np.stack(
        [scene.render_video(FIRST + i, 0, rgb_frames=[], mask_frames=synth.MASK_FRAMES)[1] for i in range(5)]
    )
    cfg = dict(learned.DEFAULT_CFG, baseline="decel", size_b=0.0, d=16, heads=2, layers=1)
    model, hist = learned.train_dynamics(
        [vids], tmp_path / "r", epochs=2, cfg=cfg, device="cpu", progress=False, select="last"
    )
    last = torch.load(tmp_path / "r" / "last.pt", weights_only=False)["model"]
    assert len(hist) == 2 and all(torch.equal(v, last[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="select"):
        learned.train_dynamics([vids], tmp_path / "r2", epochs=1, cfg=cfg, device="cpu", progress=False, select="first")

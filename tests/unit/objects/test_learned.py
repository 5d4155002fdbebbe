"""The learned object dynamics model: features, padding, training, prediction (tiny, fast)."""

import numpy as np
import pytest
import torch

from lib.common.metrics import jaccard
from lib.objects import learned, motion, render, tracks
from lib.objects.motion import MotionSettings

H, W = 160, 240
CFG = dict(learned.DEFAULT_CFG, baseline="decel", k=2, decel=0.3, size_b=0.0)  # decel too strong: residual to learn


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def video(objs, t_len=22):
    """objs: list of (cid, y, x, vy, vx, size) moving at constant velocity."""
    m = np.zeros((t_len, H, W), np.uint8)
    for t in range(t_len):
        for cid, y, x, vy, vx, s in objs:
            y0, x0 = int(round(y + vy * t)), int(round(x + vx * t))
            m[t, max(y0, 0) : max(y0 + s, 0), max(x0, 0) : max(x0 + s, 0)] = cid
    return m


def random_videos(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        cids = rng.choice(np.arange(1, 49), rng.integers(1, 4), replace=False)
        objs = [
            (
                int(c),
                int(rng.integers(20, 120)),
                int(rng.integers(60, 160)),
                int(rng.integers(-1, 2)),
                int(rng.integers(-3, 4)),
                int(rng.integers(8, 14)),
            )
            for c in cids
        ]
        out.append(video(objs))
    return np.stack(out)


def test_features_and_targets():
    v = video([(5, 40, 60, 0, 3, 10), (40, 100, 150, 1, -2, 12)])
    item = learned.video_objects(v, CFG, with_target=True)
    assert item["cids"] == [5, 40]
    assert item["feats"].shape == (2, learned.N_FEATURES) and np.isfinite(item["feats"]).all()
    assert item["tmask"].all()
    # target = true displacement - baseline displacement
    true_disp = np.array([0, 33.0])
    np.testing.assert_allclose(item["target"][0, :2], true_disp - item["base"][0], atol=1e-4)
    # a video's 11 input frames give the same features without targets
    item11 = learned.video_objects(v[:11], CFG)
    np.testing.assert_array_equal(item11["feats"], item["feats"])


def test_padding_does_not_change_real_objects():
    torch.manual_seed(0)
    model = learned.ObjectDynamics(d=32, cfg=CFG)
    for p in model.head[-1].parameters():  # non-zero outputs
        torch.nn.init.normal_(p, std=0.1)
    model.eval()
    a = learned.video_objects(video([(5, 40, 60, 0, 3, 10)]), CFG, True)
    b = learned.video_objects(
        video([(7, 40, 60, 0, 3, 10), (9, 90, 120, 1, 1, 12), (30, 20, 200, 0, -2, 9)]), CFG, True
    )
    batch = learned.collate([learned._tensors(a), learned._tensors(b)])
    assert batch["feats"].shape == (2, 3, learned.N_FEATURES) and batch["pad"].tolist() == [
        [False, True, True],
        [False] * 3,
    ]
    with torch.no_grad():
        disp, scale, res = model(batch["feats"], batch["pad"], batch["base"], batch["base_scale"])
        alone = learned.collate([learned._tensors(a)])
        disp_a, scale_a, _ = model(alone["feats"], alone["pad"], alone["base"], alone["base_scale"])
    assert disp.shape == (2, 3, 2) and scale.shape == (2, 3) and res.shape == (2, 3, 3)
    torch.testing.assert_close(disp[0, :1], disp_a[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scale[0, :1], scale_a[0], atol=1e-5, rtol=1e-5)
    # garbage in the padded slots changes nothing either
    batch["feats"][0, 1:] = 100.0
    with torch.no_grad():
        disp2, _, _ = model(batch["feats"], batch["pad"], batch["base"], batch["base_scale"])
    torch.testing.assert_close(disp2[0, :1], disp_a[0], atol=1e-5, rtol=1e-5)


def test_objects_the_baseline_keeps_still_keep_its_prediction():
    # object 5 moves (decel baseline: 3 px/frame), object 9 stands still
    v = video([(5, 40, 60, 0, 3, 10), (9, 100, 150, 0, 0, 12)])
    item = learned.video_objects(v[:11], CFG)
    assert np.hypot(*item["preds"][9].disp) < CFG["still"] <= np.hypot(*item["preds"][5].disp)
    model = learned.ObjectDynamics(d=16, cfg=CFG)
    with torch.no_grad():  # every object 5 px lower and 10% larger
        model.head[-1].bias.copy_(torch.tensor([0.5, 0.0, np.log(1.1)]))
    (preds,) = learned.predict_items(model, [item], "cpu")
    np.testing.assert_allclose(preds[5].disp, item["preds"][5].disp + [5, 0], atol=1e-5)
    assert preds[5].scale == pytest.approx(1.1 * item["preds"][5].scale)
    np.testing.assert_allclose(preds[9].disp, item["preds"][9].disp)
    assert preds[9].scale == item["preds"][9].scale
    model.cfg["still"] = 0.0  # the rule off: the model moves it too
    (preds,) = learned.predict_items(model, [item], "cpu")
    np.testing.assert_allclose(preds[9].disp, item["preds"][9].disp + [5, 0], atol=1e-5)


def test_flip_averaging_cancels_a_sideways_bias():
    """With cfg["flip"] each video is also read mirrored: a model that pushes every object 5 px right pushes
    the mirrored objects 5 px right too, i.e. 5 px left in the video, so the averaged answer keeps only its
    common part (5 px down) and the baseline's own sideways motion."""
    v = video([(5, 40, 60, 0, 3, 10), (9, 100, 150, 1, -2, 12)])[:11]
    model = learned.ObjectDynamics(d=16, cfg=dict(CFG, still=0.0))
    with torch.no_grad():  # every object 5 px lower, 5 px to the right, 10% larger
        model.head[-1].bias.copy_(torch.tensor([0.5, 0.5, np.log(1.1)]))
    item, mirror = learned.video_objects(v, model.cfg), learned.mirrored_objects(v, model.cfg)
    assert mirror["cids"] == item["cids"] == [5, 9]
    (one,) = learned.predict_items(model, [item], "cpu")
    (avg,) = learned.predict_items(model, [item], "cpu", mirrored=[mirror])
    for c in (5, 9):
        base = item["preds"][c].disp
        np.testing.assert_allclose(one[c].disp, base + [5, 5], atol=1e-4)
        np.testing.assert_allclose(avg[c].disp, base + [5, 0], atol=1e-4)
        assert avg[c].scale == pytest.approx(1.1 * item["preds"][c].scale, rel=1e-5)
    # predict_split_learned averages when the checkpoint's config says so
    flipped = learned.predict_split_learned(model, v[None], device="cpu", progress=False)
    model.cfg["flip"] = False
    single = learned.predict_split_learned(model, v[None], device="cpu", progress=False)
    want = render.render(v, avg)
    np.testing.assert_array_equal(flipped[0], want)
    assert not np.array_equal(single[0], want)
    with pytest.raises(ValueError, match="mirrored items"):
        learned.predict_items(model, [item], "cpu", mirrored=[learned.video_objects(v[:, :, :120], model.cfg)])


def test_untrained_model_is_the_baseline():
    v = random_videos(3, seed=1)
    model = learned.ObjectDynamics(d=16, cfg=CFG)
    pred = learned.predict_split_learned(model, v, device="cpu", progress=False)
    base = np.stack([motion.predict_video(x, MotionSettings("decel", k=2, decel=0.3)) for x in v])
    np.testing.assert_array_equal(pred, base)


def test_tiny_training_lowers_the_loss(tmp_path):
    vids = random_videos(24)
    torch.manual_seed(0)
    items = learned.build_dataset(vids, CFG, flip=True, progress=False)
    assert len(items) == 48
    batch = learned.collate(items)
    model = learned.ObjectDynamics(d=32, cfg=CFG)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = learned.dynamics_loss(model, batch, "cpu").item()
    for _ in range(60):
        loss = learned.dynamics_loss(model, batch, "cpu")
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first

    # the whole training function: checkpoints, history, held-out IoU, a reloadable model
    model, hist = learned.train_dynamics(
        [vids], tmp_path / "dyn", epochs=2, cfg=CFG, batch_size=8, heldout=4, progress=False, device="cpu", flip=False
    )
    assert len(hist) == 2 and 0 <= hist[-1]["val_iou"] <= 1 and "baseline_iou" in hist[-1]
    again = learned.load_dynamics(tmp_path / "dyn" / "best.pt")
    assert again.cfg["decel"] == 0.3
    out = learned.predict_split_learned(again, vids[:2], device="cpu", progress=False)
    assert out.shape == (2, H, W) and out.dtype == np.uint8


def test_train_dynamics_fits_its_baseline(tmp_path):
    rng = np.random.default_rng(3)
    vids = np.stack(
        [
            video([(int(c), int(rng.integers(20, 110)), 60, 2, int(rng.integers(1, 4)), 12)])
            for c in rng.choice(np.arange(1, 49), 10, replace=False)
        ]
    )
    model, hist = learned.train_dynamics(
        [vids],
        tmp_path / "d",
        epochs=1,
        batch_size=4,
        heldout=2,
        progress=False,
        device="cpu",
        flip=False,
        n_fit_videos=8,
    )
    assert model.cfg["baseline"] == "physics" and len(hist) == 1
    # objects of constant size and speed on a flat image: no perspective to fit, and the fitted physics
    # carries them on (copying frame 11 leaves them 10-30 px behind: 0.09 here, the fitted physics 0.29)
    assert model.cfg["size_b"] == 0.0
    base = learned.ObjectDynamics(d=16, cfg=model.cfg)  # untrained residual: the fitted baseline itself
    pred = learned.predict_split_learned(base, vids, device="cpu", progress=False)
    fitted = jaccard(pred, vids[:, 21])[0]
    copy = jaccard(vids[:, 10], vids[:, 21])[0]
    assert fitted > copy + 0.15, (fitted, copy)


@pytest.mark.parametrize("denoise", [False, True])
def test_tokens_of_mirrored_statistics_are_those_of_mirrored_videos(denoise):
    """build_dataset mirrors the statistics instead of the frames: the tokens must be the same."""
    cfg = dict(CFG, denoise=denoise)
    for v in random_videos(4, seed=3):
        want = learned.video_objects(v[:, :, ::-1], cfg, with_target=True)
        got = learned.video_objects(
            v, cfg, with_target=True, stats=tracks.flip_stats(learned.video_stats(v, cfg, True), W)
        )
        assert got["cids"] == want["cids"] and len(got["cids"])
        for key in ("feats", "base", "base_scale", "target", "tmask"):
            np.testing.assert_allclose(got[key], want[key], atol=1e-5)
    items = learned.build_dataset(random_videos(3, seed=3), cfg, flip=True, progress=False)
    assert len(items) == 6
    assert not torch.equal(items[0]["feats"], items[1]["feats"])  # the mirrored copy differs


def test_padded_token_batches_are_collated_batches():
    items = learned.build_dataset(random_videos(6, seed=4), CFG, flip=True, progress=False)
    tokens = learned._Tokens(items)
    assert len(tokens) == len(items)
    for rows in ([0, 3, 5], [7], list(range(len(items)))):
        got, want = tokens.batch(rows), learned.collate([items[i] for i in rows])
        assert got.keys() == want.keys()
        for k in want:
            assert torch.equal(got[k], want[k]), k


def test_token_workers_build_the_same_list():
    videos = random_videos(7, seed=5)
    one = learned.build_dataset(videos, CFG, flip=True, progress=False)
    two = learned.build_dataset(videos, CFG, flip=True, progress=False, workers=2, chunk=2)  # 4 jobs, 2 processes
    assert len(one) == len(two) == 14
    for a, b in zip(one, two):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

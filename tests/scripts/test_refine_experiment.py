"""lib/objects/refine.py on hand-made mask videos: the renderer's contract, identity when untrained, training,
checkpoints."""

import numpy as np
import pytest
import torch
from conftest import mask_video, moving

from lib.objects import oracle as Q
from lib.objects import refine as R
from lib.objects import tracks as O

H, W, T = 64, 96, 22


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def video(*objects):
    return mask_video(objects, (H, W), T)


def pred(cid, ref_t, masks, disp, scale=1.0):
    ys, xs = np.nonzero(masks[ref_t] == cid)
    return O.ObjectPrediction(cid, ref_t, np.array([ys.mean(), xs.mean()]), np.asarray(disp, float), scale)


def randomised(seed=0, bias=0.0):
    """A refiner whose residual is not zero (random head), to check the contract of any trained model."""
    torch.manual_seed(seed)
    m = R.build_model()
    with torch.no_grad():
        m.head.weight.normal_(0, 2.0)
        m.head.bias.fill_(bias)
    return m.eval()


def test_untrained_refiner_is_the_renderer():
    v = video((5, moving(10, 5, 0, 2)), (20, moving(40, 60, -1, -1, 10)), (33, moving(30, 30, 0, 0, 6)))
    v[:, 30:36, 30:33] = 0  # a non-square shape
    model = R.build_model()
    for preds in (
        {5: pred(5, 10, v, (0, 22)), 20: pred(20, 10, v, (-11, -11), 1.3), 33: pred(33, 10, v, (3, 0), 0.8)},
        O.predict_friction(O.tracks(v[:11])),
        {5: pred(5, 10, v, (20, 70))},  # partly out of the frame
    ):
        assert np.array_equal(R.refine_render(model, v[:11], preds), O.render(v[:11], preds))
    preds = [O.predict_friction(O.tracks(v[:11])), {}]
    for thr in R.THRESHOLDS:  # any threshold of the grid keeps the identity
        out = R.refine_split(model, np.stack([v, v]), preds, threshold=thr)
        assert np.array_equal(out[0], O.render(v[:11], preds[0])) and not out[1].any()


def test_contract_shape_dtype_ids_and_empty_predictions():
    v = video((5, moving(10, 5, 0, 2)), (20, moving(40, 60, -1, -1, 10)))
    model = randomised(bias=1.0)
    out = R.refine_render(model, v[:11], {5: pred(5, 10, v, (0, 22))})
    assert out.shape == (H, W) and out.dtype == np.uint8
    assert set(np.unique(out)) <= {0, 5} and (out == 5).any()
    empty = R.refine_render(model, v[:11], {})
    assert empty.shape == (H, W) and empty.dtype == np.uint8 and not empty.any()
    # an id the inputs do not show at its reference frame is left out, as by the renderer
    gone = O.ObjectPrediction(7, 10, np.array([20.0, 20.0]), np.zeros(2))
    assert not (R.refine_render(model, v[:11], {7: gone}) == 7).any()


def test_objects_are_clipped_at_the_border():
    v = video((5, moving(20, 70, 0, 1, 10)))
    model = randomised(bias=20.0)  # fills the whole crop with the object, wherever it lies
    for disp in ((0, 40), (0, -85), (-30, 0), (40, 20)):
        p = {5: pred(5, 10, v, disp)}
        out = R.refine_render(model, v[:11], p)
        assert out.shape == (H, W) and set(np.unique(out)) <= {0, 5}
        base = O.render(v[:11], p)
        assert (out == 5).sum() >= (base == 5).sum()  # no wrap-around: pixels beyond the edge are dropped
    far = {5: pred(5, 10, v, (0, 500))}  # moved wholly out: nothing drawn
    assert not R.refine_render(model, v[:11], far).any()


def test_far_to_near_order_is_kept():
    v = video((4, moving(5, 5, 0, 0, 16)), (9, moving(30, 60, 0, 0, 16)))  # apart in the inputs
    models = (R.build_model(), randomised(bias=0.5), randomised(seed=1, bias=20.0))
    # 4 moved onto 9 but higher in the image (farther): 9 is drawn on top
    preds = {9: pred(9, 10, v, (0, 0)), 4: pred(4, 10, v, (20, 50))}
    for model in models:
        assert (R.refine_render(model, v[:11], preds)[30:46, 60:76] == 9).all()
    # 4 moved onto 9 and lower (nearer): 4 is on top
    preds = {9: pred(9, 10, v, (0, 0)), 4: pred(4, 10, v, (34, 58))}
    for model in (models[0], models[2]):
        assert (R.refine_render(model, v[:11], preds)[39:55, 63:79] == 4).all()


def test_video_items_target_and_planes():
    v = video((4, moving(10, 20, 0, 1, 12)), (9, moving(18, 26, 0, 1, 12)))
    p = Q.oracle_predictions(v[:11], v)
    it = R.video_items(v[:11], p, true22=v[21])
    assert [la["cid"] for la in it["layers"]] == [4, 9]  # far to near
    assert it["planes"].shape == (2, R.N_PLANES, R.CROP, R.CROP) and it["feats"].shape == (2, R.N_FEATS)
    t4, t9 = it["target"]
    assert (t4 == -1).any() and not (t9[it["planes"][1, -1] == 1] == -1).any()  # 4 is hidden by 9, 9 by nothing
    assert (t9 == 1).sum() == (v[21] == 9).sum() and (t4 == 1).sum() == (v[21] == 4).sum()


def shape_change_videos(n=6):
    """Discs that turn into wider ellipse-like blobs after frame 10 (a shape change the renderer misses)."""
    out = []
    yy, xx = np.mgrid[:H, :W]
    for i in range(n):
        v = np.zeros((T, H, W), np.uint8)
        cy, cx, r = 20 + 3 * i, 20 + 4 * i, 6 + i % 3
        for t in range(T):
            x = cx + t
            rx = r if t <= 10 else r * 1.6
            v[t][((yy - cy) / r) ** 2 + ((xx - x) / rx) ** 2 <= 1] = 17 + i
        out.append(v)
    return np.stack(out)


def test_training_reduces_the_loss_and_checkpoint_round_trip(tmp_path):
    masks = shape_change_videos(6)
    d = R.build_dataset(masks, range(len(masks)), 0.0, progress=False)
    batch = {k: torch.from_numpy(v) for k, v in d.items()}
    before = R.refine_loss(R.build_model().eval(), batch, "cpu").item()
    model, hist = R.train_refiner(
        masks, tmp_path / "ref", epochs=8, batch_size=4, lr=5e-3, heldout=1, device="cpu", progress=False
    )
    after = R.refine_loss(model.eval(), batch, "cpu").item()
    assert after < before and hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert {"val_iou", "oracle_render_iou"} <= set(hist[-1])
    loaded = R.load_refiner(tmp_path / "ref" / "best.pt")
    assert loaded.cfg == model.cfg and model.cfg["threshold"] in R.THRESHOLDS  # chosen on the held-out video
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    p = Q.oracle_predictions(masks[0, :11], masks[0])
    assert np.array_equal(R.refine_render(loaded, masks[0, :11], p), R.refine_render(model, masks[0, :11], p))


def test_eval_refine_script_tiny(tmp_path, tiny_root):
    """scripts/experiments/eval_refine.py --tiny end to end on the tiny hand-made dataset: every row with an interval."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "r.json"
    cmd = [
        sys.executable,
        str(root / "scripts" / "experiments" / "eval_refine.py"),
        "--data-root",
        str(tiny_root),
        "--tiny",
        "--size-b",
        "0",
    ]
    proc = subprocess.run(cmd + ["--out", str(out)], cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["val_videos"] == 2 and set(r["results"]) == {"true"}  # no U-Net labels given: true inputs only
    rows, diffs = r["results"]["true"]["rows"], r["results"]["true"]["diffs"]
    assert {"oracle position", "oracle position + refine", "oracle true shapes", "physics", "physics + refine"} <= set(
        rows
    )
    assert all(v["ci"][0] - 1e-9 <= v["iou"] <= v["ci"][1] + 1e-9 for v in rows.values())
    assert rows["oracle true shapes"]["iou"] == pytest.approx(1.0)
    assert "physics + refine - physics" in diffs

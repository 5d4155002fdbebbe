"""lib/pipeline.py: U-Net masks of a split, the predictors (objects, SimVP, their combination) and their choice."""

import json

import numpy as np
import pytest
import torch

from lib import pipeline
from lib.objects import learned, motion
from lib.objects.motion import MotionSettings


def test_predict_frame22_confidence():
    from lib.forecasting.simvp import MaskSimVP
    from lib.forecasting.training import predict_frame22

    torch.manual_seed(0)
    m = MaskSimVP(embed_dim=4, in_len=11, hid_S=4, hid_T=8, N_S=2, N_T=2, mlp_ratio=2.0, frame_size=(16, 24)).eval()
    x = np.random.default_rng(0).integers(0, 49, (3, 11, 16, 24)).astype(np.uint8)
    dev = torch.device("cpu")
    plain = predict_frame22(m, x, dev, batch_size=2, steps=3)
    pred, conf = predict_frame22(m, x, dev, batch_size=2, steps=3, return_conf=True)
    assert np.array_equal(pred, plain) and conf.shape == pred.shape and conf.dtype == np.float16
    assert conf.min() >= 1 / 49 - 1e-3 and conf.max() <= 1.0
    with torch.no_grad():  # the confidence is the last step's max softmax probability
        w = torch.from_numpy(x.astype(np.int64))
        for _ in range(2):
            w = torch.cat([w[:, 1:], m(w).argmax(1, keepdim=True)], 1)
        ref = m(w).softmax(1).max(1).values.numpy()
    np.testing.assert_allclose(conf, ref, atol=2e-3)


def test_split_unet_masks_reuses_labels_of_the_same_model(tiny_root, tmp_path):
    from lib.data import dataset as data
    from lib.segmentation import label
    from lib.segmentation.unet import UNet

    packed = data.load_split(tiny_root, "val")
    unet = UNet(width=4, depth=2).eval()
    dev = torch.device("cpu")
    fresh, src = pipeline.split_unet_masks(unet, packed, dev, frames=[0, 10])
    assert src == "frames" and fresh.shape == (len(packed), 2, *packed.frames.shape[2:4])
    assert np.array_equal(fresh[1], label.segment(unet, np.asarray(packed.frames[1, [0, 10]])))
    label.label_split(unet, packed, tmp_path, model_key="unet-a", progress=False)
    labels = np.load(tmp_path / "val.npy", mmap_mode="r+")
    labels[:] = 7  # stand-in labels, so that reading them is visible
    labels.flush()
    got, src = pipeline.split_unet_masks(unet, packed, dev, tmp_path, "unet-a", frames=[0, 10])
    assert src == "labels" and (got == 7).all()
    got, src = pipeline.split_unet_masks(unet, packed, dev, tmp_path, "unet-b", frames=[0, 10])  # another model
    assert src == "frames" and np.array_equal(got, fresh)


def test_combine_modes():
    obj = np.array([[0, 5], [7, 0]], np.uint8)
    sim = np.array([[3, 6], [0, 9]], np.uint8)
    conf = np.array([[0.95, 0.99], [0.5, 0.2]])
    np.testing.assert_array_equal(pipeline.combine(obj, sim), [[3, 5], [7, 9]])
    np.testing.assert_array_equal(pipeline.combine(obj, sim, known_ids={3, 5, 7}), [[3, 5], [7, 0]])
    np.testing.assert_array_equal(pipeline.combine(obj, sim, conf, mode="confident"), [[3, 6], [7, 0]])
    np.testing.assert_array_equal(pipeline.combine(obj, sim, conf, mode="fill_confident"), [[3, 5], [7, 0]])
    batch = pipeline.combine(np.stack([obj, obj]), np.stack([sim, sim]), known_ids=[{3}, {9}])
    np.testing.assert_array_equal(batch, [[[3, 5], [7, 0]], [[0, 5], [7, 9]]])
    with pytest.raises(ValueError):
        pipeline.combine(obj, sim, mode="confident")


def test_choose_threshold_cross_validated():
    """Videos where SimVP's confident pixels are right (a filled object the renderer missed) pick a low
    threshold; videos where they are wrong pick 1.0 (never fill), and the cross-validated prediction of a
    fold uses the threshold chosen on the other folds."""
    n = 6
    true = np.zeros((n, 4, 4), np.uint8)
    true[:, :2, :2] = 5
    obj = np.zeros_like(true)  # the renderer lost object 5
    sim = true.copy()
    conf = np.full(true.shape, 0.8)
    known = [{5}] * n
    t, cv = pipeline.choose_threshold(obj, sim, conf, true, known, thresholds=(0.5, 1.0))
    assert t == 0.5 and np.array_equal(cv, true)
    wrong = np.zeros_like(true)
    wrong[:, 2:, 2:] = 5  # SimVP puts it in the wrong place: filling only adds false positives
    t, cv = pipeline.choose_threshold(obj, wrong, conf, true, known, thresholds=(0.5, 1.0))
    assert t == 1.0 and np.array_equal(cv, obj)


def _moving_masks(n=2):
    masks = np.zeros((n, 11, 40, 60), np.uint8)
    for t in range(11):
        masks[:, t, 10:20, 5 + 2 * t : 15 + 2 * t] = 7
    return masks


def test_selection_round_trip(tmp_path):
    masks = _moving_masks()
    chosen = pipeline.ObjectPredictor("constant velocity", MotionSettings("cv", k=2), size_b=0.007)
    chosen.save(tmp_path / "sel.json")
    loaded = pipeline.ObjectPredictor.load(tmp_path / "sel.json")
    assert loaded.name == "constant velocity" and loaded.settings == chosen.settings and loaded.size_b == 0.007
    want = motion.predict_split(masks, MotionSettings("cv", k=2), progress=False)
    np.testing.assert_array_equal(loaded.predict(masks), want)
    with pytest.raises(FileNotFoundError, match="notebook 06"):
        pipeline.ObjectPredictor.load(tmp_path / "missing.json")


def test_a_selection_written_before_the_refactor_still_loads(tmp_path):
    """selected.json of an older run: the non-learned kwargs it named, U-Net reading, no size_b."""
    old = {"name": "constant velocity", "kwargs": {"method": "cv", "k": 2}, "checkpoint": None}
    (tmp_path / "sel.json").write_text(json.dumps({**old, "min_area": 20, "denoise": True}))
    p = pipeline.ObjectPredictor.load(tmp_path / "sel.json")
    assert p.settings == MotionSettings("cv", k=2, min_area=20, denoise=True) and p.size_b == 0.0
    masks = _moving_masks()
    np.testing.assert_array_equal(p.predict(masks), motion.predict_split(masks, p.settings, progress=False))
    run = tmp_path / "run"  # in its run folder: the size model of the run's notebook 06, as notebook 07 read it
    (run / "objects").mkdir(parents=True)
    (run / "metrics").mkdir()
    (run / "objects" / "selected.json").write_text((tmp_path / "sel.json").read_text())
    (run / "metrics" / "06_objects.json").write_text(json.dumps({"settings": {"physics": {"size_b": 0.00775}}}))
    assert pipeline.ObjectPredictor.load(run / "objects" / "selected.json").size_b == 0.00775


def test_a_learned_selection_loads_its_checkpoint_with_the_unet_reading(tmp_path):
    cfg = learned.config(MotionSettings("decel", k=2, decel=0.3, size_b=0.004), d=16)
    model = learned.build_model(cfg)
    torch.save({"model": model.state_dict(), "config": {"model": model.cfg}}, tmp_path / "last.pt")
    chosen = pipeline.ObjectPredictor.of_model("learned", model, tmp_path / "last.pt").for_inputs("unet")
    chosen.save(tmp_path / "sel.json")
    sel = json.loads((tmp_path / "sel.json").read_text())
    assert sel["checkpoint"] == "last.pt"  # relative to the file's folder: a copied run folder uses its own
    assert sel["kwargs"] == {} and (sel["min_area"], sel["denoise"], sel["size_b"]) == (20, True, 0.004)
    loaded = pipeline.ObjectPredictor.load(tmp_path / "sel.json")
    assert loaded.model.cfg["min_area"] == 20 and loaded.model.cfg["denoise"] is True
    assert loaded.settings == MotionSettings("decel", k=2, decel=0.3, size_b=0.004, min_area=20, denoise=True)
    masks = _moving_masks()
    model.cfg.update(min_area=20, denoise=True)
    want = learned.predict_split_learned(model, masks, device="cpu", progress=False)
    np.testing.assert_array_equal(loaded.predict(masks), want)
    copy = tmp_path / "copy"  # the folder copied elsewhere, the original gone: the copy loads its own checkpoint
    copy.mkdir()
    for name in ("sel.json", "last.pt"):
        (tmp_path / name).rename(copy / name)
    assert pipeline.ObjectPredictor.load(copy / "sel.json").checkpoint == copy / "last.pt"


def test_choose_predictor_picks_on_val_and_predicts_through_the_chosen_object(monkeypatch):
    masks = _moving_masks(4)
    true22 = np.zeros((4, 40, 60), np.uint8)
    true22[:, 10:20, 47:57] = 7  # constant velocity is exact
    objects = pipeline.ObjectPredictor("constant velocity", MotionSettings("cv", k=2))
    simvp_pred = np.zeros_like(true22)
    simvp_pred[:, 0:3, 0:3] = 7  # SimVP puts a blob of 9 pixels in a corner
    calls = []

    def fake_forecast(model, inputs, device, return_conf=False):
        calls.append(len(inputs))
        return simvp_pred[: len(inputs)].copy(), np.full(simvp_pred[: len(inputs)].shape, 0.6, np.float16)

    monkeypatch.setattr(pipeline, "predict_frame22", fake_forecast)
    simvp = pipeline.SimVPPredictor(model=None, device="cpu", min_blob=20)
    choice = pipeline.choose_predictor(objects, simvp, masks, true22, seed=0)
    assert choice.postprocess  # suppressing the small blob helps: "auto" turns it on
    assert choice.key == "objects" and choice.predictor is objects and choice.name.startswith("objects: constant")
    assert list(choice.rows) == [
        "SimVP fine-tuned (notebook 05)",
        "fine-tuned + post-processing",
        "objects: constant velocity (notebook 06)",
        "combined: objects + confident SimVP fill (cross-validated)",
    ]
    assert choice.threshold == 0.5  # post-processed, SimVP fills nothing: every threshold ties, the first is kept
    np.testing.assert_array_equal(choice.predictor.predict(masks), true22)
    calls.clear()
    choice.predictor.predict(masks)
    assert calls == []  # the objects do not run SimVP
    forced = pipeline.choose_predictor(objects, simvp, masks, true22, predictor="combined", postprocess="off")
    assert forced.key == "combined" and not forced.postprocess and forced.predictor.simvp.postprocess is False
    assert forced.threshold == 0.7  # SimVP's blob kept: filling it only adds false positives, so none above 0.6
    calls.clear()
    out = forced.predictor.predict(masks)
    assert calls == [4] and np.array_equal(out, true22)  # SimVP ran; nothing filled at threshold 0.7
    with pytest.raises(ValueError, match="predictor"):
        pipeline.choose_predictor(objects, simvp, masks, true22, predictor="best")


def _resim_fit(source=None):
    """A hand-made re-simulation fit: the generator's camera and proportions, friction in the 0.1 s time unit."""
    from lib.resim.camera import Camera
    from lib.resim.fit_camera import CameraFit
    from lib.resim.fit_physics import PhysicsFit
    from lib.resim.fitted import ResimFit
    from lib.resim.simulate import Physics

    sizes = {"sphere_radius": 0.5, "cube_half": 0.4, "cylinder_radius": 0.5, "cylinder_height": 1.0}
    camera = CameraFit(Camera(32.0, 38.0, 10.0, 0.0), sizes, {"sphere": 0.1}, {"sphere": 1}, 0.5)
    physics = PhysicsFit(Physics(0.078, 0.04, 0.8, 2.0, 0.1, 30), {"slide": 0.77, "roll": None, "runs": {}})
    return ResimFit(camera, physics, source or {"train": "abc", "videos": 2})


def _drawn_videos(fit, cids, n=2):
    """(n, 11, H, W) masks drawn by the fit's camera: a sphere (``cids[0]``) rolling to the right and a cube
    (``cids[1]``) at rest."""
    from lib.resim.bodies import rest_state
    from lib.resim.draw import draw

    videos = []
    for k in range(n):
        frames = []
        for t in range(11):
            sphere = rest_state((-2.0 + 0.15 * t, 1.0 + k), "sphere", fit.sizes)
            cube = rest_state((1.5, -0.5 - k), "cube", fit.sizes)
            frames.append(draw(cids, np.stack([sphere, cube]), fit.camera, fit.sizes, supersample=2))
        videos.append(frames)
    return np.array(videos, np.uint8)


def test_a_resim_selection_round_trip(tmp_path):
    """A re-simulating predictor saved as notebook 06 saves its choice loads back through ObjectPredictor.load with
    the same fit and reading, predicts the same masks, and a copied folder uses its own fit."""
    from dataclasses import replace

    from lib.common.classes import class_id

    fit, sphere = _resim_fit(), class_id("sphere", "metal", "blue")
    masks = _drawn_videos(fit, [sphere, class_id("cube", "rubber", "red")])
    chosen = pipeline.ResimPredictor("re-simulation", fit, size_b=0.007, workers=1).for_inputs("unet")
    folder = tmp_path / "run" / "objects"
    chosen.save(folder / "selected.json")
    sel = json.loads((folder / "selected.json").read_text())
    assert sel == {"kind": "resim", "name": "re-simulation", "fit": "resim.json", "min_area": 20, "denoise": True,
                   "size_b": 0.007}  # fmt: skip
    loaded = pipeline.ObjectPredictor.load(folder / "selected.json")
    assert isinstance(loaded, pipeline.ResimPredictor) and loaded.fit == fit and loaded.name == "re-simulation"
    assert (loaded.size_b, loaded.settings.min_area, loaded.settings.denoise) == (0.007, 20, True)  # notebook 07 reads
    want = chosen.predict(masks)
    assert (want == sphere).any(axis=(1, 2)).all()  # the sphere is drawn in every video
    np.testing.assert_array_equal(replace(loaded, workers=1).predict(masks), want)
    copy = tmp_path / "copy"
    (tmp_path / "run").rename(copy)  # the folder moved: its own fit is read
    assert pipeline.ObjectPredictor.load(copy / "objects" / "selected.json").fit == fit
    (copy / "objects" / "resim.json").unlink()
    with pytest.raises(FileNotFoundError, match="resim.json"):
        pipeline.ObjectPredictor.load(copy / "objects" / "selected.json")


def test_selections_name_their_kind_and_old_ones_without_it_load(tmp_path):
    pipeline.ObjectPredictor("copy", MotionSettings("copy")).save(tmp_path / "sel.json")
    assert json.loads((tmp_path / "sel.json").read_text())["kind"] == "objects"
    old = {"name": "copy", "kwargs": {"method": "copy"}, "checkpoint": None, "min_area": 1, "denoise": False}
    (tmp_path / "old.json").write_text(json.dumps(old))  # written before the kind was recorded
    assert pipeline.ObjectPredictor.load(tmp_path / "old.json").settings == MotionSettings("copy")
    (tmp_path / "odd.json").write_text(json.dumps({**old, "kind": "telepathy"}))
    with pytest.raises(ValueError, match="odd.json: unknown predictor kind 'telepathy'"):
        pipeline.ObjectPredictor.load(tmp_path / "odd.json")


def test_the_resim_fit_is_reused_only_when_made_from_the_same_train_data(tmp_path, monkeypatch):
    from lib.resim import fitted

    calls = []

    def fake_fit(masks, source, **_):
        calls.append(source)
        return _resim_fit(source)

    monkeypatch.setattr(fitted, "fit_constants", fake_fit)
    path, a, b = tmp_path / "resim.json", {"train": "abc", "videos": 2}, {"train": "abc", "videos": 3}
    va, vb = ({**x, "fit_version": fitted.FIT_VERSION} for x in (a, b))  # what the file records
    assert fitted.load_or_fit(path, [], a) == (_resim_fit(va), False) and calls == [va]
    assert fitted.load_or_fit(path, [], a) == (_resim_fit(va), True) and calls == [va]  # the file, not a new fit
    assert fitted.load_or_fit(path, [], b) == (_resim_fit(vb), False) and calls == [va, vb]  # other settings: refitted
    path.write_text("{")  # not a fit: refitted too
    assert fitted.load_or_fit(path, [], b)[1] is False and fitted.ResimFit.from_json(path) == _resim_fit(vb)
    monkeypatch.setattr(fitted, "FIT_VERSION", fitted.FIT_VERSION + 1)  # the fitting code changed: refitted
    assert fitted.load_or_fit(path, [], b)[1] is False and len(calls) == 4
    path.write_text("{}")
    with pytest.raises(ValueError, match="resim.json: not a re-simulation fit"):
        fitted.ResimFit.from_json(path)


def test_a_resim_learned_selection_round_trip(tmp_path):
    """Re-simulation for objects that meet in its simulation, the learned model for the others: a sphere rolling
    into a resting cube comes from the re-simulation, a lone sliding cylinder from the learned model (which moves
    every moving object 5 px down here). Saved and loaded back through ObjectPredictor.load, it predicts the same masks."""
    from lib.common.classes import class_id
    from lib.resim.bodies import rest_state
    from lib.resim.draw import draw

    fit = _resim_fit()
    sphere, cube, cyl = (
        class_id(s, "rubber", c) for s, c in (("sphere", "red"), ("cube", "blue"), ("cylinder", "cyan"))
    )
    frames = []
    for t in range(11):  # the sphere reaches the cube after frame 10
        st = [rest_state((-3.0 + 0.2 * t, 1.0), "sphere", fit.sizes), rest_state((0.0, 1.0), "cube", fit.sizes),
              rest_state((3.0 - 0.1 * t, -1.0), "cylinder", fit.sizes)]  # fmt: skip
        frames.append(draw([sphere, cube, cyl], np.stack(st), fit.camera, fit.sizes, supersample=2))
    masks = np.array([frames], np.uint8)
    cfg = dict(learned.DEFAULT_CFG, baseline="decel", size_b=0.0, d=16)
    model = learned.build_model(cfg)
    with torch.no_grad():
        model.head[-1].bias.copy_(torch.tensor([0.5, 0.0, 0.0]))  # every moving object 5 px down
    torch.save({"model": model.state_dict(), "config": {"model": model.cfg}}, tmp_path / "last.pt")
    resim_part = pipeline.ResimPredictor("re-simulation", fit, workers=1).for_inputs("true")
    learned_part = pipeline.ObjectPredictor.of_model("learned", model, tmp_path / "last.pt").for_inputs("true")
    both = pipeline.ResimLearnedPredictor("both", resim_part, learned_part)
    resim_mask, touched = resim_part.predict(masks, touching=True)
    assert sorted(touched[0].tolist()) == sorted([sphere, cube])
    learned_mask = learned_part.predict(masks)
    got = both.predict(masks)
    for cid, want in ((sphere, resim_mask), (cube, resim_mask), (cyl, learned_mask)):
        np.testing.assert_array_equal(got[0] == cid, want[0] == cid)
    assert not np.array_equal(resim_mask[0] == cyl, learned_mask[0] == cyl)  # the two parts differ there
    both.save(tmp_path / "selected.json")
    loaded = pipeline.ObjectPredictor.load(tmp_path / "selected.json")
    assert isinstance(loaded, pipeline.ResimLearnedPredictor) and loaded.resim.fit == fit
    np.testing.assert_array_equal(loaded.predict(masks), got)


def test_chosen_predictions_are_reused_only_for_the_same_predictor_and_inputs(tmp_path):
    """Notebook 07 reuses notebook 06's val predictions only while ``selected.json`` and the input masks are the
    ones they were made from; a missing file, another choice or other inputs give None (predict again)."""
    chosen, kept = tmp_path / "selected.json", tmp_path / "selected_val.npz"
    rng = np.random.default_rng(0)
    masks_in = rng.integers(0, 49, (3, 11, 8, 12), dtype=np.uint8)
    preds = rng.integers(0, 49, (3, 8, 12), dtype=np.uint8)
    chosen.write_text('{"name": "re-simulation"}')
    assert pipeline.load_chosen_predictions(kept, chosen, masks_in) is None
    pipeline.save_chosen_predictions(kept, chosen, masks_in, preds)
    np.testing.assert_array_equal(pipeline.load_chosen_predictions(kept, chosen, masks_in), preds)
    other = masks_in.copy()
    other[1, 10, 0, 0] ^= 1
    assert pipeline.load_chosen_predictions(kept, chosen, other) is None
    chosen.write_text('{"name": "learned"}')
    assert pipeline.load_chosen_predictions(kept, chosen, masks_in) is None

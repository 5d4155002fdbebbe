"""The whole re-simulating predictor on a dataset made with other generator constants than the embedded data's:
camera elevation, field of view and distance, object radius, friction, restitution, metal mass and launch speeds
all shifted. The fits recover them from the train masks (in the predictor's units), and on val the re-simulating
predictor keeps its lead over the physics predictor of lib/objects fitted on the same train videos.

Units: masks fix neither the length nor the time unit. The predictor's length unit is a sphere radius of 0.5, so
lengths of the generator scale by ``LENGTH`` = 0.5 / radius; its time unit is ``FRAME_DT`` (0.1 s) a frame, the
generator's frame is frame_steps / hz (0.125 s), so times scale by ``TIME`` = 0.1 / 0.125. A slowing (friction * g)
scales by LENGTH / TIME^2, a speed by LENGTH / TIME; angles, restitution and mass ratio do not scale.

The generator takes every one of these constants as an override (``scene.SynthConfig``); nothing in lib/data
changed. Restitution 0.7 and mass ratio 3 are not points of fit_physics's grids (which hold the default 0.8 and 2).

What this small dataset supports (16 train videos, 7 of them collision videos, 32 val videos; measured values in
brackets, printed by the tests):
- camera angles within 0.6 degree, distance and sizes within 2 %, as test_fit_camera.py finds on 40 videos
  (fov -0.13, elevation -0.11 degree, distance +0.6 %, sizes within 0.2 %);
- sliding friction within 5 % (-1.6 %, from about 180 free sliding runs);
- the slowing of a rolling sphere at 2 units/s within 15 % (+12 %: 0.83 units/s^2 against 0.74). In this
  simulator it depends on the speed: here about 0.65 at 1 unit/s, 0.74 at 2, and from 3 units/s on the sphere
  slides and slows by friction * g, 0.89. The fit matches the median slowing of the measured sphere runs (0.83,
  launch speeds 2-4) at 2 units/s, so it comes out high there;
- the speeds of the objects at frame 10 within 10 %, median over objects (+1 %);
- restitution: NOT resolved. On the collision videos its grid's IoUs differ by under 0.01, up and down along
  0.5 .. 0.95 (the fit took 0.5), and the true constants score 0.03 below the fitted ones: differences of a few
  hundredths are the noise of 7 videos. Asserted: the fitted constants predict the collision videos at least as
  well as the true ones, within 0.01.
- mass ratio: seen, coarsely: metal as heavy as rubber (ratio 1) predicts clearly worse (-0.08), and the grid
  point chosen (4) is a neighbour of the true 3 (2 or 4: within a factor 1.5).
The re-simulating predictor leads the physics predictor on val by 0.035 (0.737 against 0.702; paired 95 %
interval +0.007 .. +0.070).
"""

import time
from dataclasses import replace

import numpy as np
import pytest

from lib.common.metrics import bootstrap_diff_ci, jaccard, per_video_confusion
from lib.data import scene, synth
from lib.objects import fit as objects_fit
from lib.objects import motion
from lib.resim.bodies import Sizes
from lib.resim.fit_camera import fit_camera
from lib.resim.fit_physics import FRAME_DT, fit_physics, score_collisions
from lib.resim.predict import predict_split, scene_at_last_input
from lib.resim.simulate import Physics, decelerations

SHIFTED = {
    "cam_elev": 44.0,  # 38 by default
    "fov": 28.0,  # 32
    "cam_dist": 11.0,  # 10
    "radius": 0.6,  # 0.5
    "friction": 0.07,  # 0.05
    "restitution": 0.7,  # 0.8; not a point of fit_physics.RESTITUTIONS
    "metal_mass": 3.0,  # 2 (rubber 1); not a point of fit_physics.MASS_RATIOS
    "speed": (2.0, 4.0),  # (1.5, 3.3) units/s
}
N_TRAIN, N_VAL, N_SPEED = 16, 32, 4  # train videos the fits see, val videos predicted, val videos' speeds checked
WORKERS = 1  # processes; 2 gained nothing on 2 cores busy with other jobs (3.7 min against 3.5)
GEN = scene.make_config(**SHIFTED)
LENGTH = 0.5 / GEN.radius
TIME = FRAME_DT / (GEN.frame_steps / GEN.hz)
TRUE = {  # the generator's constants in the predictor's units
    "fov": GEN.fov,
    "elev": GEN.cam_elev,
    "dist": GEN.cam_dist * LENGTH,
    "cube_half": 0.8 * GEN.radius * LENGTH,
    "cylinder_radius": GEN.radius * LENGTH,
    "cylinder_height": 2 * GEN.radius * LENGTH,
    "friction": GEN.friction * LENGTH / TIME**2,  # 0.07 -> 0.0911
    "restitution": GEN.restitution,
    "mass_ratio": GEN.metal_mass / GEN.rubber_mass,
}
SECONDS = {}  # what each stage took, printed by the last test


def _render(split, n, frames, states=False):
    """Masks (n, 22, H, W) of the split's first ``n`` videos (only ``frames`` drawn) and, with ``states``, their
    true states (the generator's record; read by the test only, to measure)."""
    first = synth.SPLITS[split]
    out = [scene.render_video(v, 0, rgb_frames=[], mask_frames=frames, contacts=False, states=states, **SHIFTED)
           for v in range(first, first + n)]  # fmt: skip
    return np.stack([m for _, m, _ in out]), [info.get("states") for _, _, info in out]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small dataset of the generator with the SHIFTED constants (masks only: what the fits and predictors read):
    train masks (N_TRAIN, 22, H, W), val masks (N_VAL, 22, H, W; frames 0-10 and 21) and the true states of the
    first N_SPEED val videos."""
    root = tmp_path_factory.mktemp("shifted")
    t0 = time.time()
    train, _ = _render("train", N_TRAIN, range(22))
    val, _ = _render("val", N_VAL, [*range(11), 21])
    _, states = _render("val", N_SPEED, [], states=True)
    np.save(root / "train.npy", train)
    np.save(root / "val.npy", val)
    SECONDS["generate"] = time.time() - t0
    return np.load(root / "train.npy"), np.load(root / "val.npy"), states


@pytest.fixture(scope="module")
def fits(dataset):
    """The camera fit and the physics fit on the train masks."""
    train, _, _ = dataset
    t0 = time.time()
    cam_fit = fit_camera(list(train))
    SECONDS["camera fit"] = time.time() - t0
    t0 = time.time()
    phys_fit = fit_physics(list(train), cam_fit.camera, cam_fit.body_sizes(), workers=WORKERS, progress=False)
    SECONDS["physics fit"] = time.time() - t0
    return cam_fit, phys_fit


def test_camera_and_sizes(fits):
    cam_fit, _ = fits
    cam, sizes = cam_fit.camera, cam_fit.sizes
    print(f"\ncamera {cam} sizes {sizes}; true {TRUE}")
    assert abs(cam.fov - TRUE["fov"]) < 0.6 and abs(cam.elev - TRUE["elev"]) < 0.6, cam
    assert cam.dist == pytest.approx(TRUE["dist"], rel=0.02), cam
    for key in ("cube_half", "cylinder_radius", "cylinder_height"):
        assert sizes[key] == pytest.approx(TRUE[key], rel=0.02), (key, sizes[key])


def test_friction(fits):
    """The sliding friction in the predictor's units, and the rolling spheres' slowing."""
    cam_fit, phys_fit = fits
    phys = phys_fit.physics
    true_phys = Physics(GEN.friction, GEN.rolling_friction, GEN.restitution, TRUE["mass_ratio"],
                        GEN.frame_steps / GEN.hz, GEN.frame_steps)  # fmt: skip
    speed = 2.0  # units/s, the predictor's: the speed decelerations() measures the fitted physics at
    true_roll = decelerations(true_phys, Sizes(GEN.radius), speed / (LENGTH / TIME))["sphere"] * LENGTH / TIME**2
    roll = decelerations(phys, cam_fit.body_sizes(), speed)["sphere"]
    print(
        f"\nfriction {phys.friction:.4f} (true {TRUE['friction']:.4f}), sphere slowing {roll:.3f} (true {true_roll:.3f})"
    )
    print("slowing measured", phys_fit.slowing)
    assert phys.frame_dt == FRAME_DT
    assert phys.friction == pytest.approx(TRUE["friction"], rel=0.05)
    assert roll == pytest.approx(true_roll, rel=0.15)


def test_restitution_and_mass_ratio(dataset, fits):
    """The collision constants, as far as the few train videos whose objects meet after frame 10 tell them."""
    train, _, _ = dataset
    cam_fit, phys_fit = fits
    phys, scores = phys_fit.physics, phys_fit.scores
    videos = [train[i] for i in phys_fit.collision_videos]
    truth = replace(phys, restitution=TRUE["restitution"], mass_ratio=TRUE["mass_ratio"])
    t0 = time.time()
    true_score = score_collisions(videos, cam_fit.camera, cam_fit.body_sizes(), truth, workers=WORKERS)
    SECONDS["true constants scored"] = time.time() - t0
    fitted = scores[f"mass_ratio={phys.mass_ratio}"]
    print(f"\n{len(videos)} collision videos; restitution {phys.restitution} (true {TRUE['restitution']}), mass ratio "
          f"{phys.mass_ratio} (true {TRUE['mass_ratio']}); IoU fitted {fitted:.4f}, true constants {true_score:.4f}")  # fmt: skip
    print("scores", scores)
    assert len(videos) >= 6
    assert true_score <= fitted + 0.01  # the fitted constants predict as well as the true ones, within noise
    assert phys.mass_ratio in (2.0, 3.0, 4.0)  # the true 3 within a factor 1.5
    assert scores["mass_ratio=1.0"] < fitted - 0.02  # metal is seen to be heavier than rubber


def test_speeds(dataset, fits):
    """The estimated speeds of the objects at frame 10 against the true ones (the generator's states, read here
    for measurement only), in the predictor's units: median error within 10 %."""
    _, val, records = dataset
    cam_fit, phys_fit = fits
    errors = []
    for m, r in zip(val, records):
        cids, states = scene_at_last_input(m[:11], cam_fit.camera, cam_fit.body_sizes(), phys_fit.physics)
        for cid, s in zip(cids, states):
            j = np.flatnonzero(r["class_ids"] == cid)
            true_speed = np.linalg.norm(r["states"][10, j[0], 7:9]) * LENGTH / TIME if len(j) else np.nan
            if true_speed > 0.5:
                errors.append(np.linalg.norm(s[7:9]) / true_speed - 1)
    print(f"\n{len(errors)} moving objects: speed errors {np.round(sorted(errors), 3)}")
    assert len(errors) >= 6
    assert abs(np.median(errors)) < 0.10 and np.median(np.abs(errors)) < 0.10


def test_resim_beats_the_physics_predictor(dataset, fits):
    """Val frame-22 IoU from true input masks: the re-simulating predictor with the fitted constants against the
    physics predictor of lib/objects (notebook 06's "physics (floor + collisions)") fitted on the same train."""
    train, val, _ = dataset
    cam_fit, phys_fit = fits
    t0 = time.time()
    settings = objects_fit.baseline_config(train, n_videos=N_TRAIN)
    SECONDS["objects fit"] = time.time() - t0
    t0 = time.time()
    objects = motion.predict_split(val, settings, progress=False)
    SECONDS["objects predict"] = time.time() - t0
    t0 = time.time()
    resim = predict_split(val, cam_fit.camera, cam_fit.body_sizes(), phys_fit.physics, workers=WORKERS, progress=False)
    SECONDS["resim predict"] = time.time() - t0
    truth = val[:, 21]
    iou_resim, iou_objects = jaccard(resim, truth)[0], jaccard(objects, truth)[0]
    diff = bootstrap_diff_ci(per_video_confusion(resim, truth), per_video_confusion(objects, truth))
    print(f"\nval ({N_VAL} videos, true inputs) IoU: re-simulation {iou_resim:.4f}, physics {iou_objects:.4f}; "
          f"difference {diff['diff']:+.4f} 95% CI [{diff['ci'][0]:+.4f}, {diff['ci'][1]:+.4f}]")  # fmt: skip
    print("seconds", {k: round(v, 1) for k, v in SECONDS.items()})
    assert iou_resim > iou_objects

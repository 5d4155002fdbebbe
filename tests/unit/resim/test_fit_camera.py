"""The camera and object sizes fitted from masks alone: which appearances count, the silhouettes against what
lib/resim/draw.py draws, the generator's constants recovered (its defaults and others, so nothing is read from it),
and the JSON record."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lib.common.classes import class_id
from lib.resim import fit_camera as fc
from lib.resim.bodies import Sizes, rest_state
from lib.resim.camera import Camera
from lib.resim.draw import draw

SPHERE = class_id("sphere", "rubber", "red")
CUBE = class_id("cube", "metal", "blue")
CYLINDER = class_id("cylinder", "rubber", "green")
N_VIDEOS = 40  # generated videos per setting; masks of frames 0, 3, .., 21
SHIFTED = {"cam_elev": 30.0, "fov": 40.0, "cam_dist": 12.0, "radius": 0.6}


def generated(n, **overrides):
    """(n, 22, 160, 240) masks of generated videos 0 .. n-1 (frames 0, 3, .., 21; the others are empty)."""
    from lib.data import scene

    frames = range(0, 22, 3)
    return np.stack(
        [
            scene.render_video(v, 0, rgb_frames=[], mask_frames=frames, supersample=1, contacts=False, **overrides)[1]
            for v in range(n)
        ]
    )


@pytest.fixture(scope="module")
def default_fit():
    return fc.fit_camera(generated(N_VIDEOS), max_obs=200)


@pytest.fixture(scope="module")
def shifted_fit():
    return fc.fit_camera(generated(N_VIDEOS, **SHIFTED), max_obs=200)


def test_observe_keeps_whole_unoccluded_objects_only():
    m = np.zeros((1, 60, 80), np.uint8)
    m[0, 10:20, 10:24] = SPHERE  # alone: kept
    m[0, 30:40, 10:20] = CUBE  # touching the cylinder: both left out
    m[0, 30:40, 20:26] = CYLINDER
    m[0, 0:8, 40:50] = 5  # cut by the border
    m[0, 20:30, 50:55] = 7  # two blobs of one id
    m[0, 20:30, 60:65] = 7
    obs = fc.observe([m], min_area=10)
    assert obs.cid.tolist() == [SPHERE] and obs.video.tolist() == [0] and obs.frame.tolist() == [0]
    assert obs.area[0] == 140 and obs.bbox[0].tolist() == [10, 10, 20, 24]
    np.testing.assert_allclose(obs.centroid[0], [16.5 + fc.PIXEL_POINT[0], 14.5 + fc.PIXEL_POINT[1]])
    np.testing.assert_allclose(obs.moments[0], [(14**2) / 12, 0.0, (10**2) / 12])  # a 14 x 10 box of unit squares
    assert obs.shapes.tolist() == ["sphere"]
    assert len(fc.observe([m], min_area=141)) == 0


@pytest.mark.parametrize("cid", [SPHERE, CUBE, CYLINDER])
def test_silhouettes_match_what_draw_draws(cid):
    """Objects drawn one at a time by lib/resim/draw.py (TinyRenderer) at random places and orientations are
    matched by the modelled silhouettes at the true camera and sizes to a few hundredths of a pixel on average."""
    cam, rng = Camera(32, 38, 10, 0.0), np.random.default_rng(cid)
    shape = {SPHERE: "sphere", CUBE: "cube", CYLINDER: "cylinder"}[cid]
    masks, yaws = [], rng.uniform(0, 2 * np.pi, 30)
    for yaw in yaws:
        s = rest_state(cam.floor_point(*rng.uniform([30, 25], [210, 135])), shape, Sizes(0.5))
        rot = (
            Rotation.random(random_state=rng.integers(1 << 30)) if shape == "sphere" else Rotation.from_euler("z", yaw)
        )
        s[3:7] = rot.as_quat()
        masks.append(draw([cid], s[None], cam, Sizes(0.5)))
    obs = fc.observe([np.stack(masks)])
    assert len(obs) == len(masks), "every object drawn alone inside the frame counts"
    dims = {"sphere": (0.5,), "cube": (0.4,), "cylinder": (0.5, 1.0)}[shape]
    res = fc._residuals(cam, shape, dims, obs, yaws)
    assert np.abs(res.mean(0)).max() < 0.05  # px: no bias in size or shape
    assert np.median(np.linalg.norm(res, axis=1)) < 0.25  # px: each one close (pixel steps)
    assert fc._residuals(cam, shape, tuple(1.05 * np.array(dims)), obs, yaws)[:, 0].mean() > 0.3  # 5 % larger: seen


def test_fit_recovers_the_generator_defaults(default_fit):
    fit = default_fit
    cam = fit.camera
    assert abs(cam.fov - 32) < 0.6 and abs(cam.elev - 38) < 0.6 and abs(cam.dist / 10 - 1) < 0.02, cam
    assert (cam.target_y, cam.azim) == (0.0, 0.0)
    ratios = fit.ratios()  # the generator's: cube half-extent 0.8 r, cylinder radius r and height 2 r
    for key, want in {"cube_half": 0.8, "cylinder_radius": 1.0, "cylinder_height": 2.0}.items():
        assert abs(ratios[key] / want - 1) < 0.02, (key, ratios[key])
    assert fit.sizes["sphere_radius"] == 0.5
    assert all(n == 200 for n in fit.n_obs.values()), fit.n_obs
    assert all(r < 0.5 for r in fit.residual.values()), fit.residual  # px
    assert 0 < fit.seconds < 60


def test_fit_recovers_other_generator_constants(shifted_fit):
    """Other camera constants and a sphere radius of 0.6: the fit sees them, in units where the sphere radius is
    0.5, so the distance comes out as 12 * 0.5 / 0.6 = 10."""
    cam = shifted_fit.camera
    assert abs(cam.fov - 40) < 0.6 and abs(cam.elev - 30) < 0.6, cam
    assert abs(cam.dist / (12 * 0.5 / 0.6) - 1) < 0.02, cam
    ratios = shifted_fit.ratios()
    for key, want in {"cube_half": 0.8, "cylinder_radius": 1.0, "cylinder_height": 2.0}.items():
        assert abs(ratios[key] / want - 1) < 0.02, (key, ratios[key])


def test_json_round_trip(default_fit, tmp_path):
    default_fit.to_json(tmp_path / "camera.json")
    back = fc.CameraFit.from_json(tmp_path / "camera.json")
    assert back == default_fit and isinstance(back.camera, Camera)
    np.testing.assert_allclose(back.camera.project([[0.3, 1.0, 0.5]]), default_fit.camera.project([[0.3, 1.0, 0.5]]))
    sizes = back.body_sizes()
    assert (sizes.radius, sizes.cube_half) == (0.5, back.sizes["cube_half"])
    assert sizes.dims("cylinder") == (back.sizes["cylinder_radius"], back.sizes["cylinder_height"] / 2)


def test_fit_needs_spheres():
    m = np.zeros((1, 160, 240), np.uint8)
    m[0, 50:70, 50:70] = CUBE
    with pytest.raises(ValueError, match="no whole, unoccluded sphere"):
        fc.fit_camera([m])

"""The camera of lib/resim: floor round trips, the generator's convention, and the predictor's honesty (lib/resim
imports nothing of the videos' generator)."""

import ast
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lib.resim.camera import Camera

ROOT = Path(__file__).resolve().parents[3]
GENERATOR = {"lib.data.scene", "lib.data.synth", "lib.data.shading", "lib.data.true_states"}
CAM = Camera(fov=32, elev=38, dist=10, target_y=0.5)


def test_project_floor_point_round_trip():
    for cam in (CAM, Camera(40, 55, 12, -0.3, azim=20), CAM.scaled(3)):
        for x, y in [(0, 0), (cam.width / 2, cam.height / 2), (cam.width - 0.5, cam.height), (17.3, 101.9)]:
            xy = cam.floor_point(x, y)
            np.testing.assert_allclose(cam.project([[*xy, 0.0]])[0], [x, y], atol=1e-6)
    # the target is seen at the image centre; points above the floor are seen higher up
    np.testing.assert_allclose(CAM.project([[0, 0.5, 0]])[0], [120, 80], atol=1e-4)
    assert CAM.project([[0, 0.5, 1]])[0, 1] < 80


def test_scaled_camera_scales_pixels():
    pts = np.array([[0.3, -1.2, 0.5], [2.0, 3.0, 0.0]])
    np.testing.assert_allclose(CAM.scaled(2).project(pts), 2 * CAM.project(pts), atol=1e-5)
    assert (CAM.scaled(2).width, CAM.scaled(2).height) == (480, 320)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"cam_azim": 25.0, "cam_elev": 50.0, "cam_dist": 8.0, "cam_target_y": -0.7, "fov": 40.0}],
)
def test_generator_constants_give_the_generator_camera(overrides):
    from lib.data import scene, shading

    cfg = replace(scene.DEFAULT, **overrides)
    cam = Camera(cfg.fov, cfg.cam_elev, cfg.cam_dist, cfg.cam_target_y, cfg.cam_azim, cfg.width, cfg.height)
    pts = np.random.default_rng(0).uniform([-4, -3, 0], [4, 5, 1.5], (50, 3))
    for k in (1, 2):
        ref = shading.Camera(cfg, k)
        np.testing.assert_allclose(cam.scaled(k).project(pts), ref.project(pts), rtol=0, atol=1e-9)
        np.testing.assert_allclose(cam.scaled(k).floor_point(33.0, 77.0), ref.floor_point(33.0, 77.0), atol=1e-9)
        assert cam.scaled(k).view_matrix() == ref.view and cam.scaled(k).projection_matrix() == ref.proj


def imported_modules(path):
    """Every module a Python file imports (``from a.b import c`` counts as a.b and a.b.c), anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_resim_does_not_import_the_generator():
    files = sorted((ROOT / "lib" / "resim").glob("*.py"))
    assert {p.name for p in files} >= {"__init__.py", "camera.py", "bodies.py", "draw.py", "simulate.py"}
    for path in files:
        bad = {m for m in imported_modules(path) if any(m == g or m.startswith(g + ".") for g in GENERATOR)}
        assert not bad, f"{path.name} imports the generator: {sorted(bad)}"
    assert imported_modules(ROOT / "lib" / "data" / "scene.py") & GENERATOR  # the parser sees such imports

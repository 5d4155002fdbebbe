"""The physical constants fitted from masks: the slowing of runs of a track (analytic tracks), the sliding friction
from hand-made slides simulated with a known friction, drawn and measured, the rolling friction matched by
simulation, the JSON round trip of a fit, the search of the collision grid (scores made up), and the whole fit on
the generator's videos (friction; the grid on one collision video, measured once for all candidates)."""

import json
from dataclasses import replace

import numpy as np
import pytest

from lib.common.classes import class_id
from lib.data import scene
from lib.resim import fit_physics as fp
from lib.resim.bodies import Sizes, rest_state
from lib.resim.camera import Camera
from lib.resim.draw import draw
from lib.resim.estimate import Track3D, measure
from lib.resim.fit_physics import (
    FRAME_DT,
    MASS_RATIOS,
    MIN_SPEED,
    RESTITUTIONS,
    START,
    WINDOW,
    PhysicsFit,
    fit_physics,
    fit_rolling,
    measure_slowing,
    run_slowings,
    score_collisions,
)
from lib.resim.simulate import GRAVITY, Physics, decelerations, simulate

CAM = Camera(fov=32, elev=38, dist=10, target_y=0.5)
SIZES = Sizes(0.5)
FRICTION = 0.078  # the generator's 0.05 at 1/8 s a frame, in FRAME_DT units
PHYS = Physics(FRICTION, 0.04, 0.8, 2.0, FRAME_DT, 30)
CUBE = class_id("cube", "rubber", "red")
CYLINDER, CYLINDER2 = class_id("cylinder", "metal", "blue"), class_id("cylinder", "rubber", "cyan")
SPHERE = class_id("sphere", "rubber", "yellow")


def track(cid, frames, positions):
    return Track3D(cid, list(frames), np.asarray(positions, float), np.zeros(len(frames)), None)


def slide(t, v0, a, u=(0.6, 0.8), p0=(-1.0, 0.0)):
    """Positions at frames ``t`` of a slide at ``v0`` units a frame slowed by ``a`` units a frame squared."""
    t = np.asarray(t, float)[:, None]
    return np.asarray(p0) + (v0 * t - 0.5 * a * t**2) * np.asarray(u)


# -------------------------------------------------------------------------------------------- run_slowings
def test_run_slowings_of_an_analytic_slide():
    """Every window of a steady slowing gives it back, in units/s^2 (positions in units, frames FRAME_DT apart)."""
    a = 0.765 * FRAME_DT**2
    got = run_slowings(track(CUBE, range(22), slide(range(22), 0.25, a)))
    assert len(got) == 22 - WINDOW + 1
    np.testing.assert_allclose(got, 0.765, rtol=1e-6)
    # in another time unit the same track is another slowing
    got = run_slowings(track(CUBE, range(22), slide(range(22), 0.25, a)), 0.125)
    np.testing.assert_allclose(got, 0.765 * (FRAME_DT / 0.125) ** 2, rtol=1e-6)


def test_run_slowings_skips_gaps_bends_and_slow_runs():
    a = 0.765 * FRAME_DT**2
    # a missing frame: only windows of WINDOW consecutive frames count
    frames = [f for f in range(22) if f != 10]
    assert len(run_slowings(track(CUBE, frames, slide(frames, 0.25, a)))) == 22 - WINDOW + 1 - WINDOW
    # a collision at frame 10 turns the motion: windows across it are no parabola
    before = slide(range(11), 0.25, a)
    after = slide(range(1, 12), 0.2, a, u=(-0.8, 0.6), p0=before[-1])
    got = run_slowings(track(CUBE, range(22), np.r_[before, after]))
    assert len(got) == (11 - WINDOW + 1) + (12 - WINDOW + 1)  # windows within frames 0-10 or 10-21 only
    np.testing.assert_allclose(got, 0.765, rtol=1e-6)
    # too slow: may stop within the window
    assert run_slowings(track(CUBE, range(22), slide(range(22), 0.5 * MIN_SPEED, 0.0))) == []


def test_measure_slowing_needs_sliding_objects():
    a = 0.6 * FRAME_DT**2
    sphere = track(SPHERE, range(22), slide(range(22), 0.25, a))
    with pytest.raises(ValueError, match="no sliding object"):
        measure_slowing([sphere])
    got = measure_slowing([sphere, track(CUBE, range(22), slide(range(22), 0.25, 0.765 * FRAME_DT**2))])
    assert got["runs"] == {"slide": 16, "roll": 16}
    assert got["slide"] == pytest.approx(0.765) and got["roll"] == pytest.approx(0.6)


# ------------------------------------------------------------------------- slides simulated, drawn, measured
@pytest.fixture(scope="module")
def slides():
    """``measure`` of a drawn 22-frame video of a cube, two cylinders and a rolling sphere moving apart (no
    contacts) with friction FRICTION, frames FRAME_DT apart; and the simulated states (22, 4, 13)."""
    cids = [CUBE, CYLINDER, CYLINDER2, SPHERE]
    s0 = np.stack(
        [
            rest_state((-3.5, 3.5), "cube", SIZES, (2.6, 0.2)),
            rest_state((-3.0, 0.5), "cylinder", SIZES, (2.4, -0.3)),
            rest_state((2.5, -1.5), "cylinder", SIZES, (-0.5, 2.4)),
            rest_state((2.0, 5.5), "sphere", SIZES, (-2.5, -0.5)),
        ]
    )
    s0[3, 10:13] = [0.5 / SIZES.radius, -2.5 / SIZES.radius, 0.0]  # rolling without slipping
    sim = simulate(cids, s0, 21, PHYS, SIZES)
    gaps = [np.linalg.norm(sim[:, a, :2] - sim[:, b, :2], axis=1).min() for a in range(4) for b in range(a)]
    assert min(gaps) > 1.2  # they never touch
    masks = np.stack([draw(cids, sim[f], CAM, SIZES, supersample=2) for f in range(22)])
    return measure(masks, CAM, SIZES), sim


def test_measure_slowing_recovers_the_friction(slides):
    """The median slowing of the cube's and cylinders' measured runs is friction * g within 5 %."""
    tracks, _ = slides
    assert sorted(t.cid for t in tracks) == sorted([CUBE, CYLINDER, CYLINDER2, SPHERE])
    got = measure_slowing(tracks)
    assert got["runs"]["slide"] >= 10 and got["runs"]["roll"] >= 1
    assert got["slide"] == pytest.approx(FRICTION * GRAVITY, rel=0.05)
    # the measured slowing is the simulation's: every run of the true positions slows by friction * g
    cyl = [i for i, t in enumerate(tracks) if t.cid == CYLINDER][0]
    true = run_slowings(track(CYLINDER, range(22), slides[1][:, 1, :2]))
    np.testing.assert_allclose(true, FRICTION * GRAVITY, rtol=0.01)
    assert len(tracks[cyl].frames) >= 20


# ------------------------------------------------------------------------------------------------ fit_rolling
def test_fit_rolling_matches_the_spheres_slowing():
    """The rolling friction found slows a simulated rolling sphere as much as asked (0.413 units/s^2: rolling
    friction 0.02), and it is the one that made that slowing."""
    target = decelerations(replace(PHYS, rolling_friction=0.02), SIZES)["sphere"]
    got = fit_rolling(PHYS, SIZES, target)
    assert got == pytest.approx(0.02, abs=0.002)
    assert decelerations(replace(PHYS, rolling_friction=got), SIZES)["sphere"] == pytest.approx(target, rel=0.01)


def test_fit_rolling_limits():
    """No spheres measured: the physics' own value; a slowing no rolling friction reaches (spheres slide beyond
    about 0.0625, slowing by friction * g at most): the top of the range."""
    assert fit_rolling(PHYS, SIZES, None) == PHYS.rolling_friction
    assert fit_rolling(PHYS, SIZES, 2 * FRICTION * GRAVITY, hi=0.2) == 0.2


# ------------------------------------------------------------------------------------------------ PhysicsFit
def test_physics_fit_json_round_trip():
    fit = PhysicsFit(
        replace(START, friction=0.0781),
        {"slide": 0.766, "roll": 0.7, "runs": {"slide": 12, "roll": 3}},
        {"restitution=0.8": 0.91, "mass_ratio=2.0": 0.92},
        videos=8,
        seconds=3.5,
        collision_videos=[1, 4],
    )
    back = PhysicsFit.from_json(json.loads(json.dumps(fit.to_json())))
    assert back == fit and isinstance(back.physics, Physics)


# ------------------------------------------------------------------------------ fit_physics, the collision grid
@pytest.mark.parametrize("meet", [True, False])
def test_fit_physics_grid_search(monkeypatch, meet):
    """Restitution, then mass ratio, each the best of its grid given the other, in two passes; a candidate equal to
    one already scored (the mass ratio START has, after the restitution fit) is not predicted again; the grid is
    scored on the first ``collision_videos`` videos whose objects meet. No such videos: the START values, no
    scores."""
    calls = _fit_grid(monkeypatch, meet, {"restitution": 0.65, "mass_ratio": 4.0})
    if calls is None:
        return
    # pass 1: 4 restitutions at START's mass ratio 2, then 3 new mass ratios at 0.65; pass 2: restitution again at
    # mass ratio 4 (3 new; (0.65, 4) is scored), then the mass ratios at 0.65 (all scored)
    assert len(calls) == len(RESTITUTIONS) + len(MASS_RATIOS) - 1 + len(RESTITUTIONS) - 1


def test_fit_physics_second_pass_is_free_where_the_mass_ratio_stays(monkeypatch):
    """Where the first pass keeps START's mass ratio, the second pass scores nothing new."""
    calls = _fit_grid(monkeypatch, True, {"restitution": 0.65, "mass_ratio": START.mass_ratio})
    assert len(calls) == len(RESTITUTIONS) + len(MASS_RATIOS) - 1  # (0.65, START's 2.0) scored once


def _fit_grid(monkeypatch, meet, best):
    """The calls of ``fit_physics``' collision grid (restitution, mass ratio, videos) with a score highest at
    ``best``, one constant at a time, and its checks of the fit; None where no videos meet."""
    calls = []

    def score(videos, camera, sizes, physics, mapper=map):  # highest at ``best``, one constant at a time
        calls.append((physics.restitution, physics.mass_ratio, [m for m, _ in videos]))
        return 1 - abs(physics.restitution - best["restitution"]) - abs(physics.mass_ratio - best["mass_ratio"]) / 10

    monkeypatch.setattr(fp, "_measure_video", lambda job: ([], meet and job[0] % 2 == 1))  # videos 1, 3, 5 meet
    monkeypatch.setattr(fp, "_measure_inputs", lambda job: f"inputs of {job[0]}")
    monkeypatch.setattr(fp, "measure_slowing", lambda tracks: {"slide": 0.765, "roll": None, "runs": {}})
    monkeypatch.setattr(fp, "_score", score)
    fit = fit_physics(list(range(6)), CAM, SIZES, collision_videos=2, progress=False)
    assert fit.physics.friction == pytest.approx(0.765 / GRAVITY) and fit.physics.rolling_friction == 0.04
    if not meet:
        assert (fit.scores, fit.collision_videos, calls) == ({}, [], [])
        assert (fit.physics.restitution, fit.physics.mass_ratio) == (START.restitution, START.mass_ratio)
        return None
    assert fit.collision_videos == [1, 3] and all(c[2] == [1, 3] for c in calls)
    assert (fit.physics.restitution, fit.physics.mass_ratio) == (best["restitution"], best["mass_ratio"])
    assert list(fit.scores) == [f"restitution={e}" for e in RESTITUTIONS] + [f"mass_ratio={r}" for r in MASS_RATIOS]
    assert fit.scores[f"mass_ratio={best['mass_ratio']}"] == fit.scores[f"restitution={best['restitution']}"]
    assert len({c[:2] for c in calls}) == len(calls)  # no candidate scored twice
    return calls


# -------------------------------------------------------------------------------- fit_physics, generator data
VIDEOS = 6  # about 1 s each (render and measure); friction 0.0733 from videos 0-5, 0.0750 from 0-7


@pytest.fixture(scope="module")
def generator_masks():
    return [scene.render_video(v, 0, rgb_frames=[], mask_frames=range(22), supersample=2)[1] for v in range(VIDEOS)]


@pytest.fixture(scope="module")
def generator_fit(generator_masks):
    return fit_physics(generator_masks, CAM, SIZES, collision_videos=1, progress=False)


def test_fit_physics_on_generator_videos(generator_fit):
    """6 videos of the generator (friction 0.05 at 1/8 s a frame): friction 0.078 in FRAME_DT units within 10 %;
    restitution and mass ratio from the grid, scored on one video whose objects meet."""
    fit = generator_fit
    assert fit.physics.friction == pytest.approx(FRICTION, rel=0.10)
    assert fit.physics.frame_dt == FRAME_DT and fit.videos == VIDEOS and len(fit.collision_videos) == 1
    assert fit.physics.restitution in RESTITUTIONS and fit.physics.mass_ratio in MASS_RATIOS
    assert len(fit.scores) == len(RESTITUTIONS) + len(MASS_RATIOS)
    assert fit.scores[f"mass_ratio={fit.physics.mass_ratio}"] == max(fit.scores.values())
    assert fit.slowing["runs"]["slide"] >= 20
    assert 0.0 <= fit.physics.rolling_friction <= 0.2


def test_collision_scores_measure_each_video_once(generator_masks, generator_fit):
    """The grid's scores, each video's frames 0-10 measured once for all candidates, are the scores of ``predict``
    measuring them for each candidate anew (``score_collisions``)."""
    fit = generator_fit
    videos = [generator_masks[i] for i in fit.collision_videos]
    assert score_collisions(videos, CAM, SIZES, fit.physics) == fit.scores[f"mass_ratio={fit.physics.mass_ratio}"]

"""The frame-10 states refined by simulation (``refine``) on a hand-made collision between frames 8 and 9, where
the tracks alone (``estimate``) get the new velocities wrong, and the grouping of objects that come close."""

import numpy as np
import pytest

from lib.common.classes import class_id
from lib.resim import fit_states
from lib.resim.bodies import Sizes, rest_state
from lib.resim.camera import Camera
from lib.resim.draw import draw
from lib.resim.estimate import Estimate, estimate
from lib.resim.fit_states import START, groups, refine
from lib.resim.simulate import Physics, decelerations, simulate

CAM = Camera(fov=32, elev=38, dist=10, target_y=0.5)
SIZES = Sizes(0.5)
PHYS = Physics(friction=0.08, rolling_friction=0.04, restitution=0.8, mass_ratio=2.0, frame_dt=0.1, substeps=30)
HITTER = class_id("cylinder", "rubber", "red")  # slides into
TARGET = class_id("cylinder", "metal", "blue")  # at rest until hit, slightly off the hitter's line


@pytest.fixture(scope="module")
def collision():
    """(class ids, simulated states (11, 2, 13), Estimate, refined states (2, 13)): the hitter, launched at 3
    units/s, touches the target between frames 8 and 9 (centres 1.13 and 1.01 apart: touching is 1.0)."""
    cids = [HITTER, TARGET]
    s0 = np.stack([rest_state((-2.0, 0.5), "cylinder", SIZES, (3.0, 0.0)), rest_state((1.27, 0.6), "cylinder", SIZES)])
    sim = simulate(cids, s0, 10, PHYS, SIZES)
    gap = np.linalg.norm(sim[:, 0, :2] - sim[:, 1, :2], axis=1)
    assert gap[8] > 1.1 and gap[9] < 1.05  # the contact is between frames 8 and 9
    masks = np.stack([draw(cids, sim[f], CAM, SIZES, supersample=2) for f in range(11)])
    decel = decelerations(PHYS, SIZES)
    est = estimate(masks, CAM, SIZES, PHYS.frame_dt, decel)
    assert est.class_ids.tolist() == sorted(cids)
    return cids, sim, est, refine(est, PHYS, SIZES, decel)


def errors(collision, states):
    """Per object of the Estimate: (velocity error (units/s), position error (units)) at frame 10."""
    cids, sim, est, _ = collision
    out = []
    for i, cid in enumerate(est.class_ids):
        t = sim[10, cids.index(cid)]
        out.append((np.linalg.norm(states[i, 7:9] - t[7:9]), np.linalg.norm(states[i, :2] - t[:2])))
    return np.array(out)


def test_estimate_alone_misses_the_new_velocities(collision):
    """Only frames 9 and 10 show the motion after the contact: the tracks' velocities are off by > 0.3 units/s
    (true speeds 0.6-0.7 units/s)."""
    v_err, _ = errors(collision, collision[2].states).T
    assert (v_err > 0.3).all(), v_err


def test_refine_recovers_the_velocities_after_the_collision(collision):
    """Simulating from frame ``START`` through the contact: velocities within 0.1 units/s, 4 x better than the tracks',
    positions within 0.05 units, heights and spins those of upright objects."""
    cids, sim, est, ref = collision
    v_est, _ = errors(collision, est.states).T
    v_ref, p_ref = errors(collision, ref).T
    assert (v_ref < 0.1).all() and (v_ref < v_est / 4).all(), (v_ref, v_est)
    assert (p_ref < 0.05).all(), p_ref
    assert ref.shape == (2, 13) and np.isfinite(ref).all()
    np.testing.assert_allclose(ref[:, 2], SIZES.half_height("cylinder"), atol=0.01)


def test_refine_moves_the_positions_toward_the_last_measurement(collision):
    """The frame-10 floor positions are moved ``measured_weight`` of the way from the fitted motion's to the
    positions measured at frame 10 (0.5 by default); velocities, heights and spins stay the fitted ones."""
    _, _, est, ref = collision
    decel = decelerations(PHYS, SIZES)
    fitted = refine(est, PHYS, SIZES, decel, measured_weight=0.0)
    measured = np.array([p[-1] for p in est.positions])
    assert all(f[-1] == 10 for f in est.frames)
    assert np.abs(fitted[:, :2] - measured).max() > 1e-3  # the two differ, so the test can tell them apart
    np.testing.assert_allclose(refine(est, PHYS, SIZES, decel, measured_weight=1.0)[:, :2], measured)
    np.testing.assert_allclose(ref[:, :2], (fitted[:, :2] + measured) / 2)
    np.testing.assert_array_equal(ref[:, 2:], fitted[:, 2:])


def test_refine_keeps_objects_not_measured_by_the_start_frame(collision):
    """An object first measured after frame ``START`` keeps its own estimate and takes no part in the others'
    refinement: the hitter, then near no other object that is refined, keeps its own estimate too."""
    _, _, est, ref = collision
    late = Estimate(
        est.class_ids,
        est.states.copy(),
        [est.frames[0], est.frames[1][START + 2 :]],
        [est.positions[0], est.positions[1][START + 2 :]],
        [est.yaws[0], est.yaws[1][START + 2 :]],
    )
    decel = decelerations(PHYS, SIZES)
    out = refine(late, PHYS, SIZES, decel, measured_weight=0.0)  # the simulation's part alone
    np.testing.assert_array_equal(out, est.states)
    assert np.abs(ref[0, 7:9] - est.states[0, 7:9]).max() > 0.1  # refined with the target, it was not


def fake_estimate(tracks):
    """An Estimate of cylinders whose measured positions are ``tracks``: {frame: (x, y)} per object."""
    n = len(tracks)
    return Estimate(
        np.full(n, HITTER),
        np.zeros((n, 13)),
        [sorted(t) for t in tracks],
        [np.array([t[f] for f in sorted(t)], float) for t in tracks],
        [np.zeros(len(t)) for t in tracks],
    )


def parts(gs):
    return sorted(sorted(g) for g in gs)


def test_groups():
    """Objects that come within ``dist`` in a frame from ``start`` to 10 where both were measured are one group
    (also through a third); far-apart ones, or ones close only before ``start``, are alone."""
    frames = range(11)
    near_a = {f: (0.0, 0.0) for f in frames}
    near_b = {f: (1.5, 0.0) for f in frames}  # 1.5 from a
    chain = {f: (3.0, 0.5) for f in frames}  # 1.58 from b, 3.04 from a
    far = {f: (6.0, 6.0) for f in frames}
    early = {f: (-6.0, 4.0) if f >= 5 else (0.0, 2.5) for f in frames}  # 2.5 from a before frame 5, far after
    late_measured = {f: (0.5, 0.0) for f in (2, 3)}  # close to a, but not measured from frame 6 on
    est = fake_estimate([near_a, far, near_b, early, chain, late_measured])
    assert parts(groups(est, [0, 1, 2, 3, 4, 5], 6, 2.0)) == [[0, 2, 4], [1], [3], [5]]
    assert parts(groups(est, [0, 1, 2, 3, 4, 5], 6, 1.55)) == [[0, 2], [1], [3], [4], [5]]
    assert parts(groups(est, [0, 3], 6, 3.0)) == [[0], [3]]
    assert parts(groups(est, [0, 3], 0, 3.0)) == [[0, 3]]  # from frame 0 the early pass counts
    assert parts(groups(est, [4, 1], 6, 2.0)) == [[1], [4]]
    assert groups(est, [], 6, 2.0) == []


def test_refine_leaves_an_object_near_no_other_on_its_track_line():
    """A cylinder sliding alone, its measured positions off its path by up to 0.02 units in the last frames: it
    keeps its track line's state (``est.states``, from all 11 frames), where fitting frames 7-10 through the
    simulator would follow the last frames' errors."""
    dt = PHYS.frame_dt
    decel = decelerations(PHYS, SIZES)
    a = decel["cylinder"]
    t = np.arange(11) * dt
    path = np.c_[-2.0 + 2.5 * t - 0.5 * a * t**2, np.full(11, 0.5)]
    path[7:, 1] += [0.0, 0.02, -0.02, 0.02]
    est = fake_estimate([{f: tuple(path[f]) for f in range(11)}])
    est.states[0] = rest_state(path[-1] + [0.0, -0.02], "cylinder", SIZES, (2.5 - a * t[-1], 0.0))
    out = refine(est, PHYS, SIZES, decel, measured_weight=0.0)
    np.testing.assert_array_equal(out, est.states)


def test_refine_keeps_the_tracks_where_they_explain_the_last_frames_better(monkeypatch):
    """Two cylinders measured at rest 0.9 apart (a measuring error: they would overlap by 0.1) cannot be simulated
    where they were measured, the simulator pushes them apart; their own estimates (at rest where measured) explain
    frames ``START``-10 exactly, so ``refine`` keeps them. Without that choice the refined states move."""
    frames = range(11)
    est = fake_estimate([{f: (0.0, 0.0) for f in frames}, {f: (0.9, 0.0) for f in frames}])
    for i, p in enumerate(est.positions):
        est.states[i] = rest_state(p[-1], "cylinder", SIZES)
    decel = decelerations(PHYS, SIZES)
    np.testing.assert_array_equal(refine(est, PHYS, SIZES, decel), est.states)
    monkeypatch.setattr(fit_states, "line_cost", lambda *a: np.inf)  # as if the tracks explained nothing
    moved = refine(est, PHYS, SIZES, decel)
    assert np.abs(moved[:, :2] - est.states[:, :2]).max() > 0.02


def first_simulated_states(monkeypatch, est):
    """(n, 13) states that ``refine`` starts its first simulation of ``est`` from (one least-squares step)."""
    started = []
    real = fit_states.simulate

    def spy(cids, states, *args, **kw):
        started.append(states.copy())
        return real(cids, states, *args, **kw)

    monkeypatch.setattr(fit_states, "simulate", spy)
    refine(est, PHYS, SIZES, decelerations(PHYS, SIZES), max_nfev=1)
    return started[0]


def test_a_group_starts_at_the_yaws_measured_at_the_start_frame(monkeypatch):
    """The refining simulation starts each object at the yaw measured in its last frame up to ``START`` (a cube
    turns after a collision: its frame-10 yaw is not its yaw at the start), the first frame's before any."""
    est = fake_estimate([{f: (0.0, 0.0) for f in range(11)}, {f: (1.2, 0.0) for f in (START - 2, START + 1, 10)}])
    est.yaws = [np.radians(np.arange(11.0)), np.radians([20.0, 30.0, 40.0])]
    assert fit_states.yaw_at(est, 0, START) == np.radians(START)
    assert fit_states.yaw_at(est, 1, START) == np.radians(20.0)  # measured at START - 2, not since
    assert fit_states.yaw_at(est, 1, 0) == np.radians(20.0)  # none up to frame 0: its first
    started = first_simulated_states(monkeypatch, est)
    yaws = 2 * np.arctan2(started[:, 5], started[:, 6])
    np.testing.assert_allclose(yaws, np.radians([START, 20.0]))


def test_a_group_starts_its_cubes_spinning_as_their_yaws_turn(monkeypatch):
    """A cube whose yaws turn 4 degrees a frame up to ``START`` + 1 starts the refining simulation spinning at that
    rate about the vertical (``estimate.track_spin``), even where its yaws pass the 90-degree symmetry; a cube that
    does not turn and a cylinder start without spin."""
    frames = range(11)
    est = fake_estimate(
        [{f: (0.1 * f, 0.0) for f in frames}, {f: (0.1 * f, 1.2) for f in frames}, {f: (0.0, -1.2) for f in frames}]
    )
    est.class_ids = np.array([class_id("cube", "rubber", "red"), class_id("cube", "metal", "blue"), HITTER])
    est.yaws = [np.radians(80.0 + 4 * np.arange(11.0)) % (np.pi / 2), np.radians(np.full(11, 30.0)), np.zeros(11)]
    spins = first_simulated_states(monkeypatch, est)[:, 10:13]
    np.testing.assert_allclose(spins[:, :2], 0.0)
    np.testing.assert_allclose(spins[:, 2], [np.radians(4.0) / PHYS.frame_dt, 0.0, 0.0], atol=1e-9)

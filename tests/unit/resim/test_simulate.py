"""The simulation on hand-made scenes: sliding friction, rest, collisions and the mass ratio, the time step, and
the generator's own physics reproduced from the generator's constants."""

import numpy as np
import pytest

from lib.common.classes import attributes, class_id
from lib.resim.bodies import Sizes, get_state, rest_state
from lib.resim.simulate import GRAVITY, Physics, simulate

SIZES = Sizes(0.5)
PHYS = Physics(friction=0.1, rolling_friction=0.04, restitution=0.8, mass_ratio=2.0, frame_dt=0.05, substeps=12)
METAL_CUBE, RUBBER_CUBE = class_id("cube", "metal", "red"), class_id("cube", "rubber", "red")
METAL_SPHERE, RUBBER_SPHERE = class_id("sphere", "metal", "blue"), class_id("sphere", "rubber", "blue")
CYLINDER = class_id("cylinder", "rubber", "green")


def rolling(xy, vx):
    """A sphere on the floor at ``xy`` rolling along +x at ``vx`` (no slip)."""
    s = rest_state(xy, "sphere", SIZES, (vx, 0.0))
    s[11] = vx / SIZES.radius
    return s


@pytest.mark.parametrize("cid", [METAL_CUBE, RUBBER_CUBE])
def test_sliding_cube_stops_after_v2_over_2_mu_g(cid):
    v = 2.0
    out = simulate([cid], rest_state((0, 0), "cube", SIZES, (v, 0))[None], 50, PHYS, SIZES)
    assert out.shape == (51, 1, 13)
    dist, t_stop = v**2 / (2 * PHYS.friction * GRAVITY), v / (PHYS.friction * GRAVITY)
    assert abs(out[-1, 0, 0] / dist - 1) < 0.03 and abs(out[-1, 0, 1]) < 0.01
    stopped = np.nonzero(np.abs(out[:, 0, 7]) < 0.02)[0][0]
    assert abs(stopped * PHYS.frame_dt - t_stop) <= 1.5 * PHYS.frame_dt
    # before stopping the speed falls linearly, by friction * g per second
    np.testing.assert_allclose(out[10, 0, 7], v - PHYS.friction * GRAVITY * 10 * PHYS.frame_dt, atol=0.03)


def test_resting_objects_stay_at_rest():
    cids = [METAL_CUBE, RUBBER_SPHERE, CYLINDER]
    s0 = np.stack([rest_state(xy, shape, SIZES) for xy, shape in [((-2, 0), "cube"), ((0, 0), "sphere"),
                                                                   ((2, 1), "cylinder")]])  # fmt: skip
    out = simulate(cids, s0, 20, PHYS, SIZES)
    np.testing.assert_allclose(out[-1, :, :3], s0[:, :3], atol=1e-3)
    assert np.abs(out[:, :, 7:]).max() < 1e-2


def test_absent_objects_stay_absent():
    s0 = np.stack([rest_state((0, 0), "cube", SIZES, (1, 0)), np.full(13, np.nan)])
    out = simulate([METAL_CUBE, RUBBER_SPHERE], s0, 3, PHYS, SIZES)
    assert np.isnan(out[:, 1]).all() and np.isfinite(out[:, 0]).all()


def test_head_on_collision_follows_the_mass_ratio():
    frictionless = Physics(0.0, 0.0, 0.8, 2.0, 0.05, 12)
    # light (rubber) into heavy (metal) at rest: the light one bounces back, the heavy one moves on
    s0 = np.stack([rolling((-1.5, 0), 2.0), rest_state((0, 0), "sphere", SIZES)])
    out = simulate([RUBBER_SPHERE, METAL_SPHERE], s0, 12, frictionless, SIZES)
    v = out[-1, :, 7]
    assert v[0] < -0.1 and v[1] > 0.5
    np.testing.assert_allclose(v @ [1, 2], 2.0, rtol=1e-3)  # momentum, rubber mass 1, metal mass_ratio
    assert np.abs(out[-1, :, 8]).max() < 1e-3
    # heavy into light: both move on, the light one faster
    out = simulate([METAL_SPHERE, RUBBER_SPHERE], s0, 12, frictionless, SIZES)
    v = out[-1, :, 7]
    assert 0 < v[0] < v[1]
    np.testing.assert_allclose(v @ [2, 1], 4.0, rtol=1e-3)
    # equal masses with mass_ratio 1
    out = simulate([METAL_SPHERE, RUBBER_SPHERE], s0, 12, Physics(0.0, 0.0, 0.8, 1.0, 0.05, 12), SIZES)
    np.testing.assert_allclose(out[-1, :, 7].sum(), 2.0, rtol=1e-3)


def test_frame_dt_and_substeps():
    # a frictionless slide moves v * frame_dt per frame
    for dt in (0.05, 0.125):
        out = simulate([RUBBER_CUBE], rest_state((0, 0), "cube", SIZES, (1.5, 0))[None], 4,
                       Physics(0.0, 0.0, 0.8, 2.0, dt, 10), SIZES)  # fmt: skip
        np.testing.assert_allclose(np.diff(out[:, 0, 0]), 1.5 * dt, rtol=1e-4)
    # a free fall over one frame of n steps of dt (semi-implicit Euler) drops g dt^2 n (n + 1) / 2
    for n in (1, 3, 30):
        s0 = rest_state((0, 0), "sphere", SIZES)
        s0[2] = 5.0
        out = simulate([RUBBER_SPHERE], s0[None], 1, Physics(0.1, 0.0, 0.8, 2.0, 0.25, n), SIZES)
        dt = 0.25 / n
        np.testing.assert_allclose(5.0 - out[1, 0, 2], GRAVITY * dt**2 * n * (n + 1) / 2, rtol=1e-5)


def test_generator_scene_is_reproduced_from_its_state_at_a_frame():
    """A small scene set up and stepped as the generator does (its constants, its _add_object, its floor);
    simulate() from its state at frame 0 gives its frames exactly, and from frames 3 and 10 (contacts are not
    warm-started then) within 0.02 units (radius 0.5)."""
    import pybullet as pb

    from lib.data import scene

    cfg = scene.DEFAULT
    physics = Physics(cfg.friction, cfg.rolling_friction, cfg.restitution, cfg.metal_mass / cfg.rubber_mass,
                      cfg.frame_steps / cfg.hz, cfg.frame_steps)  # fmt: skip
    cids = [METAL_CUBE, RUBBER_SPHERE, CYLINDER, RUBBER_CUBE, METAL_SPHERE]
    plan = [((-2, 0), (2.5, 0.2)), ((0.5, 0.1), (0, 0)), ((2, 1.5), (-1.5, -1)), ((-1, 2), (0.5, -2)),
            ((1, -1.5), (-1, 2.5))]  # fmt: skip
    cli = pb.connect(pb.DIRECT)
    try:
        pb.setPhysicsEngineParameter(fixedTimeStep=1 / cfg.hz, deterministicOverlappingPairs=1, physicsClientId=cli)
        pb.setGravity(0, 0, -9.81, physicsClientId=cli)
        floor = pb.createMultiBody(0, pb.createCollisionShape(pb.GEOM_PLANE, physicsClientId=cli), physicsClientId=cli)
        pb.changeDynamics(floor, -1, lateralFriction=1.0, restitution=0.0, rollingFriction=0.0, physicsClientId=cli)
        uids = [scene._add_object(cli, cfg, c, np.array(xy), np.array(v)) for c, (xy, v) in zip(cids, plan)]
        truth, touched = [], False
        for _ in range(16):
            truth.append([get_state(cli, u) for u in uids])
            for _ in range(cfg.frame_steps):
                pb.stepSimulation(physicsClientId=cli)
                touched |= any(c[1] != floor and c[2] != floor for c in pb.getContactPoints(physicsClientId=cli))
    finally:
        pb.disconnect(cli)
    truth = np.array(truth)
    assert touched  # the scene has collisions
    np.testing.assert_allclose(simulate(cids, truth[0], 15, physics, SIZES), truth, atol=1e-9)
    for k in (3, 10):
        out = simulate(cids, truth[k], 15 - k, physics, SIZES)
        assert np.abs(out[:, :, :3] - truth[k:, :, :3]).max() < 0.02


def test_touched_marks_the_objects_that_meet():
    """Two spheres rolling into each other touch; a third one far away does not."""
    s0 = np.stack(
        [
            rest_state((-1.5, 0), "sphere", SIZES, (2.0, 0)),
            rest_state((1.5, 0), "sphere", SIZES, (-2.0, 0)),
            rest_state((0, 5), "sphere", SIZES),
        ]
    )
    touched = np.zeros(3, bool)
    simulate([RUBBER_SPHERE, METAL_SPHERE, RUBBER_SPHERE], s0, 12, PHYS, SIZES, touched)
    assert touched.tolist() == [True, True, False]


def scene(plan):
    """(class ids, states) of objects resting on the floor: (class id, xy, planar velocity) each, spheres rolling."""
    states = []
    for cid, xy, v in plan:
        shape = attributes(cid)[0]
        s = rest_state(xy, shape, SIZES, v)
        if shape == "sphere":
            s[10:12] = [-v[1] / SIZES.radius, v[0] / SIZES.radius]
        states.append(s)
    return [cid for cid, _, _ in plan], np.stack(states)


def test_states_do_not_depend_on_earlier_calls():
    """simulate() keeps its client (floor, collision shapes) from call to call: a scene gives the same states, bit
    for bit, in a new client, right after itself and after another scene. Scene A's differed by 4e-7 units when
    pybullet's broadphase went on cleaning its pairs where the previous call had left off."""
    import pybullet as pb

    from lib.resim import simulate as simulate_module

    physics = Physics(friction=0.08, rolling_friction=0.2, restitution=0.8, mass_ratio=2.0, frame_dt=0.1, substeps=30)
    metal_cylinder, rubber_cylinder = class_id("cylinder", "metal", "red"), class_id("cylinder", "rubber", "blue")
    a = scene([(class_id("sphere", "metal", "purple"), (2.7, 2.0), (0, 0)), (RUBBER_SPHERE, (2.3, -3.0), (0, 0)),
               (rubber_cylinder, (-0.7, 2.1), (0.1, -0.9)), (metal_cylinder, (-0.3, -1.7), (-0.4, 3.5))])  # fmt: skip
    b = scene([(RUBBER_CUBE, (0.1, -1.5), (-1.5, 0.4)), (METAL_SPHERE, (2.2, -0.8), (0, 0)),
               (RUBBER_SPHERE, (-0.3, 1.4), (0, 0)), (metal_cylinder, (-1.9, -1.0), (3.1, -0.8))])  # fmt: skip
    world = simulate_module._WORLD
    if world["id"] is not None and pb.isConnected(world["id"]):
        pb.disconnect(world["id"])  # the next call makes a new client, as in a new process
    first = simulate(*a, 11, physics, SIZES)
    touched = np.zeros(4, bool)
    np.testing.assert_array_equal(simulate(*a, 11, physics, SIZES, touched), first)
    assert touched.any()  # the scene has collisions
    simulate(*b, 11, physics, SIZES)
    np.testing.assert_array_equal(simulate(*a, 11, physics, SIZES), first)


def test_new_world_gives_the_next_call_a_new_client(monkeypatch):
    """``new_world`` makes the next ``simulate`` call connect a new client (the floor and shapes made anew), and
    ``refine`` calls it first, so that a video's simulations do not depend on what the process simulated before."""
    from lib.resim import fit_states
    from lib.resim import simulate as simulate_module
    from lib.resim.estimate import Estimate

    physics = Physics(friction=0.08, rolling_friction=0.2, restitution=0.8, mass_ratio=2.0, frame_dt=0.1, substeps=30)
    a = scene([(RUBBER_CUBE, (0.1, -1.5), (-1.5, 0.4)), (METAL_SPHERE, (2.2, -0.8), (0, 0))])
    simulate_module.new_world()
    first = simulate(*a, 3, physics, SIZES)
    simulate(*a, 3, physics, SIZES)
    assert simulate_module._WORLD["created"] == 4  # one client for both calls: it counts the bodies of both
    simulate_module.new_world()
    np.testing.assert_array_equal(simulate(*a, 3, physics, SIZES), first)
    assert simulate_module._WORLD["created"] == 2  # a new client
    calls = []
    monkeypatch.setattr(fit_states, "new_world", lambda: calls.append(1))
    est = Estimate(np.zeros(0, np.int64), np.zeros((0, 13)), [], [], [])
    fit_states.refine(est, physics, SIZES)
    assert calls == [1]

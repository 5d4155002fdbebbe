"""Rigid-body simulation of a scene state forward in time: pybullet (DIRECT, gravity 9.81) with the objects of
lib/resim/bodies.py on a floor plane z = 0 that does not bounce.

Every physical constant is a field of ``Physics``, to be fitted from train masks. The contact model is the one the
videos were made with: the floor's lateral friction is 1 and an object's is ``friction`` (pybullet multiplies them,
so a sliding object decelerates by friction * g), spheres also have rolling friction, object-object contacts
bounce with restitution ``restitution`` ** 2 (pybullet multiplies the two objects' restitutions), metal objects
weigh ``mass_ratio`` x rubber ones. One pybullet client per process keeps the floor from call to call; a call's
states do not depend on the calls before it.

    physics = Physics(friction=0.05, rolling_friction=0.04, restitution=0.8, mass_ratio=2.0, frame_dt=0.125,
                      substeps=30)
    states = simulate(class_ids, states10, 11, physics, Sizes(0.5))    # (12, n, 13): frames 10..21
"""

import os
from dataclasses import dataclass

import numpy as np

from lib.common.classes import SHAPES, class_id
from lib.resim import bodies

GRAVITY = 9.81


@dataclass(frozen=True)
class Physics:
    """Physical constants: sliding friction coefficient on the floor (deceleration friction * g), rolling
    friction of spheres, restitution of objects (an object-object contact bounces with its square; the floor
    does not bounce), metal mass / rubber mass (rubber weighs 1), seconds between two frames, physics steps
    per frame (time step frame_dt / substeps)."""

    friction: float
    rolling_friction: float
    restitution: float
    mass_ratio: float
    frame_dt: float
    substeps: int


MAX_CREATED = 10000  # bodies made before the client is made anew (pybullet keeps 0.8 KB of each removed body)
_WORLD = {"pid": None, "id": None, "floor": None, "shapes": {}, "created": 0, "renew": False}


def _world():
    """This process's simulation client: its floor (uid ``floor``) and the collision shapes of its bodies (``shapes``,
    (shape, dims) -> id), kept from call to call (each ``simulate`` adds its bodies and removes them when done) and
    made anew after ``MAX_CREATED`` bodies or a ``new_world`` call. The client has no renderer plugin (nothing is
    drawn there): with it, making a sphere or cylinder body costs 3x more (its visual mesh)."""
    import pybullet as pb

    w = _WORLD
    if w["pid"] != os.getpid() or not pb.isConnected(w["id"]) or w["created"] > MAX_CREATED or w["renew"]:
        if w["pid"] == os.getpid() and pb.isConnected(w["id"]):
            pb.disconnect(w["id"])
        cli = pb.connect(pb.DIRECT)
        renderer = pb.loadPlugin("tinyRendererPlugin", physicsClientId=cli)  # loaded already: its id
        if renderer >= 0:
            pb.unloadPlugin(renderer, physicsClientId=cli)
        pb.setGravity(0, 0, -GRAVITY, physicsClientId=cli)
        floor = pb.createMultiBody(0, pb.createCollisionShape(pb.GEOM_PLANE, physicsClientId=cli), physicsClientId=cli)
        pb.changeDynamics(floor, -1, lateralFriction=1.0, restitution=0.0, rollingFriction=0.0, physicsClientId=cli)
        w.update(pid=os.getpid(), id=cli, floor=floor, shapes={}, created=0, renew=False)
    return w


def new_world():
    """Make this process's client anew at the next ``simulate`` call. A call's states do not depend on the calls
    before it in the tests' scenes, but over a whole val split they did: two of 200 val videos' masks changed with
    the videos predicted before them in the same process (1 process against 2). ``fit_states.refine`` calls this
    first and ``predict.simulate_inputs`` before the final simulation, so that a video's refinement and the
    simulation after it depend on that video alone."""
    _WORLD["renew"] = True


def simulate(class_ids, states0, n_frames, physics, sizes, touched=None):
    """(n_frames + 1, n, 13) states of the objects of ``class_ids`` (n,) at each frame from ``states0`` (n, 13),
    the state at some frame k (row 0), to frame k + n_frames. Absent objects (NaN rows) stay NaN and take
    no part. ``touched``: a (n,) bool array, set True for each object that touches another one at a frame.

    The process's client (``_world``) keeps its floor and collision shapes from call to call and the bodies are
    removed at the end (``_remove_bodies``): ``resetSimulation`` and a new floor each call cost about as much as
    the physics steps. The states are bit for bit those of a client made for the call alone, whatever was
    simulated before (tests/unit/resim/test_simulate.py)."""
    import pybullet as pb

    w = _world()
    cli, floor = w["id"], w["floor"]
    pb.setPhysicsEngineParameter(
        fixedTimeStep=physics.frame_dt / physics.substeps, deterministicOverlappingPairs=1, physicsClientId=cli
    )
    states0 = np.asarray(states0, np.float64).reshape(-1, bodies.STATE)
    out = np.full((n_frames + 1, *states0.shape), np.nan)
    out[0] = states0
    live = [i for i, s in enumerate(states0) if not np.isnan(s).any()]
    uids = []
    try:
        for i in live:
            uids.append(bodies.create_body(cli, class_ids[i], sizes, states0[i], physics, w["shapes"]))
        for f in range(1, n_frames + 1):
            for _ in range(physics.substeps):
                pb.stepSimulation(physicsClientId=cli)
                if touched is not None:
                    for c in pb.getContactPoints(physicsClientId=cli):
                        if floor not in c[1:3]:
                            touched[[i for i, uid in zip(live, uids) if uid in c[1:3]]] = True
            for i, uid in zip(live, uids):
                out[f, i] = bodies.get_state(cli, uid)
    finally:
        w["created"] += len(uids)
        _remove_bodies(cli, uids)
    return out


def _remove_bodies(cli, uids):
    """Remove the bodies ``uids`` from client ``cli``, and with them what the next call would otherwise inherit.

    pybullet's broadphase (btDbvtBroadphase) drops the pairs of objects no longer near each other a few pairs a
    step, starting where it stopped the step before (m_cid), and a pair dropped a step later can join two bodies'
    simulation islands (the contact solver stops iterating on an island's residual). Where a call left that start
    changed a later call's states: by 1e-34 to 4e-7 units in 5 of 1200 random scenes simulated after others. One
    collision detection over a single pair (the floor's with the last body) sets it back to 0, as in a new client."""
    import pybullet as pb

    for uid in uids[1:]:
        pb.removeBody(uid, physicsClientId=cli)
    if uids:
        pb.performCollisionDetection(physicsClientId=cli)
        pb.removeBody(uids[0], physicsClientId=cli)


def decelerations(physics, sizes, speed=2.0, frames=4):
    """{shape: deceleration (units/s^2)} of a rubber cube, sphere (rolling) and cylinder moving alone at ``speed``
    on the floor, measured by simulating each for ``frames`` frames."""
    out = {}
    for shape in SHAPES:
        cid = class_id(shape, "rubber", "gray")
        state = bodies.rest_state((0.0, 0.0), shape, sizes, (speed, 0.0))
        if shape == "sphere":  # rolling without slipping
            state[10:13] = bodies.rolling_spin((speed, 0.0), sizes)
        end = simulate([cid], state[None], frames, physics, sizes)[-1, 0]
        out[shape] = float(max(speed - np.linalg.norm(end[7:9]), 0.0) / (frames * physics.frame_dt))
    return out

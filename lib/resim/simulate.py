"""Rigid-body simulation of a scene state forward in time: pybullet (DIRECT, gravity 9.81) with the objects of
lib/resim/bodies.py on a floor plane z = 0 that does not bounce.

Every physical constant is a field of ``Physics``, to be fitted from train masks. The contact model is the one the
videos were made with: the floor's lateral friction is 1 and an object's is ``friction`` (pybullet multiplies them,
so a sliding object decelerates by friction * g), spheres also have rolling friction, object-object contacts
bounce with restitution ``restitution`` ** 2 (pybullet multiplies the two objects' restitutions), metal objects
weigh ``mass_ratio`` x rubber ones.

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


_CLIENT = {"pid": None, "id": None}


def _client():
    """This process's simulation client."""
    import pybullet as pb

    c = _CLIENT
    if c["pid"] != os.getpid() or not pb.isConnected(c["id"]):
        c.update(pid=os.getpid(), id=pb.connect(pb.DIRECT))
    return c["id"]


def simulate(class_ids, states0, n_frames, physics, sizes, touched=None):
    """(n_frames + 1, n, 13) states of the objects of ``class_ids`` (n,) at each frame from ``states0`` (n, 13),
    the state at some frame k (row 0), to frame k + n_frames. Absent objects (NaN rows) stay NaN and take
    no part. ``touched``: a (n,) bool array, set True for each object that touches another one at a frame."""
    import pybullet as pb

    cli = _client()
    pb.resetSimulation(physicsClientId=cli)
    pb.setPhysicsEngineParameter(
        fixedTimeStep=physics.frame_dt / physics.substeps, deterministicOverlappingPairs=1, physicsClientId=cli
    )
    pb.setGravity(0, 0, -GRAVITY, physicsClientId=cli)
    floor = pb.createMultiBody(0, pb.createCollisionShape(pb.GEOM_PLANE, physicsClientId=cli), physicsClientId=cli)
    pb.changeDynamics(floor, -1, lateralFriction=1.0, restitution=0.0, rollingFriction=0.0, physicsClientId=cli)

    states0 = np.asarray(states0, np.float64).reshape(-1, bodies.STATE)
    out = np.full((n_frames + 1, *states0.shape), np.nan)
    out[0] = states0
    live = [i for i, s in enumerate(states0) if not np.isnan(s).any()]
    uids = [bodies.create_body(cli, class_ids[i], sizes, states0[i], physics) for i in live]
    for f in range(1, n_frames + 1):
        for _ in range(physics.substeps):
            pb.stepSimulation(physicsClientId=cli)
            if touched is not None:
                for c in pb.getContactPoints(physicsClientId=cli):
                    if floor not in c[1:3]:
                        touched[[i for i, uid in zip(live, uids) if uid in c[1:3]]] = True
        for i, uid in zip(live, uids):
            out[f, i] = bodies.get_state(cli, uid)
    return out


def decelerations(physics, sizes, speed=2.0, frames=4):
    """{shape: deceleration (units/s^2)} of a rubber cube, sphere (rolling) and cylinder moving alone at ``speed``
    on the floor, measured by simulating each for ``frames`` frames."""
    out = {}
    for shape in SHAPES:
        cid = class_id(shape, "rubber", "gray")
        state = bodies.rest_state((0.0, 0.0), shape, sizes, (speed, 0.0))
        if shape == "sphere":  # rolling without slipping
            state[10:13] = [0.0, speed / sizes.radius, 0.0]
        end = simulate([cid], state[None], frames, physics, sizes)[-1, 0]
        out[shape] = float(max(speed - np.linalg.norm(end[7:9]), 0.0) / (frames * physics.frame_dt))
    return out

"""The objects of the re-simulating predictor as pybullet bodies, shared by lib/resim/draw.py and
lib/resim/simulate.py.

A class id fixes an object's shape and material (lib/common/classes.py); its size is one parameter, ``radius``:
a sphere of radius r, a cylinder of radius r and height 2r (upright: axis along +z), a cube of half-extent 0.8r.
An object's state is 13 floats: position xyz, orientation quaternion xyzw, linear velocity, angular velocity;
a NaN row is an absent object.

    uid = create_body(client, cid, Sizes(0.5), state)                  # to draw: pose only
    uid = create_body(client, cid, Sizes(0.5), state, physics)         # to simulate: mass and friction too
"""

from dataclasses import dataclass

import numpy as np

from lib.common.classes import attributes

STATE = 13  # floats per object state: position 3, quaternion xyzw 4, linear velocity 3, angular velocity 3


@dataclass(frozen=True)
class Sizes:
    """Object size: sphere and cylinder radius ``radius`` (cylinders 2 * radius high), cubes 1.6 * radius wide."""

    radius: float

    def half_height(self, shape):
        """Height of the centre of an upright object of ``shape`` resting on the floor."""
        return 0.8 * self.radius if shape == "cube" else self.radius


def rest_state(xy, shape, sizes, vel=(0.0, 0.0)):
    """(13,) state of an upright object of ``shape`` resting on the floor at ``xy``, sliding at planar ``vel``."""
    s = np.zeros(STATE)
    s[:2], s[2], s[6], s[7:9] = xy, sizes.half_height(shape), 1.0, vel
    return s


def _shapes(client, shape, r):
    """(collision shape, visual shape) ids of an object of ``shape`` and radius ``r`` in ``client``."""
    import pybullet as pb

    if shape == "cube":
        geom, col, vis = pb.GEOM_BOX, {"halfExtents": [0.8 * r] * 3}, {"halfExtents": [0.8 * r] * 3}
    elif shape == "sphere":
        geom, col, vis = pb.GEOM_SPHERE, {"radius": r}, {"radius": r}
    else:
        geom, col, vis = pb.GEOM_CYLINDER, {"radius": r, "height": 2 * r}, {"radius": r, "length": 2 * r}
    return (
        pb.createCollisionShape(geom, physicsClientId=client, **col),
        pb.createVisualShape(geom, physicsClientId=client, **vis),
    )


def set_state(client, uid, state):
    """Put body ``uid`` in ``state`` (13,): pose and velocities (the quaternion is normalised)."""
    import pybullet as pb

    s = np.asarray(state, np.float64)
    q = s[3:7] / np.linalg.norm(s[3:7])
    pb.resetBasePositionAndOrientation(uid, s[:3].tolist(), q.tolist(), physicsClientId=client)
    pb.resetBaseVelocity(uid, s[7:10].tolist(), s[10:13].tolist(), physicsClientId=client)


def get_state(client, uid):
    """(13,) state of body ``uid``."""
    import pybullet as pb

    pos, quat = pb.getBasePositionAndOrientation(uid, physicsClientId=client)
    lin, ang = pb.getBaseVelocity(uid, physicsClientId=client)
    return np.array([*pos, *quat, *lin, *ang])


def create_body(client, cid, sizes, state, physics=None):
    """Body uid of an object of class ``cid`` and ``sizes`` in pybullet client ``client``, in ``state`` (13,).

    ``physics`` (a lib/resim/simulate.py ``Physics``) sets its mass (rubber 1, metal ``mass_ratio``) and contact
    parameters as the videos' generator does: lateral friction ``friction`` (the floor's is 1, and pybullet
    multiplies the two), restitution ``restitution``, rolling friction ``rolling_friction`` for spheres only,
    spinning friction 0.01, angular damping 0.05, no linear damping. Without it the body has mass 1 and
    pybullet's default dynamics (enough to be drawn)."""
    import pybullet as pb

    shape, material, _ = attributes(cid)
    col, vis = _shapes(client, shape, sizes.radius)
    mass = physics.mass_ratio if physics is not None and material == "metal" else 1.0
    uid = pb.createMultiBody(mass, col, vis, physicsClientId=client)
    if physics is not None:
        pb.changeDynamics(
            uid,
            -1,
            lateralFriction=physics.friction,
            restitution=physics.restitution,
            rollingFriction=physics.rolling_friction if shape == "sphere" else 0.0,
            spinningFriction=0.01,
            linearDamping=0.0,
            angularDamping=0.05,
            physicsClientId=client,
        )
    set_state(client, uid, state)
    return uid

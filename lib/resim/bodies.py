"""The objects of the re-simulating predictor as pybullet bodies, shared by lib/resim/draw.py and
lib/resim/simulate.py.

A class id fixes an object's shape and material (lib/common/classes.py); its size is the shape's: a sphere of
radius ``radius``, a cube of half-extent ``cube_half`` (0.8 radius unless given), an upright cylinder (axis along
+z) of radius ``cylinder_radius`` and half-height ``cylinder_half`` (radius and radius unless given); the fitted
values come from lib/resim/fit_camera.py.
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
    """Object sizes: sphere radius, cube half-extent, cylinder radius and half-height (None: the proportions of a
    sphere of ``radius``: 0.8 radius, radius, radius)."""

    radius: float
    cube_half: float | None = None
    cylinder_radius: float | None = None
    cylinder_half: float | None = None

    def dims(self, shape):
        """(half-extent,) of a cube, (radius,) of a sphere, (radius, half-height) of a cylinder."""
        r = self.radius
        if shape == "cube":
            return (self.cube_half or 0.8 * r,)
        if shape == "sphere":
            return (r,)
        return (self.cylinder_radius or r, self.cylinder_half or r)

    def half_height(self, shape):
        """Height of the centre of an upright object of ``shape`` resting on the floor."""
        return self.dims(shape)[-1]


def rest_state(xy, shape, sizes, vel=(0.0, 0.0)):
    """(13,) state of an upright object of ``shape`` resting on the floor at ``xy``, sliding at planar ``vel``."""
    s = np.zeros(STATE)
    s[:2], s[2], s[6], s[7:9] = xy, sizes.half_height(shape), 1.0, vel
    return s


def rolling_spin(vel, sizes):
    """(3,) angular velocity of a sphere of ``sizes`` rolling without slipping at planar velocity ``vel``."""
    return np.array([-vel[1] / sizes.radius, vel[0] / sizes.radius, 0.0])


def _shapes(client, shape, sizes, visual=True, cache=None):
    """(collision shape, visual shape) ids of an object of ``shape`` and ``sizes`` in ``client``; the visual shape
    -1 (none) without ``visual``. ``cache``: a dict (shape, dims) -> collision shape id of ``client``, to take the
    collision shape from, or keep a new one in."""
    import pybullet as pb

    d = sizes.dims(shape)
    if shape == "cube":
        geom, col, vis = pb.GEOM_BOX, {"halfExtents": [d[0]] * 3}, {"halfExtents": [d[0]] * 3}
    elif shape == "sphere":
        geom, col, vis = pb.GEOM_SPHERE, {"radius": d[0]}, {"radius": d[0]}
    else:
        geom, col, vis = pb.GEOM_CYLINDER, {"radius": d[0], "height": 2 * d[1]}, {"radius": d[0], "length": 2 * d[1]}
    cache = {} if cache is None else cache
    if (shape, d) not in cache:
        cache[shape, d] = pb.createCollisionShape(geom, physicsClientId=client, **col)
    return cache[shape, d], pb.createVisualShape(geom, physicsClientId=client, **vis) if visual else -1


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


def create_body(client, cid, sizes, state, physics=None, shapes=None):
    """Body uid of an object of class ``cid`` and ``sizes`` in pybullet client ``client``, in ``state`` (13,).

    ``physics`` (a lib/resim/simulate.py ``Physics``) sets its mass (rubber 1, metal ``mass_ratio``) and contact
    parameters as the videos' generator does: lateral friction ``friction`` (the floor's is 1, and pybullet
    multiplies the two), restitution ``restitution``, rolling friction ``rolling_friction`` for spheres only,
    spinning friction 0.01, angular damping 0.05, no linear damping. Without it the body has mass 1 and
    pybullet's default dynamics and a visual shape (enough to be drawn); with it, no visual shape (simulated
    bodies are not drawn, and making one costs a tenth of a simulation's time). ``shapes``: a dict (shape, dims) ->
    collision shape id of ``client`` that bodies of the same shape and size share (simulate's client keeps one:
    a removed body leaves its shapes behind); without it the body gets a collision shape of its own."""
    import pybullet as pb

    shape, material, _ = attributes(cid)
    col, vis = _shapes(client, shape, sizes, visual=physics is None, cache=shapes)
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

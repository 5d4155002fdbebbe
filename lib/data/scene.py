"""The scenes of the synthetic CLEVRER-style videos and their physics (docs/dataset.md).

Rigid-body physics in pybullet (DIRECT mode, no GUI): 3-6 of the 48 objects per video on a grey floor,
some at rest, others launched at each other so that they collide, sliding or rolling slowed by friction,
and some entering from the frame edges mid-video. ``render_video`` samples a scene from (seed, video id),
simulates it and has lib/data/shading.py draw the frames and masks it needs; it also records the objects
and their collisions, and with ``states=True`` their true 3-D states at every frame; ``true_states`` gives these
states from the same simulation without drawing anything (lib/data/true_states.py: their layout, and reading
them back). lib/data/synth.py writes whole datasets of these videos.

    from lib.data import scene

    frames, mask, info = scene.render_video(42)
    _, mask, _ = scene.render_video(42, rgb_frames=[], mask_frames=[21], supersample=1)  # settings: SynthConfig
    states = scene.true_states(42)  # states["states"]: (T, n, 13) float32, as render_video(42, states=True)

Video N is a pure function of (seed, N, config).
"""

import math
import os
from dataclasses import dataclass, fields, replace

import numpy as np

from lib.common.classes import COLOR_RGB, attributes
from lib.data import shading


@dataclass(frozen=True)
class SynthConfig:
    # video
    n_frames: int = 22
    n_input: int = 11  # frames kept in hidden/
    height: int = 160
    width: int = 240
    supersample: int = 2  # render at 2x and box-average (antialiasing); 1 = faster, harder edges
    blur: float = 0.5  # gaussian blur (px) of the final frame; 0 = none
    png_level: int = 1  # zlib level of the PNGs (1 = fast)
    # physics (units: object radius 0.5, metres-like, gravity 9.81)
    hz: int = 240  # physics steps per second
    frame_steps: int = 30  # physics steps between two saved frames
    radius: float = 0.5  # sphere/cylinder radius; cylinders are 2*radius high, cubes 1.6*radius wide
    min_objects: int = 3  # objects per video, entrants included
    max_objects: int = 6
    p_entrant: float = 0.25  # chance that each object beyond the first two enters from an edge mid-video
    p_stationary: float = 0.35  # chance that an object present at frame 0 starts at rest
    p_aim: float = 0.9  # chance that a moving object is aimed at another object
    aim_noise: float = 8.0  # degrees of noise on aimed directions
    speed: tuple = (1.5, 3.3)  # initial speeds (units/s)
    friction: float = 0.05  # floor sliding friction (deceleration = friction * g)
    rolling_friction: float = 0.04  # spheres roll: rolling friction slows them
    restitution: float = 0.8  # objects (floor has none); object-object bounce = restitution**2
    metal_mass: float = 2.0
    rubber_mass: float = 1.0
    # camera and light
    cam_dist: float = 10.0
    cam_elev: float = 38.0  # degrees above the floor
    cam_azim: float = 0.0  # degrees; 0 looks along +y
    cam_target_y: float = 0.5
    fov: float = 32.0  # vertical field of view, degrees
    light_dir: tuple = (-0.9, -0.7, 1.6)  # towards the light: from the left and front, shadows fall right/back
    floor_rgb: tuple = (0.53, 0.53, 0.54)
    floor_gradient: float = 0.1  # floor darker towards the top right, like the real frames
    shadow: float = 0.3  # darkening of the floor in full shadow
    shadow_blur: float = 2.5  # px (final resolution) of shadow softness
    ambient: float = 0.45
    diffuse: float = 0.6
    specular: float = 0.8  # highlight of metal
    metal_reflect: float = 0.3  # length scale of the floor's mirrored gradient on metal (units)
    metal_sky: tuple = (0.05, 0.45)  # environment mirrored by metal above the horizon: a + b * height of the ray
    gamma: float = 1.5  # object colours are linear; display gamma


DEFAULT = SynthConfig()


def make_config(cfg=None, **overrides):
    """The default config (or `cfg`) with keyword overrides; unknown keys raise."""
    cfg = cfg or DEFAULT
    names = {f.name for f in fields(SynthConfig)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise TypeError(f"unknown synth config keys {bad}; known: {sorted(names)}")
    return replace(cfg, **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})


# ----------------------------------------------------------------------------- scene


def _client():
    """This process's pybullet DIRECT client (one per worker process)."""
    import pybullet

    global _CLIENT
    if _CLIENT is None or _CLIENT[0] != os.getpid() or not pybullet.isConnected(_CLIENT[1]):
        _CLIENT = (os.getpid(), pybullet.connect(pybullet.DIRECT))
    return _CLIENT[1]


_CLIENT = None


def _half_height(cfg, shape):
    return 0.8 * cfg.radius if shape == "cube" else cfg.radius


def _add_object(cli, cfg, cid, xy, vel):
    """Create the body of class `cid` resting at `xy` with planar velocity `vel`; returns its uid."""
    import pybullet

    shape, material, color = attributes(cid)
    r = cfg.radius
    rgba = list(COLOR_RGB[color]) + [1.0]
    if shape == "cube":
        he = [0.8 * r] * 3
        col = pybullet.createCollisionShape(pybullet.GEOM_BOX, halfExtents=he, physicsClientId=cli)
        vis = pybullet.createVisualShape(pybullet.GEOM_BOX, halfExtents=he, rgbaColor=rgba, physicsClientId=cli)
    elif shape == "sphere":
        col = pybullet.createCollisionShape(pybullet.GEOM_SPHERE, radius=r, physicsClientId=cli)
        vis = pybullet.createVisualShape(pybullet.GEOM_SPHERE, radius=r, rgbaColor=rgba, physicsClientId=cli)
    else:
        col = pybullet.createCollisionShape(pybullet.GEOM_CYLINDER, radius=r, height=2 * r, physicsClientId=cli)
        vis = pybullet.createVisualShape(
            pybullet.GEOM_CYLINDER, radius=r, length=2 * r, rgbaColor=rgba, physicsClientId=cli
        )
    mass = cfg.metal_mass if material == "metal" else cfg.rubber_mass
    z = _half_height(cfg, shape) + 1e-3
    uid = pybullet.createMultiBody(mass, col, vis, basePosition=[xy[0], xy[1], z], physicsClientId=cli)
    pybullet.changeDynamics(
        uid,
        -1,
        lateralFriction=cfg.friction,
        restitution=cfg.restitution,
        rollingFriction=cfg.rolling_friction if shape == "sphere" else 0.0,
        spinningFriction=0.01,
        linearDamping=0.0,
        angularDamping=0.05,
        physicsClientId=cli,
    )
    vx, vy = vel
    # spheres start rolling (no slip), so that rolling friction is what slows them
    ang = [-vy / r, vx / r, 0.0] if shape == "sphere" else [0.0, 0.0, 0.0]
    pybullet.resetBaseVelocity(uid, [vx, vy, 0.0], ang, physicsClientId=cli)
    return uid


def _plan(cfg, cam, rng):
    """Random scene plan: objects (class, start position, velocity) and entrants (edge, frame)."""
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    cids = (rng.choice(48, size=n, replace=False) + 1).tolist()
    entrant = [i >= 2 and rng.random() < cfg.p_entrant for i in range(n)]
    r = cfg.radius
    margin = 0.1 * cam.h
    objs, placed = [], []
    for i, cid in enumerate(cids):
        o = {"class_id": cid, "entrant": bool(entrant[i])}
        if not entrant[i]:
            for _ in range(200):  # rejection sampling of a free spot inside the view
                xy = cam.floor_point(rng.uniform(margin, cam.w - margin), rng.uniform(1.5 * margin, cam.h - margin))
                if all(np.hypot(*(xy - q)) > 3.0 * r for q in placed):
                    break
            placed.append(xy)
            o["xy"] = xy
        objs.append(o)
    statics = [o for o in objs if not o["entrant"]]
    moving = [rng.random() >= cfg.p_stationary for _ in statics]
    if not any(moving):
        moving[int(rng.integers(len(statics)))] = True
    for o, mv in zip(statics, moving):
        o["vel"] = _launch(cfg, rng, o["xy"], [q["xy"] for q in statics if q is not o]) if mv else np.zeros(2)
        o["spawn_step"] = 0
    for o in objs:
        if o["entrant"]:
            o["edge"] = ["left", "right", "top"][int(rng.choice(3, p=[0.4, 0.4, 0.2]))]
            o["edge_u"] = float(rng.uniform(0.15, 0.85))
            o["entry_frame"] = int(rng.integers(1, cfg.n_frames - 1))
            o["spawn_step"] = (o["entry_frame"] - 1) * cfg.frame_steps + int(rng.integers(0, cfg.frame_steps))
            o["aim_u"] = rng.random(3)  # aim choices drawn now so the plan is fixed by the rng order
            o["speed"] = float(rng.uniform(*cfg.speed))
    return objs


def _launch(cfg, rng, xy, others):
    """A planar velocity from `xy`: towards one of `others` (aimed, to make collisions) or anywhere."""
    if others and rng.random() < cfg.p_aim:
        d = others[int(rng.integers(len(others)))] - xy
        ang = math.atan2(d[1], d[0]) + math.radians(rng.normal(0, cfg.aim_noise))
    else:
        ang = rng.uniform(0, 2 * math.pi)
    return float(rng.uniform(*cfg.speed)) * np.array([math.cos(ang), math.sin(ang)])


def _entrant_start(cfg, cam, o, positions):
    """Spawn point just outside the frame edge and velocity into the view for entrant `o`."""
    u = o["edge_u"]
    px = {"left": (0, u * cam.h), "right": (cam.w, u * cam.h), "top": (u * cam.w, 0)}[o["edge"]]
    out = {"left": (-20, 0), "right": (20, 0), "top": (0, -20)}[o["edge"]]
    edge = cam.floor_point(*px)
    d = cam.floor_point(px[0] + out[0] * cam.w / 240, px[1] + out[1] * cam.h / 160) - edge
    d /= np.linalg.norm(d)
    xy = edge + d * 1.8 * cfg.radius
    for _ in range(20):  # step further out while the spot is taken
        if all(np.hypot(*(xy - q)) > 2.5 * cfg.radius for q in positions):
            break
        xy = xy + d * 2.5 * cfg.radius
    a_choice, a_noise, a_pick = o["aim_u"]
    if positions and a_choice < cfg.p_aim:  # aim at an object in view
        tgt = positions[int(a_pick * len(positions))]
    else:  # or at a point in the middle of the view
        tgt = cam.floor_point((0.25 + 0.5 * a_pick) * cam.w, (0.3 + 0.5 * a_noise) * cam.h)
    v = tgt - xy
    ang = math.atan2(v[1], v[0]) + math.radians((a_noise - 0.5) * 2 * cfg.aim_noise)
    return xy, o["speed"] * np.array([math.cos(ang), math.sin(ang)])


def render_video(
    video_id, seed=0, *, rgb_frames=None, mask_frames=None, cfg=None, contacts=True, states=False, **overrides
):
    """Simulate and render video `video_id`.

    Returns frames uint8 (T, H, W, 3), mask uint8 (T, H, W) and an info dict. `rgb_frames` /
    `mask_frames` (iterables of frame indices, default all) limit the work; skipped frames are zeros.
    `contacts=False` skips recording the collisions (info["collisions"] stays empty; the video is the same).
    `states=True` also records the objects' true 3-D states at every frame (info["states"], ``_record``;
    lib/data/true_states.py has the layout): the physics then runs to the last frame, whatever is drawn.
    """
    cfg = make_config(cfg, **overrides)
    T, H, W, k = cfg.n_frames, cfg.height, cfg.width, cfg.supersample
    if k < 1 or cfg.n_input > T:
        raise ValueError(f"need supersample >= 1 and n_input <= n_frames, got {k}, {cfg.n_input}, {T}")
    rgb_frames = set(range(T) if rgb_frames is None else rgb_frames)
    mask_frames = set(range(T) if mask_frames is None else mask_frames)
    renderer = shading.Renderer(cfg)
    cam = renderer.cam  # the render resolution's camera: scenes are planned in its pixels
    plan = _plan(cfg, cam, np.random.default_rng([seed, video_id]))
    frames = np.zeros((T, H, W, 3), np.uint8)
    mask = np.zeros((T, H, W), np.uint8)

    def draw(f, cli, objs, lut):
        if f in rgb_frames or f in mask_frames:
            rgb, seg = renderer.draw(cli, objs, f in rgb_frames)
            mask[f] = lut[seg + 1]
            if rgb is not None:
                frames[f] = rgb

    last = T - 1 if states else max(rgb_frames | mask_frames, default=-1)
    collisions, record = _simulate(cfg, cam, plan, last, draw, contacts, states)

    first = {}
    for f in sorted(mask_frames):
        for c in np.unique(mask[f]).tolist():
            first.setdefault(c, f)
    objects = [
        {
            "class_id": o["class_id"],
            "name": " ".join(attributes(o["class_id"])),
            "entrant": o["entrant"],
            "planned_entry_frame": o.get("entry_frame", 0),
            "first_frame": first.get(o["class_id"], -1),
            "moving_at_start": bool(not o["entrant"] and np.any(o["vel"])),
        }
        for o in plan
    ]
    info = {
        "video_id": int(video_id),
        "seed": int(seed),
        "objects": objects,
        "collisions": collisions,
        "n_collisions": len(collisions),
    }
    if states:
        info["states"] = record
    return frames, mask, info


def true_states(video_id, seed=0, cfg=None, **overrides):
    """The true states of video `video_id` from its physics alone, nothing drawn: the same simulation as
    ``render_video``, so the same dict as its ``info["states"]`` (``_record``), many times faster."""
    cfg = make_config(cfg, **overrides)
    cam = shading.Camera(cfg, cfg.supersample)  # the camera render_video plans the scene in
    plan = _plan(cfg, cam, np.random.default_rng([seed, video_id]))
    return _simulate(cfg, cam, plan, cfg.n_frames - 1, contacts=False, states=True)[1]


def _simulate(cfg, cam, plan, last, draw=None, contacts=True, states=False):
    """Run the physics of `plan` from step 0 to frame `last` (``frame_steps`` physics steps a frame).

    At each frame f, after the objects due at that step are spawned and before the physics moves on, calls
    ``draw(f, client, objs, lut)`` (objs: body uid -> attributes, lut: body uid + 1 -> class id) and, with
    `states`, reads each object's state. Reading never changes the simulation. Returns (collisions, the
    ``_record`` of the states or None); collisions stay empty with ``contacts=False``.
    """
    import pybullet

    cli = _client()
    pybullet.resetSimulation(physicsClientId=cli)
    pybullet.setPhysicsEngineParameter(fixedTimeStep=1.0 / cfg.hz, deterministicOverlappingPairs=1, physicsClientId=cli)
    pybullet.setGravity(0, 0, -9.81, physicsClientId=cli)
    # the floor collides but is not rendered (drawing it costs most of TinyRenderer's time):
    # its pixels are the empty ones, shaded here; its visual is a speck far out of sight
    fcol = pybullet.createCollisionShape(pybullet.GEOM_PLANE, physicsClientId=cli)
    fvis = pybullet.createVisualShape(
        pybullet.GEOM_SPHERE, radius=1e-3, visualFramePosition=[0, 0, -1000], physicsClientId=cli
    )
    floor = pybullet.createMultiBody(0, fcol, fvis, physicsClientId=cli)
    pybullet.changeDynamics(floor, -1, lateralFriction=1.0, restitution=0.0, rollingFriction=0.0, physicsClientId=cli)

    lut = np.zeros(64, np.uint8)  # body uid + 1 -> class id (uid -1 = nothing, floor -> 0)
    objs = {}  # body uid -> (shape, material, color)
    uids = [None] * len(plan)  # plan index -> body uid, once spawned
    values = np.full((cfg.n_frames, len(plan), 13), np.nan, np.float32)
    touching, collisions = set(), []

    def spawn(o):
        if o["entrant"]:
            xy, vel = _entrant_start(
                cfg,
                cam,
                o,
                [np.array(pybullet.getBasePositionAndOrientation(u, physicsClientId=cli)[0][:2]) for u in objs],
            )
        else:
            xy, vel = o["xy"], o["vel"]
        uid = _add_object(cli, cfg, o["class_id"], xy, vel)
        assert uid + 1 < len(lut), "body ids restart at 0 after resetSimulation"
        lut[uid + 1] = o["class_id"]
        objs[uid] = attributes(o["class_id"])
        return uid

    for step in range(last * cfg.frame_steps + 1):
        for i, o in enumerate(plan):
            if o["spawn_step"] == step:
                uids[i] = spawn(o)
        f, rem = divmod(step, cfg.frame_steps)
        if rem == 0:
            if draw is not None:
                draw(f, cli, objs, lut)
            for i, uid in enumerate(uids):
                if states and uid is not None:
                    pos, orn = pybullet.getBasePositionAndOrientation(uid, physicsClientId=cli)
                    lin, ang = pybullet.getBaseVelocity(uid, physicsClientId=cli)
                    values[f, i] = pos + orn + lin + ang
        if step == last * cfg.frame_steps:
            break
        pybullet.stepSimulation(physicsClientId=cli)
        if not contacts:
            continue
        now = set()
        for c in pybullet.getContactPoints(physicsClientId=cli):
            if c[1] != floor and c[2] != floor:
                now.add((min(c[1], c[2]), max(c[1], c[2])))
        for a, b in sorted(now - touching):
            collisions.append({"frame": (step + 1) / cfg.frame_steps, "classes": (int(lut[a + 1]), int(lut[b + 1]))})
        touching = now
    return collisions, (_record(cfg, plan, values) if states else None)


def _record(cfg, plan, values):
    """The true states of a video as plain arrays (what lib/data/true_states.py stores and loads): ``states``
    float32 (T, n, 13) (position, quaternion xyzw, linear and angular velocity, world frame, per frame and object
    in plan order, NaN before the object spawns), ``class_ids``, ``spawn_step`` (physics step), ``entrant``
    (n,) and ``frame_dt`` (seconds between frames)."""
    return {
        "class_ids": np.array([o["class_id"] for o in plan], np.int64),
        "states": values,
        "spawn_step": np.array([o["spawn_step"] for o in plan], np.int64),
        "entrant": np.array([o["entrant"] for o in plan], bool),
        "frame_dt": np.float64(cfg.frame_steps / cfg.hz),
    }

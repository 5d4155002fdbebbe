"""Synthetic CLEVRER-style videos in the real dataset's layout (docs/dataset.md).

Rigid-body physics in pybullet (DIRECT mode, no GUI): 3-6 of the 48 objects per video on a grey floor,
some at rest, others launched at each other so that they collide, sliding or rolling slowed by friction,
and some entering from the frame edges mid-video. pybullet's TinyRenderer gives the segmentation and
depth buffers (at 2x by default); the objects are shaded here from their exact normals (matte rubber,
shiny metal), the floor and its soft shadows are drawn here, and each frame is box-downsampled from 2x.
Masks come from the same segmentation buffer, so they align with the frames exactly.

    from lib.data import synth

    if __name__ == "__main__":  # needed with workers > 1: each spawned worker imports the script
        synth.generate("data/synth", counts={"train": 100, "val": 100}, workers=2)
        frames, mask, info = synth.render_video(42)
        # masks-only videos (frames 0-10 and 21) for the object dynamics model, ids after the 100 unlabeled ones
        synth.generate_masks("data/dyn_extra/masks.npy", 3000, synth.extra_first_id(100), workers=2)

Video N is a pure function of (seed, N, config), so the dataset does not depend on `workers`.
Video ids follow the real layout (``SPLITS``: train from 0, val from 1000, unlabeled from 2000, hidden from
15000); a count that would run into the next split's ids is an error, so splits never share a video.
Workers are spawned processes: one that dies (a crash, or a script without the ``__main__`` guard, whose
workers die on import) stops ``generate`` with a ``RuntimeError`` saying which videos or what to do, within
seconds, instead of a pool waiting forever.
"""

import hashlib
import json
import math
import multiprocessing as mp
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from lib.common.classes import COLOR_RGB, attributes
from lib.common.files import atomic_path, save_json, save_npy

SPLITS = {"train": 0, "val": 1000, "unlabeled": 2000, "hidden": 15000}  # split -> first video id
REAL_COUNTS = {"train": 1000, "val": 1000, "unlabeled": 13000, "hidden": 5000}
TRUTH_DIR = ".hidden_truth"  # per-video frame-22 masks of hidden, outside the hidden folder
CRASH_ENV = "FUTURESEG_SYNTH_CRASH"  # tests: a worker given this video id dies (os._exit) instead of rendering it


def id_range(split):
    """(first, end) of a split's video ids: ``end`` is the next split's first id (None for hidden, the last)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits are {list(SPLITS)}")
    later = sorted(v for v in SPLITS.values() if v > SPLITS[split])
    return SPLITS[split], (later[0] if later else None)


def check_counts(counts):
    """Raises ValueError when a count is negative or would give a split ids of the next split."""
    bad = sorted(set(counts) - set(SPLITS))
    if bad:
        raise ValueError(f"unknown splits {bad}; splits are {list(SPLITS)}")
    for split, n in counts.items():
        first, end = id_range(split)
        if int(n) < 0:
            raise ValueError(f"n_{split}={n}: a count cannot be negative")
        if end is not None and first + int(n) > end:
            nxt = next(s for s, v in SPLITS.items() if v == end)
            raise ValueError(
                f"n_{split}={n} is more than the {end - first} ids of {split} (video_{first:05d} .. video_{end - 1:05d}): "
                f"its videos would take the ids of {nxt}, which starts at video_{end:05d}; use at most {end - first}"
            )


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


# ----------------------------------------------------------------------------- camera


class Camera:
    """Pinhole camera of the config at `scale` x the frame size: pybullet matrices and projections."""

    def __init__(self, cfg, scale=1):
        import pybullet as p

        self.w, self.h = cfg.width * scale, cfg.height * scale
        el, az = math.radians(cfg.cam_elev), math.radians(cfg.cam_azim)
        target = np.array([0.0, cfg.cam_target_y, 0.0])
        eye = target + cfg.cam_dist * np.array(
            [math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)]
        )
        self.eye = eye
        self.view = p.computeViewMatrix(eye.tolist(), target.tolist(), [0, 0, 1])
        self.proj = p.computeProjectionMatrixFOV(cfg.fov, self.w / self.h, 0.5, 4 * cfg.cam_dist)
        self.m = np.array(self.proj).reshape(4, 4).T @ np.array(self.view).reshape(4, 4).T
        self.minv = np.linalg.inv(self.m)

    def project(self, pts):
        """(n, 3) world points -> (n, 2) pixel (x, y) coordinates."""
        pts = np.asarray(pts, np.float64)
        c = np.c_[pts, np.ones(len(pts))] @ self.m.T
        ndc = c[:, :2] / c[:, 3:4]
        return np.c_[(ndc[:, 0] + 1) * 0.5 * self.w, (1 - ndc[:, 1]) * 0.5 * self.h]

    def floor_point(self, x, y):
        """World (x, y) on the floor seen at pixel (x, y)."""
        nx, ny = 2 * x / self.w - 1, 1 - 2 * y / self.h
        a = self.minv @ np.array([nx, ny, -1.0, 1.0])
        b = self.minv @ np.array([nx, ny, 1.0, 1.0])
        a, b = a[:3] / a[3], b[:3] / b[3]
        t = a[2] / (a[2] - b[2])
        return (a + t * (b - a))[:2]


def _floor_map(cfg, cam):
    """(h, w, 3) floor colour 0..255 at the camera's resolution: base grey, darker towards the top right."""
    ys, xs = np.mgrid[0 : cam.h, 0 : cam.w].astype(np.float32)
    g = 1 + cfg.floor_gradient * (0.5 - 0.6 * xs / cam.w - 0.4 * (1 - ys / cam.h))
    return g[..., None] * (255 * np.array(cfg.floor_rgb, np.float32))


# ----------------------------------------------------------------------------- scene


def _client():
    """This process's pybullet DIRECT client (one per worker process)."""
    import pybullet as p

    global _CLIENT
    if _CLIENT is None or _CLIENT[0] != os.getpid() or not p.isConnected(_CLIENT[1]):
        _CLIENT = (os.getpid(), p.connect(p.DIRECT))
    return _CLIENT[1]


_CLIENT = None


def _half_height(cfg, shape):
    return 0.8 * cfg.radius if shape == "cube" else cfg.radius


def _add_object(cli, cfg, cid, xy, vel):
    """Create the body of class `cid` resting at `xy` with planar velocity `vel`; returns its uid."""
    import pybullet as p

    shape, material, color = attributes(cid)
    r = cfg.radius
    rgba = list(COLOR_RGB[color]) + [1.0]
    if shape == "cube":
        he = [0.8 * r] * 3
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=he, physicsClientId=cli)
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=he, rgbaColor=rgba, physicsClientId=cli)
    elif shape == "sphere":
        col = p.createCollisionShape(p.GEOM_SPHERE, radius=r, physicsClientId=cli)
        vis = p.createVisualShape(p.GEOM_SPHERE, radius=r, rgbaColor=rgba, physicsClientId=cli)
    else:
        col = p.createCollisionShape(p.GEOM_CYLINDER, radius=r, height=2 * r, physicsClientId=cli)
        vis = p.createVisualShape(p.GEOM_CYLINDER, radius=r, length=2 * r, rgbaColor=rgba, physicsClientId=cli)
    mass = cfg.metal_mass if material == "metal" else cfg.rubber_mass
    z = _half_height(cfg, shape) + 1e-3
    uid = p.createMultiBody(mass, col, vis, basePosition=[xy[0], xy[1], z], physicsClientId=cli)
    p.changeDynamics(
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
    p.resetBaseVelocity(uid, [vx, vy, 0.0], ang, physicsClientId=cli)
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


# ----------------------------------------------------------------------------- shadows


def _hull(pts):
    """Convex hull (monotone chain) of (n, 2) points, as a list of (x, y) tuples."""
    pts = sorted(set(map(tuple, np.round(pts, 2).tolist())))
    if len(pts) < 3:
        return pts

    def half(seq):
        out = []
        for q in seq:
            while (
                len(out) >= 2
                and ((out[-1][0] - out[-2][0]) * (q[1] - out[-2][1]) - (out[-1][1] - out[-2][1]) * (q[0] - out[-2][0]))
                <= 0
            ):
                out.pop()
            out.append(q)
        return out

    lo, hi = half(pts), half(pts[::-1])
    return lo[:-1] + hi[:-1]


def _silhouette(cfg, shape, pos, rot, light):
    """World points whose projection along the light outlines the shadow of one object."""
    r = cfg.radius
    if shape == "sphere":
        u = np.cross(light, [0, 0, 1.0])
        u /= np.linalg.norm(u)
        v = np.cross(light, u)
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        return pos + r * (np.cos(t)[:, None] * u + np.sin(t)[:, None] * v)
    if shape == "cube":
        h = 0.8 * r
        local = np.array([[x, y, z] for x in (-h, h) for y in (-h, h) for z in (-h, h)])
    else:
        t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        ring = np.c_[r * np.cos(t), r * np.sin(t)]
        local = np.r_[np.c_[ring, np.full(16, -r)], np.c_[ring, np.full(16, r)]]
    return pos + local @ rot.T


def _shadow_layer(cfg, cam, objs, light):
    """(h, w) float32 0..1 soft shadow of all objects on the floor, at the camera's resolution."""
    import pybullet as p

    img = Image.new("L", (cam.w, cam.h), 0)
    draw = ImageDraw.Draw(img)
    for uid, (shape, _, _) in objs.items():
        pos, quat = p.getBasePositionAndOrientation(uid, physicsClientId=_client())
        rot = np.array(p.getMatrixFromQuaternion(quat)).reshape(3, 3)
        pts = _silhouette(cfg, shape, np.array(pos), rot, light)
        pts = pts - (pts[:, 2:3] / light[2]) * light  # slide along the light onto z = 0
        pts[:, 2] = 0
        poly = _hull(cam.project(pts))
        if len(poly) >= 3:
            draw.polygon(poly, fill=255)
    img = img.filter(ImageFilter.GaussianBlur(cfg.shadow_blur * cam.w / cfg.width))
    return np.asarray(img, np.float32) / 255


# ----------------------------------------------------------------------------- rendering


def _downsample_mask(seg, k):
    """Label of each k x k block: the majority for k = 2 (ties go to the top-left pixel), else the centre."""
    if k != 2:
        return seg[k // 2 :: k, k // 2 :: k]
    a, b, c, d = seg[0::2, 0::2], seg[0::2, 1::2], seg[1::2, 0::2], seg[1::2, 1::2]
    return np.where((a == b) | (a == c) | (a == d), a, np.where((b == c) | (b == d), b, np.where(c == d, c, a)))


def _unit(v):
    return v / np.sqrt(np.einsum("ij,ij->i", v, v))[:, None].clip(1e-9)


def _normals(shape, loc):
    """Unit outward normals (object frame) of points `loc` (n, 3) on the surface of one object."""
    if shape == "sphere":
        return _unit(loc)
    if shape == "cube":
        rows, axis = np.arange(len(loc)), np.abs(loc).argmax(1)
        n = np.zeros_like(loc)
        n[rows, axis] = np.sign(loc[rows, axis])
        return n
    # cylinder (height = diameter): on a cap where |z| beats the radial distance
    n = loc.copy()
    cap = np.abs(loc[:, 2]) > np.hypot(loc[:, 0], loc[:, 1])
    n[cap, :2] = 0
    n[~cap, 2] = 0
    return _unit(n)


def _shade_objects(cfg, cam, seg, depth, objs, light):
    """Deferred shading: (rows, cols, rgb 0..255) of the object pixels, from the depth buffer and the
    analytic normal of each object's shape. Rubber is matte; metal is darker, mirrors a soft
    environment in its own tint and has a sharp highlight."""
    import pybullet as p

    ii, jj = np.nonzero(seg >= 0)
    ids = seg[ii, jj]
    order = np.argsort(ids, kind="stable")  # pixels grouped by object
    ii, jj, ids = ii[order], jj[order], ids[order]
    ndc = np.stack([(2 * jj + 1) / cam.w - 1, 1 - (2 * ii + 1) / cam.h, 2 * depth[ii, jj] - 1, np.ones(len(ii))], 1)
    pts = ndc @ cam.minv.T
    pts = (pts[:, :3] / pts[:, 3:]).astype(np.float32)
    normal, base = np.zeros_like(pts), np.zeros_like(pts)
    metal = np.zeros(len(pts), bool)
    bounds = np.searchsorted(ids, list(objs) + [max(objs, default=0) + 1])
    for (uid, (shape, material, color)), lo, hi in zip(objs.items(), bounds[:-1], bounds[1:]):
        if lo == hi:
            continue
        pos, quat = p.getBasePositionAndOrientation(uid, physicsClientId=_client())
        rot = np.array(p.getMatrixFromQuaternion(quat), np.float32).reshape(3, 3)
        normal[lo:hi] = _normals(shape, (pts[lo:hi] - np.float32(pos)) @ rot) @ rot.T
        base[lo:hi] = COLOR_RGB[color]
        metal[lo:hi] = material == "metal"
    view = _unit(cam.eye.astype(np.float32) - pts)
    half = _unit(light.astype(np.float32) + view)
    ndl = np.clip(normal @ light.astype(np.float32), 0, 1)[:, None]
    ndh = np.clip(np.einsum("ij,ij->i", normal, half), 0, 1)[:, None]
    h8 = ndh * ndh
    h8 *= h8
    h8 *= h8
    rgb = base * (cfg.ambient + cfg.diffuse * ndl) + 0.05 * h8  # rubber
    if metal.any():
        n, v, b, h = normal[metal], view[metal], base[metal], h8[metal]
        up = 2 * np.einsum("ij,ij->i", n, v)[:, None] * n[:, 2:3] - v[:, 2:3]  # height of the mirror direction
        # mirrored environment: bright sky above; below, the floor where the mirrored ray meets it, dark near
        # the object (its contact shadow) and lighter further away. A flat metal face thus shows a gradient
        # from its bottom edge up (the mirrored ray travels further from higher points), which matte rubber
        # never has: without it metal and rubber cubes looked alike (flat faces mirror one direction).
        down = np.maximum(-up, 1e-3)
        dist = pts[metal][:, 2:3] / down * np.sqrt(np.clip(1 - down * down, 0, 1))
        sky_a, sky_b = cfg.metal_sky
        env = np.where(up > 0, sky_a + sky_b * up, 0.02 + 0.85 * (1 - np.exp(-dist / cfg.metal_reflect)))
        h64 = h * h
        h64 *= h64
        h64 *= h64
        rgb[metal] = b * (0.1 + 0.3 * ndl[metal] + 1.1 * env) + cfg.specular * h64
    return ii, jj, 255 * np.clip(rgb, 0, 1) ** np.float32(1 / cfg.gamma)


def _blur(img, sigma):
    """Separable gaussian blur of an (H, W, C) float image (edges repeated)."""
    if sigma <= 0:
        return img
    r = max(1, math.ceil(2 * sigma))
    k = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * sigma**2)).astype(np.float32)
    k /= k.sum()
    h, w = img.shape[:2]
    p = np.pad(img, ((r, r), (0, 0), (0, 0)), mode="edge")
    img = sum(k[i] * p[i : i + h] for i in range(2 * r + 1))
    p = np.pad(img, ((0, 0), (r, r), (0, 0)), mode="edge")
    return sum(k[i] * p[:, i : i + w] for i in range(2 * r + 1))


def _render(cfg, cam, cam1, objs, light, floor_map, with_rgb):
    """One frame: (rgb float (H, W, 3) or None, segmentation (h, w) of body uids at render resolution).

    The floor and its shadows are drawn at the final resolution, the objects at the render resolution;
    each final pixel is the box average of its sub-pixels (floor or object)."""
    import pybullet as p

    _, _, _, depth, seg = p.getCameraImage(
        cam.w, cam.h, cam.view, cam.proj, renderer=p.ER_TINY_RENDERER, shadow=0, physicsClientId=_client()
    )
    seg = np.asarray(seg).reshape(cam.h, cam.w)
    if not with_rgb:
        return None, seg
    H, W, k = cfg.height, cfg.width, cfg.supersample
    rgb = floor_map * (1 - cfg.shadow * _shadow_layer(cfg, cam1, objs, light))[..., None]
    ii, jj, obj_rgb = _shade_objects(cfg, cam, seg, np.asarray(depth).reshape(cam.h, cam.w), objs, light)
    if k == 1:
        rgb[ii, jj] = obj_rgb
        return rgb, seg
    idx = (ii // k) * W + jj // k
    cover = np.bincount(idx, minlength=H * W).reshape(H, W, 1)
    obj_sum = np.stack([np.bincount(idx, obj_rgb[:, c], minlength=H * W) for c in range(3)], 1).reshape(H, W, 3)
    return (rgb * (k * k - cover) + obj_sum) / (k * k), seg


def render_video(video_id, seed=0, rgb_frames=None, mask_frames=None, cfg=None, contacts=True, **overrides):
    """Simulate and render video `video_id`.

    Returns frames uint8 (T, H, W, 3), mask uint8 (T, H, W) and an info dict. `rgb_frames` /
    `mask_frames` (iterables of frame indices, default all) limit the work; skipped frames are zeros.
    `contacts=False` skips recording the collisions (info["collisions"] stays empty; the video is the same).
    """
    import pybullet as p

    cfg = make_config(cfg, **overrides)
    T, H, W, k = cfg.n_frames, cfg.height, cfg.width, cfg.supersample
    if k < 1 or cfg.n_input > T:
        raise ValueError(f"need supersample >= 1 and n_input <= n_frames, got {k}, {cfg.n_input}, {T}")
    rgb_frames = set(range(T) if rgb_frames is None else rgb_frames)
    mask_frames = set(range(T) if mask_frames is None else mask_frames)
    rng = np.random.default_rng([seed, video_id])
    cam, cam1 = Camera(cfg, k), Camera(cfg, 1)  # render / final resolution
    plan = _plan(cfg, cam, rng)

    cli = _client()
    p.resetSimulation(physicsClientId=cli)
    p.setPhysicsEngineParameter(fixedTimeStep=1.0 / cfg.hz, deterministicOverlappingPairs=1, physicsClientId=cli)
    p.setGravity(0, 0, -9.81, physicsClientId=cli)
    # the floor collides but is not rendered (drawing it costs most of TinyRenderer's time):
    # its pixels are the empty ones, shaded here; its visual is a speck far out of sight
    fcol = p.createCollisionShape(p.GEOM_PLANE, physicsClientId=cli)
    fvis = p.createVisualShape(p.GEOM_SPHERE, radius=1e-3, visualFramePosition=[0, 0, -1000], physicsClientId=cli)
    floor = p.createMultiBody(0, fcol, fvis, physicsClientId=cli)
    p.changeDynamics(floor, -1, lateralFriction=1.0, restitution=0.0, rollingFriction=0.0, physicsClientId=cli)

    light = np.array(cfg.light_dir, np.float64)
    light /= np.linalg.norm(light)
    floor_map = _floor_map(cfg, cam1)
    lut = np.zeros(64, np.uint8)  # body uid + 1 -> class id (uid -1 = nothing, floor -> 0)
    objs = {}  # body uid -> (shape, material, color)
    frames = np.zeros((T, H, W, 3), np.uint8)
    mask = np.zeros((T, H, W), np.uint8)
    touching, collisions = set(), []

    def spawn(o):
        if o["entrant"]:
            xy, vel = _entrant_start(
                cfg, cam, o, [np.array(p.getBasePositionAndOrientation(u, physicsClientId=cli)[0][:2]) for u in objs]
            )
        else:
            xy, vel = o["xy"], o["vel"]
        uid = _add_object(cli, cfg, o["class_id"], xy, vel)
        assert uid + 1 < len(lut), "body ids restart at 0 after resetSimulation"
        lut[uid + 1] = o["class_id"]
        objs[uid] = attributes(o["class_id"])

    last = max(rgb_frames | mask_frames, default=-1)
    for step in range((last) * cfg.frame_steps + 1):
        for o in plan:
            if o["spawn_step"] == step:
                spawn(o)
        f, rem = divmod(step, cfg.frame_steps)
        if rem == 0 and (f in rgb_frames or f in mask_frames):
            rgb, seg = _render(cfg, cam, cam1, objs, light, floor_map, f in rgb_frames)
            mask[f] = lut[_downsample_mask(seg, k) + 1]
            if rgb is not None:
                frames[f] = np.clip(_blur(rgb, cfg.blur) + 0.5, 0, 255).astype(np.uint8)
        if step == last * cfg.frame_steps:
            break
        p.stepSimulation(physicsClientId=cli)
        if not contacts:
            continue
        now = set()
        for c in p.getContactPoints(physicsClientId=cli):
            if c[1] != floor and c[2] != floor:
                now.add((min(c[1], c[2]), max(c[1], c[2])))
        for a, b in sorted(now - touching):
            collisions.append({"frame": (step + 1) / cfg.frame_steps, "classes": (int(lut[a + 1]), int(lut[b + 1]))})
        touching = now

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
    return frames, mask, info


# ----------------------------------------------------------------------------- dataset


def video_dir(data_root, split, vid):
    return Path(data_root) / split / f"video_{vid:05d}"


def _truth_path(data_root, vid):
    return Path(data_root) / TRUTH_DIR / f"video_{vid:05d}.npy"


def _is_done(data_root, split, vid):
    if not video_dir(data_root, split, vid).is_dir():
        return False
    return split != "hidden" or _truth_path(data_root, vid).is_file()


_SLOT = None  # (shared array of the video each worker is on, this worker's index); set by _worker_init


def _worker_init(started, current, keys):
    """Runs in each spawned worker once it has imported: counts it as started and gives it a slot in ``current``."""
    global _SLOT
    for k in keys:  # single-threaded numpy in the workers
        os.environ[k] = "1"
    with started.get_lock():
        slot = started.value
        started.value += 1
    _SLOT = (current, slot)


def _run_job(job, fn=None):
    """Worker entry: records the video it is on (so that a crash can be named), then runs ``fn`` on it
    (default ``_write_video``)."""
    if _SLOT is not None:
        _SLOT[0][_SLOT[1]] = job[2]
    if os.environ.get(CRASH_ENV) == str(job[2]):
        os._exit(7)
    out = (fn or _write_video)(job)
    if _SLOT is not None:
        _SLOT[0][_SLOT[1]] = -1
    return out


def _write_video(job):
    """Render one video into a temp folder beside its final place, then rename it."""
    data_root, split, vid, seed, cfg = job
    hidden = split == "hidden"
    T, n_in = cfg.n_frames, cfg.n_input
    frames, mask, _ = render_video(
        vid, seed, rgb_frames=range(n_in) if hidden else None, mask_frames=[T - 1] if hidden else None, cfg=cfg
    )
    final = video_dir(data_root, split, vid)
    truth = mask[T - 1].copy() if hidden else None
    if hidden:
        save_npy(_truth_path(data_root, vid), truth)  # before the folder: a complete folder has its truth
        if final.is_dir():  # only the truth was missing
            return split, vid, truth
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for t in range(n_in if hidden else T):
        Image.fromarray(frames[t]).save(tmp / f"image_{t}.png", compress_level=cfg.png_level)
    if not hidden:
        np.save(tmp / "mask.npy", mask)
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(tmp)  # another run finished this video first
    return split, vid, truth


def _write_one(job):
    """``_write_video`` in this process, an error naming the video."""
    try:
        return _write_video(job)
    except Exception as e:
        raise RuntimeError(f"generating {job[1]}/video_{job[2]:05d} failed: {type(e).__name__}: {e}") from e


def _clean_stale(split_dir):
    """Remove temp folders left by dead processes."""
    for d in split_dir.glob(".video_*.tmp-*"):
        try:
            pid = int(d.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
            alive = pid != os.getpid()
        except (ValueError, ProcessLookupError):
            alive = False
        except PermissionError:
            alive = True
        if not alive:
            shutil.rmtree(d, ignore_errors=True)


class _Pool:
    """Spawned worker processes (single-threaded numpy, one pybullet client each) that notice dead workers.

    ``run(jobs)`` yields results as they come. A worker that dies raises ``RuntimeError``: naming the videos the
    workers were on, or, when no worker ever finished starting (a script without the ``__main__`` guard: each
    spawned worker imports it and dies starting its own pool), saying to add the guard or use workers=1."""

    KEYS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

    def __init__(self, workers, fn=None):
        ctx = mp.get_context("spawn")
        self.workers, self.fn = workers, fn  # fn: the job function (module level), default _write_video
        self.started = ctx.Value("i", 0)
        self.current = ctx.Array("q", [-1] * workers)  # video id each worker slot is on
        saved = {k: os.environ.get(k) for k in self.KEYS}
        os.environ.update({k: "1" for k in self.KEYS})  # inherited by the workers as they start
        try:
            self.ex = ProcessPoolExecutor(
                workers, mp_context=ctx, initializer=_worker_init, initargs=(self.started, self.current, self.KEYS)
            )
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def run(self, jobs):
        names = {job[2]: f"{job[1]}/video_{job[2]:05d}" for job in jobs}
        todo = iter(jobs)
        running = {}
        try:
            while True:
                while len(running) < 2 * self.workers:  # a bounded queue: the in-flight jobs are known
                    job = next(todo, None)
                    if job is None:
                        break
                    running[self.ex.submit(_run_job, job, self.fn)] = job
                if not running:
                    return
                done, _ = wait(running, timeout=5.0, return_when=FIRST_COMPLETED)
                for fut in done:
                    job = running.pop(fut)
                    try:
                        yield fut.result()
                    except BrokenProcessPool as e:
                        raise self._broken(names, running, job) from e
                    except Exception as e:
                        raise RuntimeError(
                            f"generating {names[job[2]]} failed in a worker: {type(e).__name__}: {e}"
                        ) from e
        finally:
            self.ex.shutdown(wait=False, cancel_futures=True)

    def _broken(self, names, running, job):
        if self.started.value == 0:
            return RuntimeError(
                "synth.generate: the worker processes died while starting, before any video was made. When "
                'generate(..., workers>1) runs from a script, put the call under `if __name__ == "__main__":` '
                "(each spawned worker imports the script, and without the guard it calls generate again and dies), "
                "or use workers=1."
            )
        on = [names.get(int(v), f"video {int(v)}") for v in self.current[:] if v >= 0]
        if not on:
            on = [names[job[2]]]
        return RuntimeError(
            f"synth.generate: a worker process died (crashed or was killed) while generating {', '.join(on)}; "
            "rerun to resume (finished videos are kept), or run with workers=1 to see the error"
        )


def generate(data_root, counts=None, seed=0, workers=None, progress=True, **cfg_overrides):
    """Write (or complete) a synthetic dataset under `data_root` in the real layout; see the module doc.

    counts: split -> number of videos (default the real sizes). Existing complete videos are skipped.
    Returns {"written": {split: n}, "skipped": {split: n}, "seconds": s, "videos_per_s": v}.
    """
    from tqdm.auto import tqdm

    cfg = make_config(**cfg_overrides)
    counts = dict(REAL_COUNTS if counts is None else counts)
    check_counts(counts)
    root = Path(data_root)
    jobs, skipped = [], {s: 0 for s in counts}
    for split, n in counts.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        _clean_stale(root / split)
        for vid in range(SPLITS[split], SPLITS[split] + n):
            if _is_done(root, split, vid):
                skipped[split] += 1
            else:
                jobs.append((str(root), split, vid, seed, cfg))
    workers = min(workers or os.cpu_count() or 1, max(len(jobs), 1))
    written = {s: 0 for s in counts}
    truths = {}
    t0 = time.time()
    bar = tqdm(total=len(jobs), desc="synth videos", unit="video", mininterval=1.0, disable=not progress or not jobs)
    results = map(_write_one, jobs) if workers <= 1 else _Pool(workers).run(jobs)
    try:
        for split, vid, truth in results:
            written[split] += 1
            if truth is not None:
                truths[vid] = truth
            bar.update(1)
    finally:
        bar.close()
    seconds = time.time() - t0
    if counts.get("hidden", 0) > 0:
        ids = np.arange(SPLITS["hidden"], SPLITS["hidden"] + counts["hidden"], dtype=np.int64)
        masks = np.stack([truths[v] if v in truths else np.load(_truth_path(root, v)) for v in ids.tolist()])
        with atomic_path(root / "hidden_answers.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, ids=ids, masks=masks.astype(np.uint8))
    n = sum(written.values())
    return {
        "written": written,
        "skipped": skipped,
        "seconds": round(seconds, 2),
        "videos_per_s": round(n / seconds, 3) if n and seconds > 0 else 0.0,
        "workers": workers,
        "config": asdict(cfg),
    }


# ----------------------------------------------------------------------------- masks only (object dynamics)

MASK_FRAMES = tuple(range(11)) + (21,)  # the frames object tracks need: inputs 0-10 and the target 21
MASKS_CHUNK = 100  # videos per resumable chunk of ``generate_masks``


def extra_first_id(n_unlabeled=0):
    """The first id of extra masks-only videos: right after the ``n_unlabeled`` unlabeled videos a dataset
    has (``SYNTHETIC.json`` counts), so they are new videos of the unlabeled id range (2000..14999), never
    a train, val or hidden video."""
    return SPLITS["unlabeled"] + int(n_unlabeled)


def _render_masks_job(job):
    """One masks-only video: (vid, (len(MASK_FRAMES), H, W) uint8 masks of MASK_FRAMES)."""
    _, _, vid, seed, cfg = job
    _, mask, _ = render_video(vid, seed, rgb_frames=[], mask_frames=MASK_FRAMES, cfg=cfg, contacts=False)
    return vid, mask[list(MASK_FRAMES)]


def _masks_one(job):
    try:
        return _render_masks_job(job)
    except Exception as e:
        raise RuntimeError(f"rendering the masks of video_{job[2]:05d} failed: {type(e).__name__}: {e}") from e


def generate_masks(path, n, first_id, seed=0, workers=2, progress=True, chunk=MASKS_CHUNK, **cfg_overrides):
    """Masks-only videos ``first_id .. first_id + n - 1`` (seed ``seed``) as one (n, 22, 160, 240) uint8 ``.npy``
    at ``path``, for training the object dynamics model (``dynamics.train_dynamics`` takes it as an extra set,
    e.g. ``np.load(path, mmap_mode="r")``). Video N is the same video as ``render_video(N, seed)``; only the
    frames object tracks need are rendered (``MASK_FRAMES``: 0-10 and 21, about 0.1 s a video per core):
    FRAMES 11-20 ARE ZEROS. No RGB frames.

    The ids must lie in the unlabeled id range (``id_range("unlabeled")``: 2000..14999), so these are never
    train, val or hidden videos; ``extra_first_id(n_unlabeled)`` starts after the dataset's own unlabeled
    videos. Resumable: videos are rendered in chunks of ``chunk``, each written atomically to
    ``<path>.parts/``; a rerun keeps the finished chunks and renders the rest; the final file is written
    atomically (then the parts are removed) with a record ``<path>.json`` of its ids, seed and settings; an
    existing file is reused only when its record matches.
    With ``workers`` > 1 the renders run in spawned processes: call this under ``if __name__ == "__main__":``
    in a script (module doc). Returns the path.
    """
    from tqdm.auto import tqdm

    cfg = make_config(**cfg_overrides)
    path = Path(path)
    lo, hi = id_range("unlabeled")
    if n < 0 or first_id < lo or first_id + n > hi:
        raise ValueError(
            f"masks-only videos {first_id}..{first_id + n - 1} must lie in the unlabeled id range {lo}..{hi - 1} "
            "(never train, val or hidden videos)"
        )
    shape = (n, cfg.n_frames, cfg.height, cfg.width)
    cfg_hash = hashlib.sha1(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:8]
    key = f"seed{seed}_{cfg_hash}"  # chunks of another seed or config are never reused
    record = Path(f"{path}.json")  # what the file holds: reused only when it is these videos
    wanted = {"first_id": int(first_id), "n": int(n), "seed": int(seed), "config": cfg_hash}
    if path.is_file() and record.is_file() and json.loads(record.read_text()) == wanted:
        old = np.load(path, mmap_mode="r")
        if old.shape == shape and old.dtype == np.uint8:
            return path
    parts = path.parent / f"{path.name}.parts"
    parts.mkdir(parents=True, exist_ok=True)

    def part(s):
        return parts / f"{key}_{first_id + s:05d}_{min(chunk, n - s)}.npy"

    starts = list(range(0, n, chunk))
    todo = [s for s in starts if not part(s).is_file()]
    jobs = [(None, "masks", first_id + v, seed, cfg) for s in todo for v in range(s, min(s + chunk, n))]
    workers = min(workers or os.cpu_count() or 1, max(len(jobs), 1))
    bar = tqdm(total=n, initial=n - len(jobs), desc="synth masks", unit="video", disable=not progress)
    results = map(_masks_one, jobs) if workers <= 1 else _Pool(workers, _render_masks_job).run(jobs)
    got = {}
    try:
        for vid, m in results:
            got[vid - first_id] = m
            bar.update(1)
            s = (vid - first_id) // chunk * chunk
            rows = range(s, min(s + chunk, n))
            if all(r in got for r in rows):
                save_npy(part(s), np.stack([got.pop(r) for r in rows]))
    finally:
        bar.close()
    frames = list(MASK_FRAMES)
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        for s in starts:
            out[s : s + chunk, frames] = np.load(part(s))
        out.flush()
        del out
    save_json(record, wanted)
    shutil.rmtree(parts, ignore_errors=True)
    return path

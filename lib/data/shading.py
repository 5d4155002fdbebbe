"""The renderer of the synthetic videos: RGB frames and segmentation masks of a scene's state, drawn through
the config's camera (lib/data/scene.py simulates the scene; lib/data/synth.py writes the dataset).

pybullet's TinyRenderer gives the segmentation and depth buffers (at ``supersample`` x the frame size, 2x by
default); the objects are shaded here from their exact normals (matte rubber, shiny metal), the floor and its
soft shadows are drawn here, and each frame is box-downsampled from the render resolution. Masks come from the
same segmentation buffer, so they align with the frames exactly.

    renderer = Renderer(cfg)                  # cameras at the render and the final resolution, light, floor
    rgb, seg = renderer.draw(client, objs, with_rgb=True)   # objs: body uid -> (shape, material, colour)
"""

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from lib.common.classes import COLOR_RGB

# ----------------------------------------------------------------------------- camera


class Camera:
    """Pinhole camera of the config at `scale` x the frame size: pybullet matrices and projections."""

    def __init__(self, cfg, scale=1):
        import pybullet

        self.w, self.h = cfg.width * scale, cfg.height * scale
        el, az = math.radians(cfg.cam_elev), math.radians(cfg.cam_azim)
        target = np.array([0.0, cfg.cam_target_y, 0.0])
        eye = target + cfg.cam_dist * np.array(
            [math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)]
        )
        self.eye = eye
        self.view = pybullet.computeViewMatrix(eye.tolist(), target.tolist(), [0, 0, 1])
        self.proj = pybullet.computeProjectionMatrixFOV(cfg.fov, self.w / self.h, 0.5, 4 * cfg.cam_dist)
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


def _shadow_layer(cfg, cam, client, objs, light):
    """(h, w) float32 0..1 soft shadow of all objects on the floor, at the camera's resolution."""
    import pybullet

    img = Image.new("L", (cam.w, cam.h), 0)
    draw = ImageDraw.Draw(img)
    for uid, (shape, _, _) in objs.items():
        pos, quat = pybullet.getBasePositionAndOrientation(uid, physicsClientId=client)
        rot = np.array(pybullet.getMatrixFromQuaternion(quat)).reshape(3, 3)
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


def _shade_objects(cfg, cam, client, seg, depth, objs, light):
    """Deferred shading: (rows, cols, rgb 0..255) of the object pixels, from the depth buffer and the
    analytic normal of each object's shape. Rubber is matte; metal is darker, mirrors a soft
    environment in its own tint and has a sharp highlight."""
    import pybullet

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
        pos, quat = pybullet.getBasePositionAndOrientation(uid, physicsClientId=client)
        rot = np.array(pybullet.getMatrixFromQuaternion(quat), np.float32).reshape(3, 3)
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


class Renderer:
    """Draws the current state of a scene's bodies as one frame and its segmentation, at the config's size.

    ``cam`` renders at ``supersample`` x the frame size (scenes are planned in its pixels); ``cam1`` is the camera
    at the frame size, where the floor and its shadows are drawn."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.cam, self.cam1 = Camera(cfg, cfg.supersample), Camera(cfg, 1)  # render / final resolution
        light = np.array(cfg.light_dir, np.float64)
        light /= np.linalg.norm(light)
        self.light = light  # unit vector towards the light
        self.floor = _floor_map(cfg, self.cam1)

    def draw(self, client, objs, with_rgb=True):
        """(rgb uint8 (H, W, 3) or None, body uid of each pixel (H, W), -1 where there is none) of the bodies
        ``objs`` (uid -> (shape, material, colour)) of pybullet client ``client``. The uids are those of the
        render resolution, downsampled (``_downsample_mask``); the frame is blurred by ``cfg.blur``."""
        rgb, seg = self._render(client, objs, with_rgb)
        seg = _downsample_mask(seg, self.cfg.supersample)
        if rgb is not None:
            rgb = np.clip(_blur(rgb, self.cfg.blur) + 0.5, 0, 255).astype(np.uint8)
        return rgb, seg

    def _render(self, client, objs, with_rgb):
        """One frame: (rgb float (H, W, 3) or None, segmentation (h, w) of body uids at render resolution).

        The floor and its shadows are drawn at the final resolution, the objects at the render resolution;
        each final pixel is the box average of its sub-pixels (floor or object)."""
        import pybullet

        cfg, cam, cam1, light = self.cfg, self.cam, self.cam1, self.light
        _, _, _, depth, seg = pybullet.getCameraImage(
            cam.w, cam.h, cam.view, cam.proj, renderer=pybullet.ER_TINY_RENDERER, shadow=0, physicsClientId=client
        )
        seg = np.asarray(seg).reshape(cam.h, cam.w)
        if not with_rgb:
            return None, seg
        H, W, k = cfg.height, cfg.width, cfg.supersample
        rgb = self.floor * (1 - cfg.shadow * _shadow_layer(cfg, cam1, client, objs, light))[..., None]
        ii, jj, obj_rgb = _shade_objects(cfg, cam, client, seg, np.asarray(depth).reshape(cam.h, cam.w), objs, light)
        if k == 1:
            rgb[ii, jj] = obj_rgb
            return rgb, seg
        idx = (ii // k) * W + jj // k
        cover = np.bincount(idx, minlength=H * W).reshape(H, W, 1)
        obj_sum = np.stack([np.bincount(idx, obj_rgb[:, c], minlength=H * W) for c in range(3)], 1).reshape(H, W, 3)
        return (rgb * (k * k - cover) + obj_sum) / (k * k), seg

"""The camera and the object sizes of the re-simulating predictor, fitted from train masks alone.

Scale: masks cannot tell the world's absolute size, so the sphere radius is fixed at ``SPHERE_RADIUS`` (0.5 units)
and the camera's distance and the other sizes are fitted in those units. The camera's ``target_y`` is a translation
of the world along y and its ``azim`` a rotation of the world about the vertical: neither changes a mask, so both
are fixed at 0. Fitted: the camera's fov, elev and dist (lib/resim/camera.py), the cube half-extent, the cylinder
radius and height.

Observations (``observe``): the appearances of objects that are whole and unoccluded (inside the frame, one
8-connected blob, no other object's pixel next to it), each summed up by its area, centroid and second moments.
For a candidate camera and sizes an object is placed upright on the floor where its drawn silhouette has the
observed centroid, and the silhouette's area and second moments are compared with the observed ones
(``_residuals``). Silhouettes are exact polygons of what lib/resim/draw.py draws, pybullet's TinyRenderer: it
draws a convex primitive as the hull of its farthest points in 42 directions (``HULL_DIRS``), so a cube is exact,
a cylinder's rims become polygons of about 15 sides (1 % narrower) and a sphere a 42-vertex polyhedron (3.6 %
smaller; modelled as a true sphere ``SPHERE_SCALE`` times as large, its average over orientations).

The fit (``fit_camera``): spheres give a first camera (least squares from a broad start); cylinders then refine
its angles (``refine_camera``: spheres alone leave the field of view weakly determined) and the spheres set the
scale; finally, the camera fixed, the cylinders' and cubes' sizes (``fit_sizes``), each appearance of these at
the yaw of a grid that matches it best. On 40 generated videos (tests/unit/resim/test_fit_camera.py) the angles
come within 0.3 degree, the distance and the sizes within 1 %, in about 5 seconds on one core.

    fit = fit_camera(train_masks)          # (T, H, W) class-id mask videos
    fit.camera, fit.sizes                  # Camera(fov, elev, dist, 0, 0), {"sphere_radius": 0.5, ...}
    fit.to_json(run / "camera.json"); fit = CameraFit.from_json(run / "camera.json")
"""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage, optimize

from lib.common.classes import attributes
from lib.common.files import save_json
from lib.objects.tracks import at_edge, video_stats
from lib.resim.bodies import Sizes
from lib.resim.camera import Camera

SPHERE_RADIUS = 0.5  # the unit of the world: every other length is fitted relative to it
START = {"fov": 40.0, "elev": 45.0, "dist": 12.0}  # broad starting camera
N_RIM = 48  # points of a sphere's outline
MARGIN = 0.001  # pybullet's collision margin, which TinyRenderer's meshes of cylinders keep
N_DIRS = 128  # directions at which convex hulls are sampled
YAWS = {"cube": np.arange(0.0, 90.0, 3.0), "cylinder": np.arange(0.0, 360.0, 10.0)}  # yaws tried (degrees)
START_SIZES = {"cube": (0.5,), "cylinder": (0.5, 0.5)}  # as wide as the sphere; the fit does not depend on it
ROUNDS = 1  # rounds of (best yaw of each appearance, sizes) of ``fit_sizes``
REFINE_ROUNDS = 2  # rounds of (best yaw of each cylinder, camera and cylinder sizes) of ``refine_camera``
MIN_CYLINDERS = 20  # whole cylinders needed to refine the camera with them
# The point of pixel (0, 0) that TinyRenderer samples, in Camera.project's (x, y): masks drawn at 1x (draw.py)
# sit half a pixel right of and above Camera.project's pixel centres. Drawn at 2x and downsampled (the dataset)
# the point is about (0.25, 0.75); the quarter pixel moves the fit by under 0.2 degree.
PIXEL_POINT = (0.0, 1.0)
CENTRE_STEPS = 1  # placements that move a silhouette's centroid onto the observed one
FIELDS = ("cid", "video", "frame", "area", "centroid", "moments", "bbox")


@dataclass
class Observations:
    """Whole, unoccluded object appearances, one row each: class id, video index (in the list given to
    ``observe``), frame, area (px), centroid (x, y) in Camera.project's image coordinates (``observe``), central
    second moments (xx, xy, yy) in px^2 of the pixels as unit squares, and
    bbox (y0, x0, y1, x1) with y1, x1 exclusive."""

    cid: np.ndarray  # (n,) int
    video: np.ndarray  # (n,) int
    frame: np.ndarray  # (n,) int
    area: np.ndarray  # (n,) int
    centroid: np.ndarray  # (n, 2) float
    moments: np.ndarray  # (n, 3) float
    bbox: np.ndarray  # (n, 4) int

    def __len__(self):
        return len(self.cid)

    @property
    def shapes(self):
        """(n,) array of each row's shape name."""
        return np.array([attributes(int(c))[0] for c in self.cid])

    def subset(self, keep):
        """The rows selected by ``keep`` (boolean mask or indices)."""
        return Observations(*(getattr(self, f)[keep] for f in FIELDS))


def observe(masks_list, min_area=30, pixel_point=PIXEL_POINT):
    """``Observations`` of the whole, unoccluded objects (at least ``min_area`` pixels) of every frame of every
    (T, H, W) class-id mask video of ``masks_list``: objects that do not reach the image edge, form one
    8-connected blob and touch no pixel of another object (a partly hidden object touches the one in front).
    Pixel (i, j) stands for the point (j, i) + ``pixel_point`` of Camera.project's image coordinates."""
    rows = []
    eight = np.ones((3, 3), bool)
    for v, masks in enumerate(masks_list):
        masks = np.asarray(masks)
        for t, stats in enumerate(video_stats(masks)):
            for cid, (area, cy, cx, bbox) in stats.items():
                if area < min_area or at_edge(bbox, masks.shape[1:]):
                    continue
                y0, x0, y1, x1 = bbox
                crop = masks[t, y0 - 1 : y1 + 1, x0 - 1 : x1 + 1]  # a ring of 1 px around the bbox
                obj = crop == cid
                if ndimage.label(obj, structure=eight)[1] != 1:
                    continue
                if crop[ndimage.binary_dilation(obj, eight) & ~obj].any():
                    continue
                ys, xs = np.nonzero(obj)
                xs, ys = xs - xs.mean(), ys - ys.mean()
                mom = ((xs * xs).mean() + 1 / 12, (xs * ys).mean(), (ys * ys).mean() + 1 / 12)
                rows.append((cid, v, t, area, (cx + pixel_point[0], cy + pixel_point[1]), mom, bbox))
    cols = list(zip(*rows)) if rows else [[]] * len(FIELDS)
    dims = {"centroid": (-1, 2), "moments": (-1, 3), "bbox": (-1, 4)}
    return Observations(
        *(
            np.asarray(c, float if f in ("centroid", "moments") else int).reshape(dims.get(f, -1))
            for f, c in zip(FIELDS, cols)
        )
    )


# --------------------------------------------------------------------------------------------- silhouettes
def _hull(pts, n_dirs=N_DIRS):
    """(n, n_dirs, 2) vertices of the convex hull of each set of ``pts`` (n, k, 2), in order: the point that
    reaches farthest in each of ``n_dirs`` directions (repeats are edges of length 0; a vertex whose outer angle
    is under 360 / n_dirs degrees can be skipped, losing a sliver)."""
    a = np.linspace(0, 2 * np.pi, n_dirs, endpoint=False)
    best = (np.c_[np.cos(a), np.sin(a)] @ pts.transpose(0, 2, 1)).argmax(2)
    return np.take_along_axis(pts, best[..., None], 1)


def _polygon_moments(poly):
    """Area (n,), centroid (n, 2) and central second moments (n, 3) (xx, xy, yy) of polygons (n, k, 2) (either
    orientation)."""
    ref = poly.mean(1, keepdims=True)
    x, y = np.moveaxis(poly - ref, -1, 0)
    x1, y1 = np.roll(x, -1, 1), np.roll(y, -1, 1)
    c = x * y1 - x1 * y
    a = c.sum(1) / 2
    cx = ((x + x1) * c).sum(1) / (6 * a)
    cy = ((y + y1) * c).sum(1) / (6 * a)
    ixx = ((x * x + x * x1 + x1 * x1) * c).sum(1) / (12 * a)
    iyy = ((y * y + y * y1 + y1 * y1) * c).sum(1) / (12 * a)
    ixy = ((x * y1 + 2 * x * y + 2 * x1 * y1 + x1 * y) * c).sum(1) / (24 * a)
    mom = np.c_[ixx - cx * cx, ixy - cx * cy, iyy - cy * cy]
    return np.abs(a), np.c_[cx, cy] + ref[:, 0], mom


def _icosphere():
    """(42, 3) unit vectors: the 12 vertices of an icosahedron with a vertex at -z (its rings at azimuths 36 + 72k
    below, 72k above) and its 30 edge midpoints pushed out to the unit sphere. pybullet's TinyRenderer draws a
    convex primitive as the hull of its farthest points in these directions (Bullet's ``btShapeHull``)."""
    s = 1 / np.sqrt(5)
    a = np.radians(np.r_[36 + 72 * np.arange(5), 72 * np.arange(5)])
    v = np.r_[[[0, 0, -1.0], [0, 0, 1.0]], np.c_[2 * s * np.cos(a), 2 * s * np.sin(a), np.repeat([-s, s], 5)]]
    i, j = np.nonzero(np.triu(np.linalg.norm(v[:, None] - v[None], axis=2) < 1.1, 1))  # the 30 edges
    mid = v[i] + v[j]
    return np.r_[v, mid / np.linalg.norm(mid, axis=1, keepdims=True)]


HULL_DIRS = _icosphere()


def _drawn_mesh(points):
    """Vertices of the mesh pybullet's TinyRenderer draws for the convex hull of ``points`` (k, 3) (a cylinder's
    rims): in each of HULL_DIRS the farthest point (the first one on ties) pushed out by the 0.001 margin."""
    return points[(HULL_DIRS @ points.T).argmax(1)] + MARGIN * HULL_DIRS


def _sphere_scale(n=400):
    """Linear size of the silhouette of TinyRenderer's sphere (the hull of HULL_DIRS) relative to the true
    sphere's, averaged over ``n`` view directions spread over the sphere (about 0.96: its facets cut inside)."""
    k = np.arange(n) + 0.5
    z, a = 1 - 2 * k / n, np.pi * (1 + 5**0.5) * k
    view = np.c_[np.sqrt(1 - z * z) * np.cos(a), np.sqrt(1 - z * z) * np.sin(a), z]
    u = np.cross(view, [0.3, 0.5, 0.8])
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(view, u)
    flat = np.stack([HULL_DIRS @ u.T, HULL_DIRS @ v.T], -1).transpose(1, 0, 2)  # (n, 42, 2) orthographic views
    return float(np.sqrt(_polygon_moments(_hull(flat))[0] / np.pi).mean())


SPHERE_SCALE = _sphere_scale()


def _circle(n=N_RIM):
    """(n, 2) unit circle points, scaled so that the n-gon has the circle's area."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    k = np.sqrt(2 * np.pi / (n * np.sin(2 * np.pi / n)))
    return k * np.c_[np.cos(t), np.sin(t)]


def _rims(r, height):
    """(64, 3) points of the rims of a cylinder of radius ``r`` and ``height`` along z, as pybullet makes them
    (32 steps, angle from +y towards +x, top before bottom)."""
    t = 2 * np.pi * np.arange(32) / 32
    ring = np.c_[r * np.sin(t), r * np.cos(t)]
    return np.stack([np.c_[ring, np.full(32, height / 2)], np.c_[ring, np.full(32, -height / 2)]], 1).reshape(-1, 3)


def _to_plane(cam, xy, z):
    """(n, 3) world points at height ``z`` (n,) seen at pixels ``xy`` (n, 2)."""
    ndc = np.c_[2 * xy[:, 0] / cam.width - 1, 1 - 2 * xy[:, 1] / cam.height]
    ends = []
    for depth in (-1.0, 1.0):
        p = np.c_[ndc, np.full(len(xy), depth), np.ones(len(xy))] @ cam.inverse.T
        ends.append(p[:, :3] / p[:, 3:4])
    a, b = ends
    t = (a[:, 2] - z) / (a[:, 2] - b[:, 2])
    return a + t[:, None] * (b - a)


def _outline(cam, shape, centres, dims, yaw):
    """(n, k, 2) projected points whose convex hull is the silhouette TinyRenderer draws of each object of
    ``shape`` centred at ``centres`` (n, 3), of size ``dims`` (sphere: radius; cube: half-extent; cylinder: radius,
    height), turned by ``yaw`` (n,) radians about z. A sphere is drawn as a true sphere SPHERE_SCALE times as
    large, whose outline (the circle where the view cone touches it) is returned in order."""
    if shape == "sphere":
        r = SPHERE_SCALE * dims[0]
        w = cam.eye - centres
        d = np.linalg.norm(w, axis=1, keepdims=True)
        w = w / d
        u = np.cross(w, [0.0, 0.0, 1.0])
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        v = np.cross(w, u)
        rho = r * np.sqrt(1 - (r / d) ** 2)
        mid = centres + r * r / d * w
        ring = _circle()
        pts = mid[:, None] + rho[:, :, None] * (ring[None, :, :1] * u[:, None] + ring[None, :, 1:] * v[:, None])
    else:
        if shape == "cube":
            h = dims[0]
            local = np.array([[x, y, z] for x in (-h, h) for y in (-h, h) for z in (-h, h)])
        else:
            local = _drawn_mesh(_rims(*dims))
        c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
        z = np.broadcast_to(local[:, 2], (len(yaw), len(local)))
        pts = centres[:, None] + np.stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1], z], -1)
    return cam.project(pts.reshape(-1, 3)).reshape(len(centres), -1, 2)


def _centre_height(shape, dims):
    """Height of the centre of an upright object of ``shape`` and ``dims`` resting on the floor."""
    return dims[1] / 2 if shape == "cylinder" else dims[0]


def _silhouettes(cam, shape, dims, centroid, yaw, quick=False):
    """Area, centroid and moments (``_polygon_moments``) of the silhouettes of objects of ``shape`` and ``dims``
    resting on the floor, turned by ``yaw`` (n,), placed where their silhouettes' centroids are ``centroid``
    (n, 2): each starts below the observed centroid and moves CENTRE_STEPS times by the floor offset between the
    observed and the drawn centroid. ``quick``: no such step and hulls of half as many directions (to compare
    yaws: a silhouette's shape changes little over such offsets)."""
    z = np.full(len(centroid), _centre_height(shape, dims))
    target = _to_plane(cam, centroid, z)
    centres = target
    steps = 0 if quick else CENTRE_STEPS
    for step in range(steps + 1):
        pts = _outline(cam, shape, centres, dims, yaw)
        area, drawn, mom = _polygon_moments(pts if shape == "sphere" else _hull(pts, N_DIRS // (2 if quick else 1)))
        if step < steps:
            centres = centres + target - _to_plane(cam, drawn, z)
    return area, drawn, mom


def _residuals(cam, shape, dims, obs, yaw, quick=False):
    """(n, 4) differences (px) between the drawn and the observed silhouettes: sqrt(area), and the second
    moments divided by the observed size (sqrt of the moments' trace); large (not NaN) where nothing fits.
    ``quick``: ``_silhouettes``."""
    with np.errstate(invalid="ignore", divide="ignore"):  # cameras inside an object, empty silhouettes
        area, _, mom = _silhouettes(cam, shape, dims, obs.centroid, yaw, quick)
        size = np.sqrt(obs.moments[:, 0] + obs.moments[:, 2])[:, None]
        res = np.c_[np.sqrt(area) - np.sqrt(obs.area), (mom - obs.moments) / size]
    return np.nan_to_num(res, nan=100.0, posinf=100.0, neginf=-100.0)


def _best_yaws(cam, shape, dims, obs):
    """(n,) yaw (radians) of YAWS[shape] at which each observed silhouette is matched best (``_residuals``)."""
    n, yaws = len(obs), np.radians(YAWS[shape])
    rep = obs.subset(np.repeat(np.arange(n), len(yaws)))
    res = _residuals(cam, shape, dims, rep, np.tile(yaws, n), quick=True).reshape(n, len(yaws), -1)
    return yaws[(res**2).sum(2).argmin(1)]


def _solve(fun, x0, lo, hi):
    """Robust least squares (soft L1 beyond 0.5 px) of the residual rows ``fun(x)`` from ``x0`` within bounds."""
    r = optimize.least_squares(
        lambda x: fun(x).ravel(), x0, bounds=(lo, hi), diff_step=1e-3, loss="soft_l1", f_scale=0.5, x_scale="jac"
    )
    return r.x


def fit_sizes(cam, shape, obs, start=None, rounds=ROUNDS):
    """(dims, residuals) of ``shape`` ("cube": (half-extent,), "cylinder": (radius, height)) seen through ``cam``
    in ``obs`` (``Observations`` of that shape): fitted with every yaw 0, then ``rounds`` times each appearance's
    yaw is set to the one of YAWS[shape] that matches it best and the sizes are fitted again. ``start``:
    START_SIZES."""
    dims = np.asarray(START_SIZES[shape] if start is None else start, float)
    yaw = np.zeros(len(obs))
    for i in range(rounds + 1):
        if i:
            yaw = _best_yaws(cam, shape, dims, obs)
        dims = _solve(
            lambda d, yaw=yaw: _residuals(cam, shape, d, obs, yaw), dims, [0.05] * len(dims), [10.0] * len(dims)
        )
    return dims, _residuals(cam, shape, dims, obs, yaw)


def fit_sphere_camera(obs, frame):
    """(camera, residuals) of the spheres of ``obs`` (``Observations`` of spheres) in (H, W) ``frame``s: fov,
    elev and dist fitted from START, target_y and azim 0."""

    def res(p):
        return _residuals(_camera(p, frame), "sphere", (SPHERE_RADIUS,), obs, np.zeros(len(obs)))

    p = _solve(res, [START["fov"], START["elev"], START["dist"]], [5.0, 5.0, 1.0], [120.0, 89.0, 200.0])
    return _camera(p, frame), res(p)


def refine_camera(cam, spheres, cylinders, dims):
    """(camera, cylinder dims (radius, height)) refitted from ``cam`` and ``dims``: the camera's angles and the
    cylinders' height from the cylinders' silhouettes alone (radius fixed), first with every yaw 0, then
    REFINE_ROUNDS times from each cylinder's best yaw; then the scale from the spheres' areas. Cylinders pin the angles down better than
    spheres: their sides are vertical lines, whose slant and caps change with the view angle at first order,
    while a sphere's outline only stretches at second order, and TinyRenderer's faceted spheres look a little
    larger or smaller with the direction they are seen from, which biases the camera when many of them keep one
    orientation (spheres at rest)."""
    frame = (cam.height, cam.width)
    x, r = np.r_[cam.fov, cam.elev, cam.dist, dims[1]], dims[0]
    yaw = np.zeros(len(cylinders))
    for i in range(REFINE_ROUNDS + 1):
        if i:
            yaw = _best_yaws(_camera(x, frame), "cylinder", (r, x[3]), cylinders)
        x = _solve(
            lambda q, yaw=yaw: _residuals(_camera(q, frame), "cylinder", (r, q[3]), cylinders, yaw),
            x,
            [5.0, 5.0, 1.0, 0.05],
            [120.0, 89.0, 200.0, 10.0],
        )
    cam = _camera(x, frame)
    flat = np.zeros(len(spheres))
    (radius,) = _solve(lambda q: _residuals(cam, "sphere", q, spheres, flat)[:, :1], [r], [0.01], [100.0])
    k = SPHERE_RADIUS / radius  # the world scaled so that spheres have radius SPHERE_RADIUS
    return _camera([x[0], x[1], k * x[2]], frame), k * np.r_[r, x[3]]


def _camera(p, frame):
    """The camera of parameters ``p`` (fov, elev, dist) for (H, W) ``frame``s."""
    return Camera(fov=float(p[0]), elev=float(p[1]), dist=float(p[2]), target_y=0.0, height=frame[0], width=frame[1])


# --------------------------------------------------------------------------------------------- the fit
@dataclass(frozen=True)
class CameraFit:
    """The fitted camera (target_y and azim 0), object sizes in world units ({"sphere_radius": 0.5 (fixed),
    "cube_half", "cylinder_radius", "cylinder_height"}; NaN for a shape never seen whole), the median residual
    of each shape (px: the norm of an appearance's ``_residuals`` row), the appearances used per shape, and the
    seconds the fit took."""

    camera: Camera
    sizes: dict
    residual: dict
    n_obs: dict
    seconds: float

    def ratios(self):
        """The sizes relative to the sphere radius (the generator's own: cube 0.8, cylinder 1 and 2)."""
        return {k: v / self.sizes["sphere_radius"] for k, v in self.sizes.items() if k != "sphere_radius"}

    def body_sizes(self):
        """The sizes as lib/resim/bodies.py's ``Sizes`` (which takes the cylinder's half-height); a shape never seen
        whole (NaN) gets None there, the sphere's proportions."""
        z = {k: None if np.isnan(v) else v for k, v in self.sizes.items()}
        half = None if z["cylinder_height"] is None else z["cylinder_height"] / 2
        return Sizes(z["sphere_radius"], z["cube_half"], z["cylinder_radius"], half)

    def to_dict(self):
        """The fit as plain values (JSON's): the camera as its fields."""
        return {**asdict(self), "camera": asdict(self.camera)}

    @classmethod
    def from_dict(cls, d):
        """The fit a ``to_dict`` result holds."""
        return cls(**{**d, "camera": Camera(**d["camera"])})

    def to_json(self, path):
        """Write the fit to ``path`` as JSON."""
        save_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path):
        """The fit a ``to_json`` file holds."""
        return cls.from_dict(json.loads(Path(path).read_text()))


def fit_camera(masks_list, max_obs=300, min_area=30, seed=0, pixel_point=PIXEL_POINT):
    """``CameraFit`` of the (T, H, W) class-id mask videos ``masks_list`` (train): a first camera from the
    spheres, its angles refined with the cylinders (with at least MIN_CYLINDERS of them; else the spheres' camera
    stays), then the cylinders' and cubes' sizes. At most ``max_obs`` whole, unoccluded appearances of each shape
    are used (a random choice, ``seed``); ``min_area``, ``pixel_point``: ``observe``. Raises ValueError without
    spheres."""
    t0 = time.time()
    masks_list = list(masks_list)
    frame = np.asarray(masks_list[0]).shape[1:]
    obs = observe(masks_list, min_area, pixel_point)
    shapes, rng = obs.shapes, np.random.default_rng(seed)
    by_shape = {}
    for s in ("sphere", "cube", "cylinder"):
        idx = np.flatnonzero(shapes == s)
        by_shape[s] = obs.subset(np.sort(rng.choice(idx, min(max_obs, len(idx)), replace=False)))
    if not len(by_shape["sphere"]):
        raise ValueError("no whole, unoccluded sphere in the masks: the camera cannot be fitted")
    spheres, cylinders = by_shape["sphere"], by_shape["cylinder"]
    cam, _ = fit_sphere_camera(spheres, frame)
    dims = None
    if len(cylinders) >= MIN_CYLINDERS:
        dims, _ = fit_sizes(cam, "cylinder", cylinders)
        cam, dims = refine_camera(cam, spheres, cylinders, dims)
    nan = float("nan")
    sizes = {"sphere_radius": SPHERE_RADIUS, "cube_half": nan, "cylinder_radius": nan, "cylinder_height": nan}
    res = {"sphere": _residuals(cam, "sphere", (SPHERE_RADIUS,), spheres, np.zeros(len(spheres)))}
    if len(cylinders):
        (r, h), res["cylinder"] = fit_sizes(cam, "cylinder", cylinders, dims)
        sizes.update(cylinder_radius=float(r), cylinder_height=float(h))
    if len(by_shape["cube"]):
        (half,), res["cube"] = fit_sizes(cam, "cube", by_shape["cube"])
        sizes["cube_half"] = float(half)
    return CameraFit(
        camera=cam,
        sizes=sizes,
        residual={s: float(np.median(np.linalg.norm(r, axis=1))) for s, r in res.items()},
        n_obs={s: len(o) for s, o in by_shape.items()},
        seconds=time.time() - t0,
    )

"""Shapes that move: a per-object mask refinement on top of the object renderer (docs/objects.md).

``tracks.render`` pastes a rigid copy of each object's reference mask (last clean input frame) at its
predicted frame-22 place. Cubes and cylinders rotate, perspective changes the silhouette and objects are cut
by the border, so even at the true positions about 0.11 IoU is lost in the shapes (lib/objects/oracle.py).
This module learns that shape change in mask space, one object at a time:

- for each object the renderer places, a ``CROP`` x ``CROP`` window (native resolution, centred on the
  predicted centroid) holds 7 binary planes: the pasted reference mask; the object's masks of input frames
  10, 8 and 6, each moved to the predicted centroid and scaled like the paste; the other pasted objects drawn
  behind it and those drawn in front of it (render order); and "inside the frame". Per object also its shape
  and material one-hot, predicted displacement, log scale and predicted row (9 numbers);
- a tiny U-Net (``RefineNet``) gives residual logits; the object's logits are ``GAIN * (2 * pasted - 1) +
  residual`` and its last layer starts at zero, so an untrained refiner IS the renderer (pixel for pixel);
- objects are composited far to near in the renderer's order (predicted bottom row); pixels outside the
  crop keep the paste, pixels outside the frame are dropped.

Training target (``video_items``): the object's true frame-22 pixels in the crop; pixels outside the frame
or showing an object drawn in front of it (or one not predicted) are ignored (its hidden part is not known),
pixels of background or of objects behind it are negatives. Placements: the oracle's (true frame-22
centroid and scale, ``oracle_predictions``, so the target is the shape change alone) and optionally those
of a motion model (e.g. "physics"), so that the refiner sees position errors. The logit threshold is chosen
on held-out train videos (``choose_threshold``) and stored in best.pt. Measured effect: docs/objects.md.

    model, hist = train_refiner(train.masks, "runs/refine", size_b=0.00725)   # oracle placements only
    model = load_refiner("runs/refine/best.pt")
    mask22 = refine_render(model, masks[:11], preds, denoise=False)   # drop-in for tracks.render
    pred = predict_split_refined(model, masks, {"method": "physics", **settings}, min_area=20, denoise=True)
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from lib.common.classes import MATERIALS, SHAPES, attributes
from lib.common.files import torch_save
from lib.common.metrics import jaccard
from lib.common.trainer import EpochSampler, auto_device, read_checkpoint, seed_everything
from lib.objects import dynamics as D
from lib.objects import oracle as Q
from lib.objects import tracks as O

CROP = 64  # px: the window around each object (frame-22 objects are at most ~53 px across)
GAIN = 1.0  # logit of the paste: untrained (zero residual) = the renderer
HIST = (O.LAST_INPUT, O.LAST_INPUT - 2, O.LAST_INPUT - 4)  # input frames shown to the refiner
N_PLANES = 1 + len(HIST) + 3  # paste, history, others behind, others in front, inside the frame
N_FEATS = len(SHAPES) + len(MATERIALS) + 2 + 1 + 1
DISP_UNIT = 50.0
MOTION_KEYS = ("k", "decay", "decel", "size_b", "F", "restitution", "radius_scale", "mass_ratio")
DEFAULT_MODEL = {"crop": CROP, "gain": GAIN, "width": 12, "hist": list(HIST), "threshold": 0.0}
THRESHOLDS = (-0.8, -0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6, 0.8)  # |t| < GAIN: untrained stays the renderer


# ------------------------------------------------------------------------------------------- placement
def layers(masks_in, predictions, denoise=False, H=None, W=None):
    """The renderer's objects, far to near (``tracks.render_layers``)."""
    return O.render_layers(masks_in, predictions, H, W, denoise)


def _crop_plane(ny, nx, oy, ox, s):
    plane = np.zeros((s, s), np.uint8)
    ry, rx = ny - oy, nx - ox
    ok = (ry >= 0) & (ry < s) & (rx >= 0) & (rx < s)
    plane[ry[ok], rx[ok]] = 1
    return plane


def _origin(new_c, s):
    return int(np.rint(new_c[0])) - s // 2, int(np.rint(new_c[1])) - s // 2


def _features(layer, h):
    shape, material, _ = attributes(layer["cid"])
    p = layer["pred"]
    f = [float(shape == x) for x in SHAPES] + [float(material == x) for x in MATERIALS]
    d = np.asarray(p.disp, float) / DISP_UNIT
    f += [float(d[0]), float(d[1]), float(np.log(max(p.scale, 1e-3))), float(layer["new_c"][0] / h)]
    return f


def video_items(masks_in, predictions, denoise=False, true22=None, cfg=None):
    """The refiner's inputs for one video: {"layers": ``layers(...)`` of the drawable objects, "planes"
    (n, N_PLANES, S, S) uint8, "feats" (n, N_FEATS) float32, "origins" (n, 2) int, and with ``true22``
    "target" (n, S, S) int8 (1 object, 0 not, -1 ignored; module doc)}. Objects whose placement is empty
    (moved out of the frame, bad scale) are not drawable, as in the renderer."""
    cfg = dict(DEFAULT_MODEL, **(cfg or {}))
    s, hist = cfg["crop"], cfg["hist"]
    masks_in = np.asarray(masks_in)
    h, w = masks_in.shape[1:]
    lay = [la for la in layers(masks_in, predictions, denoise) if len(la["placed"][0])]
    n = len(lay)
    planes = np.zeros((n, N_PLANES, s, s), np.uint8)
    feats = np.zeros((n, N_FEATS), np.float32)
    origins = np.zeros((n, 2), np.int64)
    target = np.zeros((n, s, s), np.int8) if true22 is not None else None
    for i, la in enumerate(lay):
        oy, ox = _origin(la["new_c"], s)
        origins[i] = oy, ox
        planes[i, 0] = _crop_plane(*la["placed"], oy, ox, s)
        p = la["pred"]
        for j, t in enumerate(hist):
            ys, xs = O.object_pixels(masks_in, la["cid"], t, denoise)
            if len(ys):
                c = np.array([ys.mean(), xs.mean()])
                planes[i, 1 + j] = _crop_plane(*O._place(ys, xs, c, la["new_c"], p.scale, h, w), oy, ox, s)
        for j, other in enumerate(lay):
            if j != i:
                k = 1 + len(hist) + (0 if j < i else 1)
                planes[i, k] |= _crop_plane(*other["placed"], oy, ox, s)
        yy, xx = np.arange(oy, oy + s)[:, None], np.arange(ox, ox + s)[None, :]
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        planes[i, -1] = inside
        feats[i] = _features(la, h)
        if true22 is not None:
            win = np.zeros((s, s), np.int64)  # true ids in the crop (0 outside the frame; masked below)
            y0, y1, x0, x1 = max(oy, 0), min(oy + s, h), max(ox, 0), min(ox + s, w)
            if y0 < y1 and x0 < x1:
                win[y0 - oy : y1 - oy, x0 - ox : x1 - ox] = np.asarray(true22)[y0:y1, x0:x1]
            behind = [0] + [other["cid"] for other in lay[:i]]
            tgt = np.where(win == la["cid"], 1, np.where(np.isin(win, behind), 0, -1))
            tgt[~inside] = -1
            target[i] = tgt
    out = {"layers": lay, "planes": planes, "feats": feats, "origins": origins}
    if target is not None:
        out["target"] = target
    return out


# ----------------------------------------------------------------------------------------------- model
def _block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class RefineNet(nn.Module):
    """A three-level U-Net over one object's crop: planes (n, N_PLANES, S, S) and per-object features
    (n, N_FEATS) (broadcast as planes) -> the object's frame-22 logits (n, S, S), the paste's logit
    ``gain * (2 * paste - 1)`` plus a residual whose last layer is zero-initialised."""

    def __init__(self, cfg=None):
        super().__init__()
        self.cfg = dict(DEFAULT_MODEL, **(cfg or {}))
        w = self.cfg["width"]
        cin = 1 + len(self.cfg["hist"]) + 3 + N_FEATS
        self.enc1, self.enc2, self.mid = _block(cin, w), _block(w, 2 * w), _block(2 * w, 4 * w)
        self.dec2, self.dec1 = _block(4 * w + 2 * w, 2 * w), _block(2 * w + w, w)
        self.head = nn.Conv2d(w, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, planes, feats):
        x = planes.float()
        s = x.shape[-1]
        x = torch.cat([x, feats.float()[:, :, None, None].expand(-1, -1, s, s)], 1)
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(m, scale_factor=2.0), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0), e1], 1))
        return self.cfg["gain"] * (2 * planes[:, 0].float() - 1) + self.head(d1)[:, 0]


def build_model(cfg=None):
    return RefineNet(cfg)


def load_refiner(path, device="cpu"):
    """The model of a ``train_refiner`` checkpoint (best.pt / last.pt), its config restored."""
    ckpt = read_checkpoint(path, device)
    model = build_model(ckpt["config"]["model"])
    model.load_state_dict(ckpt["model"])
    return model.eval()


# ------------------------------------------------------------------------------------------- inference
def _composite(items, logits, h, w, threshold=0.0):
    out = np.zeros((h, w), np.uint8)
    s = logits.shape[-1] if len(logits) else 0
    for la, (oy, ox), lg in zip(items["layers"], items["origins"], logits):
        ny, nx = la["placed"]
        outside = (ny < oy) | (ny >= oy + s) | (nx < ox) | (nx >= ox + s)  # the paste beyond the crop stays
        out[ny[outside], nx[outside]] = la["cid"]
        ry, rx = np.nonzero(lg > threshold)
        ay, ax = ry + oy, rx + ox
        ok = (ay >= 0) & (ay < h) & (ax >= 0) & (ax < w)
        out[ay[ok], ax[ok]] = la["cid"]
    return out


@torch.no_grad()
def _logits(model, items, device="cpu", batch=256):
    if not len(items["planes"]):
        return np.zeros((0, 1, 1), np.float32)
    model.eval()
    res = []
    for i in range(0, len(items["planes"]), batch):
        p = torch.from_numpy(items["planes"][i : i + batch]).to(device)
        f = torch.from_numpy(items["feats"][i : i + batch]).to(device)
        res.append(model(p, f).float().cpu().numpy())
    return np.concatenate(res)


def refine_render(model, masks_in, predictions, denoise=False, device="cpu"):
    """The refined frame-22 (H, W) uint8 mask of one video: same contract as ``tracks.render(masks_in,
    predictions, denoise=...)`` (ids only from ``predictions``, far to near, nothing outside the frame).
    A pixel of an object's crop is the object where its logit exceeds ``model.cfg["threshold"]``."""
    masks_in = np.asarray(masks_in)
    items = video_items(masks_in, predictions, denoise, cfg=model.cfg)
    return _composite(items, _logits(model, items, device), *masks_in.shape[1:], model.cfg.get("threshold", 0.0))


def _split_logits(model, inputs, predictions, denoise=False, device="cpu", progress=False):
    """([video_items per video], [logits per video]); the objects of all videos go through the network in
    shared batches."""
    its = [
        video_items(np.asarray(inputs[i][: O.LAST_INPUT + 1]), predictions[i], denoise, cfg=model.cfg)
        for i in tqdm(range(len(inputs)), desc="refine", disable=not progress, unit="video")
    ]
    counts = [len(it["planes"]) for it in its]
    s = model.cfg["crop"]
    allp = np.concatenate([it["planes"] for it in its]) if sum(counts) else np.zeros((0, N_PLANES, s, s), np.uint8)
    allf = np.concatenate([it["feats"] for it in its]) if sum(counts) else np.zeros((0, N_FEATS), np.float32)
    lg = _logits(model, {"planes": allp, "feats": allf}, device)
    return its, np.split(lg, np.cumsum(counts)[:-1]) if len(its) else []


def refine_split(model, inputs, predictions, denoise=False, device="cpu", progress=False, threshold=None):
    """(N, H, W) uint8 refined masks (``refine_render`` of each video) of (N, >=11, H, W) inputs and a list of N
    {cid: ObjectPrediction}. ``threshold``: default ``model.cfg["threshold"]``."""
    h, w = np.asarray(inputs[0]).shape[1:]
    thr = model.cfg.get("threshold", 0.0) if threshold is None else threshold
    its, lgs = _split_logits(model, inputs, predictions, denoise, device, progress)
    out = np.empty((len(inputs), h, w), np.uint8)
    for i, (it, lg) in enumerate(zip(its, lgs)):
        out[i] = _composite(it, lg, h, w, thr)
    return out


def choose_threshold(model, inputs, predictions, true22, thresholds=THRESHOLDS, device="cpu"):
    """(best threshold, {threshold: IoU}): the logit threshold that maximises the stacked frame-22 IoU of the
    refined masks against ``true22`` (N, H, W). Use TRAIN videos (``train_refiner`` uses its held-out ones)."""
    h, w = np.asarray(true22).shape[1:]
    its, lgs = _split_logits(model, inputs, predictions, device=device)
    scores = {}
    for t in thresholds:
        pred = np.stack([_composite(it, lg, h, w, float(t)) for it, lg in zip(its, lgs)])
        scores[float(t)] = float(jaccard(pred, true22)[0])
    best = max(scores, key=lambda t: (scores[t], -abs(t)))
    return best, scores


def motion_predictions(masks_in, motion, min_area=1, denoise=False, area_ratio=0.75):
    """{cid: ObjectPrediction} of a motion model for one video; ``motion``: {"method": ..., settings}
    (e.g. the "physics" settings of notebook 06; keys other than ``MOTION_KEYS`` are ignored)."""
    masks_in = np.asarray(masks_in)[: O.LAST_INPUT + 1]
    kw = {k: motion[k] for k in MOTION_KEYS if k in motion}
    tr = O.tracks(masks_in, min_area, area_ratio, kw.get("size_b", 0.0), denoise)
    return O.predict_from_tracks(tr, motion.get("method", "physics"), shape=masks_in.shape[1:], **kw)


def predict_split_refined(model, masks, motion, min_area=1, denoise=False, device="cpu", progress=False):
    """(N, H, W) refined frame-22 masks of (N, >=11, H, W) input masks, objects placed by ``motion``."""
    preds = [motion_predictions(masks[i], motion, min_area, denoise) for i in range(len(masks))]
    return refine_split(model, masks, preds, denoise, device, progress)


# -------------------------------------------------------------------------------------------- training
def build_dataset(masks, rows, size_b, motion=None, cfg=None, progress=True, desc="refine data"):
    """Training crops of the videos ``rows`` of true masks (N, 22, H, W): for each video the oracle's
    placement and, with ``motion``, the motion model's. Returns dict of stacked arrays."""
    planes, feats, target = [], [], []
    for i in tqdm(rows, desc=desc, disable=not progress, unit="video"):
        v = np.asarray(masks[i])
        placements = [Q.oracle_predictions(v[: O.LAST_INPUT + 1], v, size_b)]
        if motion is not None:
            placements.append(motion_predictions(v, motion))
        for preds in placements:
            it = video_items(v[: O.LAST_INPUT + 1], preds, true22=v[O.TARGET], cfg=cfg)
            planes.append(it["planes"])
            feats.append(it["feats"])
            target.append(it["target"])
    return {"planes": np.concatenate(planes), "feats": np.concatenate(feats), "target": np.concatenate(target)}


class _Crops(torch.utils.data.Dataset):
    def __init__(self, d):
        self.d = d

    def __len__(self):
        return len(self.d["planes"])

    def __getitem__(self, i):
        return {k: torch.from_numpy(np.asarray(v[i])) for k, v in self.d.items()}


def refine_loss(model, batch, device, flip=True):
    """Binary cross-entropy of the object's logits over the crop's non-ignored pixels; with ``flip`` half the
    batch is mirrored left-right (the horizontal displacement feature negated)."""
    p, f, t = (batch[k].to(device) for k in ("planes", "feats", "target"))
    if flip and model.training:
        sel = torch.rand(len(p), device=device) < 0.5
        p = torch.where(sel[:, None, None, None], p.flip(-1), p)
        t = torch.where(sel[:, None, None], t.flip(-1), t)
        f = f.clone()
        f[sel, len(SHAPES) + len(MATERIALS) + 1] *= -1
    valid = t >= 0
    logits = model(p, f)
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[valid], t[valid].float())


def train_refiner(
    train_masks,
    out_dir,
    size_b=0.0,
    motion=None,
    epochs=6,
    cfg=None,
    batch_size=8,
    lr=3e-3,
    weight_decay=1e-4,
    heldout=40,
    seed=0,
    device=None,
    progress=True,
    resume=True,
    data=None,
    choose=True,
):
    """Trains ``RefineNet`` with ``lib.common.trainer.fit`` on TRUE train masks (N, 22, H, W); returns (model
    with the best weights, history). Crops come from the oracle's placements and, with ``motion`` (e.g.
    {"method": "physics", **settings}), also from that motion model's. ``heldout`` train videos (a seeded
    subset, at most a fifth) are kept out to monitor ``val_iou``: frame-22 IoU of the refined render at the
    oracle's placements (also logged: the renderer's IoU there, and both at the motion model's placements).
    Checkpoints ``best.pt`` / ``last.pt`` carry the config (``load_refiner``). With ``choose``, the logit
    threshold (``choose_threshold`` over ``THRESHOLDS``) is then chosen on the held-out videos at the oracle's
    placements and written into best.pt's config."""
    device = auto_device(device)
    n = len(train_masks)
    held, keep = D.heldout_split(n, heldout, seed)
    mcfg = dict(DEFAULT_MODEL, **(cfg or {}))
    d = build_dataset(train_masks, keep, size_b, motion, mcfg, progress)
    if not len(d["planes"]):
        raise ValueError("no training objects")
    held_in = [np.asarray(train_masks[i, : O.LAST_INPUT + 1]) for i in held]
    held_true = np.stack([np.asarray(train_masks[i, O.TARGET]) for i in held]) if len(held) else None
    placements = {}
    if len(held):
        placements["oracle"] = [
            Q.oracle_predictions(v, np.asarray(train_masks[i]), size_b) for v, i in zip(held_in, held)
        ]
        if motion is not None:
            placements["motion"] = [motion_predictions(v, motion) for v in held_in]
    base = {
        k: jaccard(np.stack([O.render(v, p) for v, p in zip(held_in, ps)]), held_true)[0]
        for k, ps in placements.items()
    }

    def evaluate(model, dev):
        out = {}
        for k, ps in placements.items():
            iou = jaccard(refine_split(model, held_in, ps, device=dev), held_true)[0]
            out["val_iou" if k == "oracle" else f"{k}_iou"] = iou
            out[f"{k}_render_iou"] = base[k]
        return out

    seed_everything(seed)
    model = build_model(mcfg)
    loader = torch.utils.data.DataLoader(
        _Crops(d), batch_size=batch_size, sampler=EpochSampler(len(d["planes"]), shuffle=True, seed=seed)
    )
    config = {
        "model": model.cfg,
        "train_videos": int(n),
        "heldout": int(len(held)),
        "objects": int(len(d["planes"])),
        "size_b": float(size_b),
        "motion": motion,
    }
    history = D.fit_object_model(
        model,
        loader,
        refine_loss,
        evaluate if len(held) else None,
        out_dir,
        config,
        epochs,
        lr,
        weight_decay,
        device,
        progress,
        seed,
        resume,
        data,
    )
    best = Path(out_dir) / "best.pt"
    if best.is_file():
        ckpt = read_checkpoint(best)
        model.load_state_dict(ckpt["model"])
        if choose and len(held):  # the logit threshold, on the held-out train videos; stored in best.pt
            thr, scores = choose_threshold(model.eval(), held_in, placements["oracle"], held_true, device=device)
            model.cfg["threshold"] = thr
            ckpt["config"]["model"]["threshold"] = thr
            ckpt["threshold_scores"] = {str(k): v for k, v in scores.items()}
            torch_save(best, ckpt)
            if progress:
                print(f"[refine] threshold {thr} (held-out train IoU {scores[thr]:.4f}; at 0: {scores[0.0]:.4f})")
    return model.eval(), history

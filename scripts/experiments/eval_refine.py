"""Shapes that move: a per-object mask refinement on top of the object renderer, against the oracles, on val.

    python scripts/experiments/eval_refine.py --data-root data/embedded --labels runs/cpu-1/labels/val.npy \
        --settings runs/cpu-1/metrics/06_objects.json --train-dir runs/refine [--epochs 6] [--out results.json]
    python scripts/experiments/eval_refine.py ... --tiny        # a fast smoke test (few videos, one epoch)

An experiment that was not adopted (docs/objects.md has its numbers); its model lives here, in the script, which
is therefore about 600 lines: the refiner (inputs, network, training, threshold), then the evaluation.

The refiner. ``render.render`` pastes a rigid copy of each object's reference mask (last clean input frame) at its
predicted frame-22 place. Cubes and cylinders rotate, perspective changes the silhouette and objects are cut
by the border, so even at the true positions about 0.11 IoU is lost in the shapes (lib/objects/oracle.py).
The refiner learns that shape change in mask space, one object at a time:

- for each object the renderer places, a ``CROP`` x ``CROP`` window (native resolution, centred on the
  predicted centroid) holds 7 binary planes: the pasted reference mask; the object's masks of input frames
  10, 8 and 6, each moved to the predicted centroid and scaled like the paste; the other pasted objects drawn
  behind it and those drawn in front of it (render order); and "inside the frame". Per object also its shape
  and material one-hot, predicted displacement, log scale and predicted row (9 numbers);
- a tiny U-Net (``RefineNet``) gives residual logits; the object's logits are ``GAIN * (2 * pasted - 1) +
  residual`` and its last layer starts at zero, so an untrained refiner IS the renderer (pixel for pixel;
  the script checks it on val: ``untrained_is_renderer``);
- objects are composited far to near in the renderer's order (predicted bottom row); pixels outside the
  crop keep the paste, pixels outside the frame are dropped.

Training target (``video_items``): the object's true frame-22 pixels in the crop; pixels outside the frame
or showing an object drawn in front of it (or one not predicted) are ignored (its hidden part is not known),
pixels of background or of objects behind it are negatives. Placements: the oracle's (true frame-22
centroid and scale, ``oracle.oracle_predictions``, so the target is the shape change alone) and with
``--motion-train`` also the physics model's, so that the refiner sees position errors. The logit threshold is
chosen on held-out TRAIN videos (``choose_threshold``) and stored in best.pt.

The evaluation: the refiner is trained on TRUE train masks (resumes / reuses ``--train-dir``), then scored on
val (never trained on or selected on), for true inputs and U-Net inputs (``min_area=20, denoise=True``):
(1) at the oracle's positions: the position oracle (+ entrants) with the renderer vs with the refiner, and the
    true-shapes oracle; the share of the shape gap (entrants -> true shapes) the refiner closes;
(2) at the physics model's predicted positions: the renderer vs the refiner.
Metric: lib.common.metrics.jaccard over the stacked frame-22 masks, 95% bootstrap intervals over videos and
paired bootstrap differences.
"""

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from lib.common.checkpoint import read_checkpoint
from lib.common.classes import MATERIALS, SHAPES, attributes
from lib.common.device import auto_device
from lib.common.files import save_json, torch_save
from lib.common.metrics import bootstrap_ci, bootstrap_diff_ci, jaccard, per_video_confusion, stacked_iou
from lib.common.rng import seed_everything
from lib.common.trainer import EpochSampler
from lib.data import dataset as data
from lib.objects import learned, motion, oracle, render, tracks
from lib.objects.motion import MotionSettings

CROP = 64  # px: the window around each object (frame-22 objects are at most ~53 px across)
GAIN = 1.0  # logit of the paste: untrained (zero residual) = the renderer
HIST = (tracks.LAST_INPUT, tracks.LAST_INPUT - 2, tracks.LAST_INPUT - 4)  # input frames shown to the refiner
N_PLANES = 1 + len(HIST) + 3  # paste, history, others behind, others in front, inside the frame
N_FEATS = len(SHAPES) + len(MATERIALS) + 2 + 1 + 1
DISP_UNIT = 50.0
DEFAULT_MODEL = {"crop": CROP, "gain": GAIN, "width": 12, "hist": list(HIST), "threshold": 0.0}
THRESHOLDS = (-0.8, -0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6, 0.8)  # |t| < GAIN: untrained stays the renderer


# ------------------------------------------------------------------------------------------- placement
def layers(masks_in, predictions, denoise=False, H=None, W=None):
    """The renderer's objects, far to near (``render.render_layers``)."""
    return render.render_layers(masks_in, predictions, H, W, denoise)


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
            ys, xs = render.object_pixels(masks_in, la["cid"], t, denoise)
            if len(ys):
                c = np.array([ys.mean(), xs.mean()])
                planes[i, 1 + j] = _crop_plane(*render.place(ys, xs, c, la["new_c"], p.scale, h, w), oy, ox, s)
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


def _split_logits(model, inputs, predictions, denoise=False, device="cpu", progress=False):
    """([video_items per video], [logits per video]); the objects of all videos go through the network in
    shared batches."""
    its = [
        video_items(np.asarray(inputs[i][: tracks.LAST_INPUT + 1]), predictions[i], denoise, cfg=model.cfg)
        for i in tqdm(range(len(inputs)), desc="refine", disable=not progress, unit="video")
    ]
    counts = [len(it["planes"]) for it in its]
    s = model.cfg["crop"]
    allp = np.concatenate([it["planes"] for it in its]) if sum(counts) else np.zeros((0, N_PLANES, s, s), np.uint8)
    allf = np.concatenate([it["feats"] for it in its]) if sum(counts) else np.zeros((0, N_FEATS), np.float32)
    lg = _logits(model, {"planes": allp, "feats": allf}, device)
    return its, np.split(lg, np.cumsum(counts)[:-1]) if len(its) else []


def refine_split(model, inputs, predictions, denoise=False, device="cpu", progress=False, threshold=None):
    """(N, H, W) uint8 refined masks of (N, >=11, H, W) inputs and a list of N {cid: ObjectPrediction}: the
    contract of ``render.render`` (ids only from the predictions, far to near, nothing outside the frame); a pixel
    of an object's crop is the object where its logit exceeds ``threshold`` (default ``model.cfg["threshold"]``)."""
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


def motion_predictions(masks_in, settings):
    """{cid: ObjectPrediction} of a motion model (``motion.MotionSettings``, with how it reads inputs) for one
    video."""
    masks_in = np.asarray(masks_in)[: tracks.LAST_INPUT + 1]
    tr = tracks.tracks(masks_in, settings.min_area, settings.area_ratio, settings.size_b, settings.denoise)
    return motion.predict_from_tracks(tr, settings, shape=masks_in.shape[1:])


# -------------------------------------------------------------------------------------------- training
def build_dataset(masks, rows, size_b, motion_settings=None, cfg=None, progress=True, desc="refine data"):
    """Training crops of the videos ``rows`` of true masks (N, 22, H, W): for each video the oracle's
    placement and, with ``motion_settings``, the motion model's. Returns dict of stacked arrays."""
    planes, feats, target = [], [], []
    for i in tqdm(rows, desc=desc, disable=not progress, unit="video"):
        v = np.asarray(masks[i])
        placements = [oracle.oracle_predictions(v[: tracks.LAST_INPUT + 1], v, size_b)]
        if motion_settings is not None:
            placements.append(motion_predictions(v, motion_settings))
        for preds in placements:
            it = video_items(v[: tracks.LAST_INPUT + 1], preds, true22=v[tracks.TARGET], cfg=cfg)
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
    *,
    size_b=0.0,
    motion_settings=None,
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
    with the best weights, history). Crops come from the oracle's placements and, with ``motion_settings`` (e.g.
    notebook 06's physics), also from that motion model's. ``heldout`` train videos (a seeded
    subset, at most a fifth) are kept out to monitor ``val_iou``: frame-22 IoU of the refined render at the
    oracle's placements (also logged: the renderer's IoU there, and both at the motion model's placements).
    Checkpoints ``best.pt`` / ``last.pt`` carry the config (``load_refiner``). With ``choose``, the logit
    threshold (``choose_threshold`` over ``THRESHOLDS``) is then chosen on the held-out videos at the oracle's
    placements and written into best.pt's config."""
    device = auto_device(device)
    n = len(train_masks)
    held, keep = learned.heldout_split(n, heldout, seed)
    mcfg = dict(DEFAULT_MODEL, **(cfg or {}))
    d = build_dataset(train_masks, keep, size_b, motion_settings, mcfg, progress)
    if not len(d["planes"]):
        raise ValueError("no training objects")
    held_in = [np.asarray(train_masks[i, : tracks.LAST_INPUT + 1]) for i in held]
    held_true = np.stack([np.asarray(train_masks[i, tracks.TARGET]) for i in held]) if len(held) else None
    placements = {}
    if len(held):
        placements["oracle"] = [
            oracle.oracle_predictions(v, np.asarray(train_masks[i]), size_b) for v, i in zip(held_in, held)
        ]
        if motion_settings is not None:
            placements["motion"] = [motion_predictions(v, motion_settings) for v in held_in]
    base = {
        k: jaccard(np.stack([render.render(v, p) for v, p in zip(held_in, ps)]), held_true)[0]
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
        "motion": None if motion_settings is None else asdict(motion_settings),
    }
    history = learned.fit_object_model(
        model,
        loader,
        refine_loss,
        evaluate if len(held) else None,
        out_dir,
        config,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        device=device,
        progress=progress,
        seed=seed,
        resume=resume,
        data=data,
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


# ------------------------------------------------------------------------------------------- the script
def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--labels", default=None, help="U-Net labels of val, (N, 22, H, W) .npy")
    ap.add_argument("--settings", default=None, help='JSON with "settings" -> "physics" (notebook 06 metrics)')
    ap.add_argument("--size-b", type=float, default=None, help="size model slope (default: from --settings)")
    ap.add_argument("--train-dir", default=None, help="refiner checkpoints (default: a temp dir)")
    ap.add_argument("--checkpoint", default=None, help="use this trained refiner, do not train")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--gain", type=float, default=None, help="logit of the paste (default GAIN)")
    ap.add_argument(
        "--motion-train",
        action="store_true",
        help="also train on the physics model's placements (default: oracle only)",
    )
    ap.add_argument("--val-videos", type=int, default=None)
    ap.add_argument("--train-videos", type=int, default=None)
    ap.add_argument("--tiny", action="store_true", help="smoke test: 20 train, 10 val videos, 1 epoch")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    torch.set_num_threads(args.threads)
    if args.tiny:
        args.train_videos, args.val_videos, args.epochs, args.n_boot = 20, 10, 1, 200
    t0 = time.time()
    train = data.load_split(args.data_root, "train", progress=False)
    val = data.load_split(args.data_root, "val", progress=False)
    if args.settings:  # notebook 06's physics
        phys = MotionSettings.from_config(json.loads(Path(args.settings).read_text())["settings"]["physics"])
        phys = replace(phys, method="physics")
    else:  # no fitted settings: k 3, decel 0.2 and no floor camera (F None), i.e. deceleration in image px
        phys = MotionSettings("physics", k=3, decel=0.2, F=None)
    size_b = float(args.size_b if args.size_b is not None else phys.size_b)
    phys = replace(phys, size_b=size_b, **motion.reading("true"))
    n_tr = min(args.train_videos or len(train), len(train))
    n_val = min(args.val_videos or len(val), len(val))
    train_masks = train.masks[:n_tr]

    # ----- the refiner (train split only)
    t1 = time.time()
    if args.checkpoint:
        model, hist, train_s = load_refiner(args.checkpoint), None, None
    else:
        import tempfile

        out_dir = args.train_dir or tempfile.mkdtemp(prefix="refine_")
        model, hist = train_refiner(
            train_masks,
            out_dir,
            size_b=size_b,
            motion_settings=phys if args.motion_train else None,
            epochs=args.epochs,
            cfg=None if args.gain is None else {"gain": args.gain},
            lr=args.lr,
            batch_size=args.batch_size,
            seed=args.seed,
            device="cpu",
            progress=False,
            resume=bool(args.train_dir),
        )
        train_s = time.time() - t1
        for row in hist:  # the held-out numbers are missing when train is too small to hold videos out
            print("  " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        print(
            f"refiner trained on {n_tr} train videos in {train_s:.0f}s; logit threshold "
            f"{model.cfg.get('threshold', 0.0)} (held-out train); checkpoints in {out_dir}",
            flush=True,
        )

    # ----- val
    val_true = np.asarray(val.masks[:n_val])
    true22 = val_true[:, tracks.TARGET]
    inputs = {"true": np.asarray(val.masks[:n_val, : tracks.LAST_INPUT + 1])}
    if args.labels and Path(args.labels).is_file():
        lab = np.load(args.labels, mmap_mode="r")
        ids_file = Path(args.labels).with_suffix(".ids.npy")
        if ids_file.is_file() and not np.array_equal(np.load(ids_file), val.ids):
            raise SystemExit(f"{ids_file} does not list the val split's videos")
        inputs["unet"] = np.asarray(lab[:n_val, : tracks.LAST_INPUT + 1])
    results, speed = {}, {}
    for src, x in inputs.items():
        kw = motion.reading(src)
        denoise = kw["denoise"]
        orc = [oracle.oracle_predictions(x[i], val_true[i], size_b, **kw) for i in range(n_val)]
        t2 = time.time()
        mot = [motion_predictions(x[i], phys.for_inputs(src)) for i in range(n_val)]
        t_motion = time.time() - t2
        ent = np.zeros_like(true22)
        for i in range(n_val):
            e = oracle.entrant_ids(val_true[i])
            ent[i] = np.where(np.isin(true22[i], e), true22[i], 0)

        def with_entrants(pred, ent=ent):
            return np.where(ent > 0, ent, pred)

        pos = np.stack([render.render(x[i], orc[i], denoise=denoise) for i in range(n_val)])
        pos_ref = refine_split(model, x, orc, denoise)
        t3 = time.time()
        phy = np.stack([render.render(x[i], mot[i], denoise=denoise) for i in range(n_val)])
        t_render = time.time() - t3
        t4 = time.time()
        phy_ref = refine_split(model, x, mot, denoise)
        t_refine = time.time() - t4
        speed[src] = {
            "videos": n_val,
            "physics_s": t_motion,
            "render_s": t_render,
            "refine_s": t_refine,
            "refine_videos_per_s": n_val / t_refine,
        }
        rows = {
            "oracle position": pos,
            "oracle position + refine": pos_ref,
            "oracle position + entrants": with_entrants(pos),
            "oracle position + entrants + refine": with_entrants(pos_ref),
            "oracle true shapes": oracle.oracle_split(x, val_true, "shapes", size_b=size_b, **kw),
            "physics": phy,
            "physics + refine": phy_ref,
        }
        cms = {k: per_video_confusion(v, true22) for k, v in rows.items()}
        res = {
            "rows": {
                k: {"iou": float(stacked_iou(c.sum(0))), "ci": bootstrap_ci(c, args.n_boot, seed=args.seed)}
                for k, c in cms.items()
            },
            "diffs": {},
        }
        for a, b in [
            ("oracle position + refine", "oracle position"),
            ("oracle position + entrants + refine", "oracle position + entrants"),
            ("oracle true shapes", "oracle position + entrants"),
            ("physics + refine", "physics"),
        ]:
            res["diffs"][f"{a} - {b}"] = bootstrap_diff_ci(cms[a], cms[b], args.n_boot, seed=args.seed)
        r = res["rows"]
        gap = r["oracle true shapes"]["iou"] - r["oracle position + entrants"]["iou"]
        gain = r["oracle position + entrants + refine"]["iou"] - r["oracle position + entrants"]["iou"]
        res["shape_gap_closed"] = float(gain / gap) if gap > 0 else float("nan")
        # the refiner's contract: untrained (zero residual) it draws what the renderer draws, pixel for pixel
        few = min(n_val, 10)
        untrained = refine_split(build_model(dict(model.cfg)), x[:few], orc[:few], denoise)
        res["untrained_is_renderer"] = bool(np.array_equal(untrained, pos[:few]))
        results[src] = res

    print(f"\nval {n_val} videos; train {n_tr} videos; size_b {size_b}; physics {phys}")
    print("\n| predictor | " + " | ".join(f"val IoU ({s} inputs) [95% CI]" for s in results) + " |")
    print("|---|" + "---|" * len(results))
    for part, key, sign in (("rows", "iou", ""), ("diffs", "diff", "+")):  # scores, then paired differences
        for name in results["true"][part]:
            cells = [r[part][name] for r in results.values()]
            cells = [f"{c[key]:{sign}.4f} [{c['ci'][0]:{sign}.4f}, {c['ci'][1]:{sign}.4f}]" for c in cells]
            print(f"| {name} | " + " | ".join(cells) + " |")
    print(
        "| share of the shape gap closed | "
        + " | ".join(f"{r['shape_gap_closed']:.3f}" for r in results.values())
        + " |"
    )
    for src, s in speed.items():
        print(
            f"{src}: refine {s['refine_s']:.1f}s for {s['videos']} videos ({s['refine_videos_per_s']:.1f} videos/s); "
            f"render {s['render_s']:.1f}s; physics predictions {s['physics_s']:.1f}s"
        )
    if args.out:
        save_json(
            args.out,
            {
                "val_videos": n_val,
                "train_videos": n_tr,
                "size_b": size_b,
                "physics": asdict(phys),
                "epochs": args.epochs,
                "lr": args.lr,
                "batch_size": args.batch_size,
                "motion_train": bool(args.motion_train),
                "threshold": model.cfg.get("threshold", 0.0),
                "train_seconds": train_s,
                "history": hist,
                "model": model.cfg,
                "results": results,
                "speed": speed,
                "threads": args.threads,
            },
        )
    print(f"({time.time() - t0:.0f}s)")


if __name__ == "__main__":
    main()

"""A learned object dynamics model: objects are tokens, self-attention lets them interact (collisions).

Each object of a video (a class id, docs/classes.md) becomes a feature vector computed from its track
over frames 0-10 (lib/objects/tracks.py): last clean centroid, recent positions and velocities, size, visibility /
border / clean patterns, frames since last seen, shape and material one-hot (colour does not matter to
dynamics), and the displacement a non-learned baseline predicts (lib/objects/motion.py; by default the
floor-plane physics simulation with collisions, ``motion.predict_physics``; also "floor", "decel", "friction").
``ObjectDynamics`` encodes each object with an MLP, mixes the objects of a video with 2 layers of
multi-head self-attention (padding-masked: a video has 1..~8 objects), and predicts per object a RESIDUAL
(dy, dx) on top of the baseline's displacement and a log-scale residual on top of the size model's scale.
Its output layer starts at zero, so an untrained model is exactly the baseline.

Targets come from frame 21 of the training videos (true masks, or U-Net labels of unlabeled videos):
the displacement of the object's centroid from its reference (last clean) position, and log sqrt(area
ratio). Objects not cleanly visible at frame 21 (left the frame, cut by the border, partly hidden) have no
reliable centroid there: they are masked out of the loss (they are still rendered, clipped at the edges).

The model's config (``cfg``, a dict stored in its checkpoints) holds its baseline's ``motion.MotionSettings``
(``config``; the method under "baseline") and its own sizes and test-time rules (still, flip).

    cfg = config(fit.baseline_config(train_masks))          # size model, k, decel, F, collisions fitted on train
    model, history = train_dynamics([train_masks, unlabeled_labels], "runs/x/dynamics", epochs=10, cfg=cfg)
    pred22 = predict_split_learned(model, val_inputs)     # (N, H, W) uint8

Features, tokens, model, training and prediction of this one model are kept together in this module (about
600 lines): they share its config and token format, and nothing else uses them.
"""

import math
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from lib.common import trainer
from lib.common.checkpoint import read_checkpoint
from lib.common.classes import MATERIALS, SHAPES, attributes
from lib.common.device import auto_device
from lib.common.metrics import jaccard
from lib.common.rng import seed_everything
from lib.common.trainer import EpochSampler
from lib.objects import fit, motion, render, tracks
from lib.objects.motion import MotionSettings

N_IN = tracks.LAST_INPUT + 1  # input frames
RECENT = 6  # the last RECENT input frames are described one by one
POS_UNIT = 20.0  # px: positions relative to the reference centroid
VEL_UNIT = 5.0  # px/frame
DISP_UNIT = 50.0  # px: baseline displacement
TARGET_UNIT = 10.0  # px: the residual the model predicts
N_FEATURES = 2 + 4 + RECENT * 5 + 3 * 3 + 2 + 4 + 4 + 3 * N_IN + len(SHAPES) + len(MATERIALS) + 1 + 5 + 2

DEFAULT_CFG = {  # the baseline's settings (``MotionSettings``' defaults), then the model's own
    **MotionSettings().to_config(),
    "d": 64,
    "heads": 4,
    "layers": 2,
    "dropout": 0.1,
    "still": 0.5,
    "flip": True,
}


def config(settings, **model):
    """A learned model's config: its baseline's ``MotionSettings``, the model's settings ``model`` (d, heads,
    layers, dropout, still, flip), ``DEFAULT_CFG`` for the rest."""
    return {**DEFAULT_CFG, **settings.to_config(), **model}


# -------------------------------------------------------------------------------------------- features
def _vel_feats(v):
    return [0.0, 0.0, 0.0] if v is None else [v[0] / VEL_UNIT, v[1] / VEL_UNIT, 1.0]


def object_features(tr, pred, shape, camera=None):
    """Feature vector (N_FEATURES,) float32 of one object (Track of frames 0-10, its baseline prediction);
    with a ``camera`` (objects.FloorCamera) also its floor position and floor velocity."""
    h, w = shape
    ref = pred.ref_t
    c = tr.centroid[ref]
    last = N_IN - 1
    f = [
        c[0] / h,
        c[1] / w,
        ref / last,
        (last - tr.last) / last,
        (last - tr.last_clean if tr.last_clean >= 0 else N_IN) / last,
        (last - tr.first) / last,
    ]
    for t in range(N_IN - RECENT, N_IN):
        if tr.visible[t]:
            d = (tr.centroid[t] - c) / POS_UNIT
            f += [d[0], d[1], 1.0, float(tr.clean[t]), float(tr.touches_border[t])]
        else:
            f += [0.0] * 5
    f += (
        _vel_feats(tracks.velocity(tr, 2))
        + _vel_feats(tracks.velocity(tr, 4))
        + _vel_feats(tracks.edge_velocity(tr, 3))
    )
    f += [pred.disp[0] / DISP_UNIT, pred.disp[1] / DISP_UNIT]
    y0, x0, y1, x1 = tr.bbox[ref]
    ref_area = tr.ref_area if np.isfinite(tr.ref_area) else tr.area[ref]
    f += [math.sqrt(tr.area[ref]) / 30, math.sqrt(ref_area) / 30, (y1 - y0) / 40, (x1 - x0) / 40]
    f += [float(y0 <= 0), float(y1 >= h), float(x0 <= 0), float(x1 >= w)]
    f += tr.visible.astype(float).tolist() + tr.touches_border.astype(float).tolist() + tr.clean.astype(float).tolist()
    s, m, _ = attributes(tr.cid)
    f += [float(s == x) for x in SHAPES] + [float(m == x) for x in MATERIALS]
    f += [math.log(pred.scale)]
    fr = tracks.velocity_frames(tr, 2)
    if camera is not None:
        fp = camera.to_floor(c)
        f += [fp[0] / 300, fp[1] / 100]
        if len(fr) >= 2:
            fv = tracks.slope(fr, camera.to_floor(tr.centroid[fr]))
            f += [fv[0] / VEL_UNIT, fv[1] / VEL_UNIT, 1.0]
        else:
            f += [0.0, 0.0, 0.0]
    else:
        f += [0.0] * 5
    fc = pred.extra.get("first_contact", float("nan"))  # the physics baseline's collisions
    f += [min(pred.extra.get("contacts", 0), 5) / 5, (fc - last) / (tracks.TARGET - last) if fc == fc else 1.5]
    return np.asarray(f, np.float32)


def video_stats(masks, cfg, with_target=False):
    """The object statistics ``video_objects`` reads (``tracks.video_stats``): frames 0-10 (their largest blobs
    with ``cfg["denoise"]``), then frame 21 with ``with_target``."""
    masks = np.asarray(masks)
    stats = tracks.object_stats(masks[:N_IN], cfg["min_area"], cfg.get("denoise", False))
    return stats + (tracks.video_stats(masks[[tracks.TARGET]], cfg["min_area"]) if with_target else [])


def video_objects(masks, cfg, with_target=False, stats=None):
    """Tokens of one video (T, H, W), frames 0-10 as input: dict with ``feats`` (n, F), ``base`` (n, 2)
    baseline displacement px, ``base_scale`` (n,), ``cids``, ``preds`` (the baseline's ObjectPredictions)
    and, with ``with_target`` (needs frame 21), ``target`` (n, 3) = (dy, dx) px residual and log-scale
    residual, ``tmask`` (n,) bool (object cleanly visible at frame 21). ``stats``: the video's
    ``video_stats`` if already computed (only the frame size is then read from ``masks``)."""
    masks = np.asarray(masks)
    h, w = masks.shape[1:]
    if stats is None:
        stats = video_stats(masks, cfg, with_target)
    tr = tracks.tracks_from_stats(stats[:N_IN], (h, w), cfg["min_area"], cfg["area_ratio"], cfg["size_b"])
    settings = MotionSettings.from_config(cfg)  # the baseline
    preds = motion.predict_from_tracks(tr, settings, shape=(h, w))
    cids = sorted(preds)
    item = {"cids": cids, "preds": preds}
    cam = settings.camera((h, w))
    item["feats"] = (
        np.stack([object_features(tr[c], preds[c], (h, w), cam) for c in cids])
        if cids
        else np.zeros((0, N_FEATURES), np.float32)
    )
    item["base"] = np.array([preds[c].disp for c in cids], np.float32).reshape(-1, 2)
    item["base_scale"] = np.array([preds[c].scale for c in cids], np.float32)
    if with_target:
        t21 = stats[N_IN]
        target = np.zeros((len(cids), 3), np.float32)
        tmask = np.zeros(len(cids), bool)
        for i, c in enumerate(cids):
            if c not in t21:
                continue
            a, cy, cx, (y0, x0, y1, x1) = t21[c]
            if tracks.at_edge((y0, x0, y1, x1), (h, w)):
                continue
            p, trc = preds[c], tr[c]
            if np.isfinite(trc.ref_area):
                norm = a / tracks.size_scale(cy, cfg["size_b"]) ** 2
                if norm < cfg["area_ratio"] * trc.ref_area:  # partly hidden at frame 21
                    continue
            true_disp = np.array([cy, cx]) - p.ref_centroid
            target[i, :2] = true_disp - p.disp
            target[i, 2] = 0.5 * math.log(a / trc.area[p.ref_t]) - math.log(p.scale)
            tmask[i] = True
        item["target"], item["tmask"] = target, tmask
    return item


def _tensors(item):
    out = {
        "feats": torch.from_numpy(item["feats"]),
        "base": torch.from_numpy(item["base"]),
        "base_scale": torch.from_numpy(item["base_scale"]),
    }
    if "target" in item:
        out["target"] = torch.from_numpy(item["target"])
        out["tmask"] = torch.from_numpy(item["tmask"])
    return out


def _video_tokens(v, cfg, flip):
    """The token dicts (numpy) of one training video and, with ``flip``, of its mirror image."""
    v = np.asarray(v)
    stats = video_stats(v, cfg, with_target=True)
    items = [
        video_objects(v, cfg, with_target=True, stats=st)
        for st in (stats, tracks.flip_stats(stats, v.shape[-1]))[: 1 + flip]
    ]
    return [{k: it[k] for k in ("feats", "base", "base_scale", "target", "tmask")} for it in items if len(it["cids"])]


_FORKED = {}  # what forked token workers read: the videos stay where they are (an array, a memmap)


def _tokens_of_rows(job):
    lo, hi = job
    videos, cfg, flip = _FORKED["job"]
    return [it for i in range(lo, hi) for it in _video_tokens(videos[i], cfg, flip)]


def build_dataset(videos, cfg=None, *, flip=False, progress=True, desc="objects", workers=1, chunk=100):
    """Training tokens from (T>=22, H, W) mask videos (an (N, T, H, W) array or memmap, or an iterable):
    a list of dicts of tensors (feats, base, base_scale, target, tmask), videos without objects skipped.
    ``flip``: also add each video mirrored left-right (the physics is symmetric; its statistics are the
    mirrored ones, ``tracks.flip_stats``). ``workers`` > 1 (Linux: forked processes reading ``videos`` in place,
    ``chunk`` videos a job) builds the same list in the same order, faster."""
    cfg = dict(DEFAULT_CFG, **(cfg or {}))
    bar = tqdm(
        total=len(videos) if hasattr(videos, "__len__") else None,
        desc=f"tokens:{desc}",
        disable=not progress,
        unit="video",
    )
    forkable = workers > 1 and hasattr(videos, "__getitem__") and "fork" in mp.get_all_start_methods()
    if forkable and len(videos) > chunk:
        jobs = [(lo, min(lo + chunk, len(videos))) for lo in range(0, len(videos), chunk)]
        _FORKED["job"] = (videos, cfg, bool(flip))
        try:
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
                parts = []
                for (lo, hi), part in zip(jobs, pool.map(_tokens_of_rows, jobs)):
                    parts.append(part)
                    bar.update(hi - lo)
        finally:
            _FORKED.clear()
            bar.close()
        return [_tensors(it) for part in parts for it in part]
    out = []
    for v in videos:
        out += [_tensors(it) for it in _video_tokens(v, cfg, flip)]
        bar.update(1)
    bar.close()
    return out


def collate(items):
    """Pads a list of token dicts to the largest object count: feats (B, N, F), base (B, N, 2),
    base_scale (B, N), pad (B, N) bool True = padding, and target (B, N, 3), tmask (B, N) if present."""
    n = max(1, max(len(it["feats"]) for it in items))
    b = len(items)
    out = {
        "feats": torch.zeros(b, n, N_FEATURES),
        "base": torch.zeros(b, n, 2),
        "base_scale": torch.ones(b, n),
        "pad": torch.ones(b, n, dtype=torch.bool),
    }
    has_t = all("target" in it for it in items)
    if has_t:
        out["target"], out["tmask"] = torch.zeros(b, n, 3), torch.zeros(b, n, dtype=torch.bool)
    for i, it in enumerate(items):
        k = len(it["feats"])
        out["feats"][i, :k], out["base"][i, :k], out["base_scale"][i, :k] = it["feats"], it["base"], it["base_scale"]
        out["pad"][i, :k] = False
        if has_t:
            out["target"][i, :k], out["tmask"][i, :k] = it["target"], it["tmask"]
    return out


# ----------------------------------------------------------------------------------------------- model
class ObjectDynamics(nn.Module):
    """Per-object MLP encoder -> ``layers`` x multi-head self-attention over a video's objects -> MLP head
    giving (dy, dx) residual in units of TARGET_UNIT px and a log-scale residual.

    ``forward(feats (B,N,F), pad (B,N) bool True = padding, base (B,N,2), base_scale (B,N))`` returns
    (disp (B,N,2) px = base + residual, scale (B,N) = base_scale * exp(residual), residual (B,N,3)).
    The baseline's settings (``cfg``) ride along with the model (``self.cfg``, stored in checkpoints).
    """

    def __init__(self, d=64, heads=4, layers=2, n_features=N_FEATURES, cfg=None, dropout=0.0, **_):
        super().__init__()
        self.cfg = {**DEFAULT_CFG, **(cfg or {}), "d": d, "heads": heads, "layers": layers, "dropout": dropout}
        self.encoder = nn.Sequential(
            nn.Linear(n_features, d), nn.GELU(), nn.Dropout(dropout), nn.Linear(d, d), nn.LayerNorm(d)
        )
        layer = nn.TransformerEncoderLayer(
            d, heads, dim_feedforward=2 * d, dropout=dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.attn = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(), nn.Linear(d, 3))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, feats, pad, base, base_scale):
        x = self.encoder(feats)
        x = self.attn(x, src_key_padding_mask=pad)
        res = self.head(x)
        disp = base + TARGET_UNIT * res[..., :2]
        scale = base_scale * torch.exp(res[..., 2].clamp(-1, 1))
        return disp, scale, res


def build_model(cfg):
    return ObjectDynamics(
        cfg.get("d", 64), cfg.get("heads", 4), cfg.get("layers", 2), cfg=cfg, dropout=cfg.get("dropout", 0.0)
    )


def load_dynamics(path, device="cpu"):
    """The model of a ``train_dynamics`` checkpoint (best.pt / last.pt), its config restored."""
    ckpt = read_checkpoint(path, device)
    model = build_model(ckpt["config"]["model"])
    model.load_state_dict(ckpt["model"])
    return model.eval()


# -------------------------------------------------------------------------------------------- training
def dynamics_loss(model, batch, device, scale_weight=0.5, sigma=0.8):
    """Loss over the objects with a target. Position: the robust (Welsch) loss 1 - exp(-|e|^2 / (2 sigma^2))
    of the centroid error e in TARGET_UNIT px (sigma = 0.8 -> 8 px, about half an object): like the IoU of a
    shifted object it saturates for large misses, so the model is not pulled towards hedging on the few
    objects it cannot predict (collisions to come) at the cost of the many it can. Scale: Huber on the
    log-scale residual, weighted by ``scale_weight``."""
    b = {k: v.to(device) for k, v in batch.items()}
    _, _, res = model(b["feats"], b["pad"], b["base"], b["base_scale"])
    m = b["tmask"] & ~b["pad"]
    if not bool(m.any()):
        return res.sum() * 0.0
    tgt = b["target"][m]
    err2 = ((res[m][:, :2] - tgt[:, :2] / TARGET_UNIT) ** 2).sum(-1)
    pos = (1 - torch.exp(-err2 / (2 * sigma**2))).mean()
    sc = F.huber_loss(res[m][:, 2], tgt[:, 2], delta=0.1)
    return pos + scale_weight * sc


@torch.no_grad()
def _model_outputs(model, items, device, batch_size):
    """Per item the model's (displacement (n, 2) px, scale (n,)) of its objects."""
    out = []
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        b = collate([_tensors(it) for it in chunk])
        disp, scale, _ = model(
            b["feats"].to(device), b["pad"].to(device), b["base"].to(device), b["base_scale"].to(device)
        )
        disp, scale = disp.cpu().numpy().astype(float), scale.cpu().numpy().astype(float)
        out += [(disp[j, : len(it["cids"])], scale[j, : len(it["cids"])]) for j, it in enumerate(chunk)]
    return out


def predict_items(model, items, device=None, batch_size=64, mirrored=None):
    """Runs the model on ``video_objects`` items; returns per item the ObjectPredictions with the model's
    displacement and scale (the baseline's reference frames).

    ``mirrored``: the items of the same videos mirrored left-right (``mirrored_objects``); the model's answer
    is then the mean of its two answers (the mirror's dx negated; scales: geometric mean).

    An object the baseline keeps still (displacement under ``model.cfg["still"]`` px) keeps the baseline's
    prediction: the model's guesses that such an object will be hit miss more often than not (on val, U-Net
    inputs, this rule adds +0.005 IoU; README)."""
    device = auto_device(device) if device is None else torch.device(device)
    model.eval().to(device)
    still = model.cfg.get("still", 0.0)
    outs = _model_outputs(model, items, device, batch_size)
    if mirrored is not None:
        for it, m in zip(items, mirrored):
            if it["cids"] != m["cids"]:
                raise ValueError(f"mirrored items hold other objects ({m['cids']}) than the items ({it['cids']})")
        outs = [
            ((d + dm * [1.0, -1.0]) / 2, np.sqrt(s * sm))
            for (d, s), (dm, sm) in zip(outs, _model_outputs(model, mirrored, device, batch_size))
        ]
    out = []
    for it, (disp, scale) in zip(items, outs):
        preds = {}
        for n, c in enumerate(it["cids"]):
            p = it["preds"][c]
            d, s = disp[n], float(scale[n])
            if np.hypot(*p.disp) < still:
                d, s = np.asarray(p.disp, float), float(p.scale)
            preds[c] = motion.ObjectPrediction(c, p.ref_t, p.ref_centroid, d, s, {"base": p.disp})
        out.append(preds)
    return out


def mirrored_objects(masks, cfg, stats=None):
    """``video_objects`` of one video (T, H, W) mirrored left-right (from the mirrored statistics). ``stats``: the
    video's ``video_stats`` if already computed."""
    masks = np.asarray(masks)
    stats = video_stats(masks, cfg) if stats is None else stats
    return video_objects(masks, cfg, stats=tracks.flip_stats(stats, masks.shape[-1]))


def predict_split_learned(model, masks, device=None, batch_size=64, progress=True, use_scale=True):
    """(N, H, W) uint8 frame-22 masks of (N, >=11, H, W) input masks, rendered with ``objects.render``
    from the model's displacements (and scales, unless ``use_scale`` is False). With ``model.cfg["flip"]``
    each video is also read mirrored and the two answers are averaged (``predict_items``)."""
    cfg = model.cfg
    out = np.empty((len(masks), *masks.shape[2:]), np.uint8)
    step = 256
    bar = tqdm(total=len(masks), desc="objects:learned", disable=not progress, unit="video")
    for s in range(0, len(masks), step):
        vids = [np.asarray(masks[i, :N_IN]) for i in range(s, min(s + step, len(masks)))]
        stats = [video_stats(v, cfg) for v in vids]  # read once for both the video and its mirror image
        items = [video_objects(v, cfg, stats=st) for v, st in zip(vids, stats)]
        mirrored = [mirrored_objects(v, cfg, st) for v, st in zip(vids, stats)] if cfg.get("flip") else None
        for j, (v, preds) in enumerate(zip(vids, predict_items(model, items, device, batch_size, mirrored))):
            if not use_scale:
                for p in preds.values():
                    p.scale = 1.0
            out[s + j] = render.render(v, preds, denoise=cfg.get("denoise", False))
        bar.update(len(vids))
    bar.close()
    return out


class _Tokens(torch.utils.data.Dataset):
    """Training tokens padded once into stacked tensors (``collate`` of them all). The dataset yields row
    numbers; ``batch`` (the loader's ``collate_fn``) takes those rows, cut to the largest object count among
    them: the same batch as ``collate`` of the items, without padding each sample at every step."""

    def __init__(self, items):
        self.data = collate(items)
        self.counts = (~self.data["pad"]).sum(1)

    def __len__(self):
        return len(self.counts)

    def __getitem__(self, i):
        return i

    def batch(self, rows):
        rows = torch.as_tensor(rows)
        n = max(1, int(self.counts[rows].max()))
        return {k: v[rows, :n] for k, v in self.data.items()}


def train_dynamics(
    train_sets,
    out_dir,
    *,
    epochs=10,
    cfg=None,
    batch_size=32,
    lr=5e-4,
    weight_decay=1e-2,
    heldout=50,
    flip=True,
    seed=0,
    device=None,
    progress=True,
    resume=True,
    n_fit_videos=100,
    data=None,
    select="best",
    workers=1,
):
    """Trains ``ObjectDynamics`` with ``lib.common.trainer.fit`` and returns (model with the best weights, history).

    ``train_sets``: a list of mask arrays (N, 22, H, W); the FIRST must be the true train masks: its
    baseline settings are fitted on it (unless ``cfg`` gives them, e.g. ``config(fit.baseline_config(...))``) and
    ``heldout`` of its videos (a seeded random subset) are kept out of training to compute ``val_iou``
    (frame-22 IoU of the rendered predictions) after each epoch; that is the monitored metric (the val split
    is never used; at most a fifth of the videos are held out). The other sets (e.g. U-Net labels of
    unlabeled videos, or cheap masks-only synthetic videos of ``lib.data.synth.generate_masks``, whose frames
    11-20 are zeros: only frames 0-10 and 21 are read) only add training videos. ``flip``: add left-right
    mirrored copies. More videos help most (sweeps/dynamics_scaling.yaml, docs/experiments.md).
    Checkpoints ``best.pt`` / ``last.pt`` and logs go to ``out_dir`` (resumable, see lib/common/trainer.py).
    ``data``: fingerprints of the training sets (e.g. packed splits'), so a resume on other data is refused.
    ``select``: the weights returned: "best" (the epoch of the best held-out ``val_iou``, ``best.pt``) or "last"
    (the final epoch, ``last.pt``). With thousands of training videos "last" is better: the cosine schedule
    ends in a good model and the 50 held-out videos are too few to pick an epoch (their IoU is flat within
    noise; on val with U-Net inputs best.pt gained +0.0045 over physics, last.pt +0.011 with 3000 videos).
    ``workers``: processes building the training tokens (``build_dataset``).
    """
    if select not in ("best", "last"):
        raise ValueError(f"select must be 'best' or 'last', not {select!r}")
    device = auto_device(device)
    first = train_sets[0]
    held, keep = heldout_split(len(first), heldout, seed)
    if cfg is None:
        cfg = fit.baseline_config(_Rows(first, keep), n_videos=n_fit_videos, seed=seed).to_config()
    cfg = dict(DEFAULT_CFG, **cfg)
    items = build_dataset(_Rows(first, keep), cfg, flip=flip, progress=progress, desc="train", workers=workers)
    for j, extra in enumerate(train_sets[1:]):
        items += build_dataset(extra, cfg, flip=flip, progress=progress, desc=f"set{j + 1}", workers=workers)
    if not items:
        raise ValueError("no training videos with objects")
    held_in = [np.asarray(first[i, :N_IN]) for i in held]
    held_items = [video_objects(np.asarray(first[i]), cfg, with_target=True) for i in held]
    held_batch = collate([_tensors(it) for it in held_items if len(it["cids"])]) if len(held) else None
    held_true = np.stack([np.asarray(first[i, tracks.TARGET]) for i in held]) if len(held) else None
    if held_true is not None:
        base_pred = np.stack([render.render(v, it["preds"]) for v, it in zip(held_in, held_items)])
        base_iou = jaccard(base_pred, held_true)[0]
        base_loss = dynamics_loss(build_model(cfg), held_batch, "cpu").item()  # zero residual = the baseline
        if progress:
            print(
                f"[dynamics] {len(items)} training videos, baseline ({cfg['baseline']}) IoU on "
                f"{len(held)} held-out train videos: {base_iou:.4f}",
                flush=True,
            )

    def evaluate(model, dev):
        if held_true is None:
            return {}
        preds = predict_items(model, held_items, dev)
        pred = np.stack([render.render(v, p) for v, p in zip(held_in, preds)])
        return {
            "val_iou": jaccard(pred, held_true)[0],
            "baseline_iou": base_iou,
            "val_loss": dynamics_loss(model, held_batch, dev).item(),
            "baseline_loss": base_loss,
        }

    seed_everything(seed)
    model = build_model(cfg)
    tokens = _Tokens(items)
    loader = torch.utils.data.DataLoader(
        tokens, batch_size=batch_size, collate_fn=tokens.batch, sampler=_epoch_sampler(len(items), seed)
    )
    config = {
        "model": model.cfg,
        "train_videos": [len(s) for s in train_sets],
        "heldout": int(len(held)),
        "flip": bool(flip),
    }
    history = fit_object_model(
        model,
        loader,
        dynamics_loss,
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
    best = Path(out_dir) / f"{select}.pt"
    if best.is_file():
        model.load_state_dict(read_checkpoint(best)["model"])
    return model.eval(), history


def heldout_split(n, heldout, seed):
    """(held, keep): sorted row indices of a seeded random ``heldout`` of ``n`` training videos (never more than
    a fifth) and of the others."""
    idx = np.random.default_rng(seed).permutation(n)
    heldout = min(heldout, n // 5)
    return np.sort(idx[:heldout]), np.sort(idx[heldout:])


def fit_object_model(
    model, loader, loss_fn, evaluate, out_dir, config, *, epochs, lr, weight_decay, device, progress, seed, resume, data
):
    """``fit`` as the object stage's small models train: AdamW, cosine schedule, gradient clipping at 1; the
    epoch kept is the best held-out ``val_iou`` of ``evaluate``, or the lowest train loss without it."""
    return trainer.fit(
        model,
        loader,
        loss_fn,
        evaluate,
        out_dir,
        config,
        epochs,
        optimizer="adamw",
        lr=lr,
        schedule="cosine",
        weight_decay=weight_decay,
        device=device,
        grad_clip=1.0,
        progress=progress,
        seed=seed,
        resume=resume,
        monitor="val_iou" if evaluate else "train_loss",
        mode="max" if evaluate else "min",
        data=data,
    )


def _epoch_sampler(n, seed):
    return EpochSampler(n, shuffle=True, seed=seed)


class _Rows:
    """A lazy row subset of an (N, ...) array (memmaps stay on disk)."""

    def __init__(self, arr, rows):
        self.arr, self.rows = arr, np.asarray(rows)

    def __len__(self):
        return len(self.rows)

    @property
    def shape(self):
        return (len(self.rows), *self.arr.shape[1:])

    def __getitem__(self, i):
        if isinstance(i, tuple):
            return self.arr[(self.rows[i[0]],) + i[1:]]
        return self.arr[self.rows[i]]

    def __iter__(self):
        for r in self.rows:
            yield self.arr[r]

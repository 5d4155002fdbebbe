from tools.nbbuild import build

build("notebooks/06_objects.ipynb", [
    ("md", """
# 06 · Object-centric dynamics: a class id is one object

A mask video is also a set of object tracks (`lib/objects.py`): per object id its centroid, area, bbox and
visibility per frame, with frames where it is cut by the border or partly hidden flagged and left out of
velocity estimates. Each object's last clean mask can then be moved to a predicted frame-22 position
(scaled with depth, drawn far to near, clipped at the border) instead of predicting every pixel.

Predictors, all fitted on **train** (true masks) and scored on val with true and U-Net inputs:
constant velocity (k frames, k chosen on train), constant velocity with a friction-like decay,
a floor-plane deceleration model with collisions between objects ("physics"), and a learned model over
object tokens (attention between the objects of a video, so contacts can be anticipated) that predicts a
residual on top of the physics model (`lib/dynamics.py`). The best predictor on val (U-Net inputs) is
recorded for notebook 07.
"""),
    ("params", """
fit_videos = 100      # train videos used to fit the non-learned models' settings
train_learned = True
epochs = 10
use_unlabeled = False  # also train the learned model on U-Net labels of unlabeled
unet_min_area = 20     # objects smaller than this in U-Net inputs are noise
threads = 1            # torch threads: 1 is fastest for this tiny model
"""),
    ("code", """
import numpy as np
import matplotlib.pyplot as plt
import torch

import lib.data as data
import lib.dynamics as D
import lib.io as io
import lib.objects as O
import lib.viz as viz
from lib.label import load_labels
from lib.metrics import jaccard, per_video_iou

torch.set_num_threads(threads)
labels_dir = io.run_path(run_dir, "labels", "x").parent
out_dir = io.run_path(run_dir, "objects", "x").parent
train = data.load_split(data_root, "train")
val = data.load_split(data_root, "val")
_, val_labels = load_labels(labels_dir, "val")
inputs = {"true": np.asarray(val.masks[:, :11]), "unet": np.asarray(val_labels[:, :11])}
true22 = np.asarray(val.masks[:, 21])
"""),
    ("md", "## Fit the non-learned predictors on train"),
    ("code", """
fr = O.fit_k_and_decay(train.masks, n_videos=fit_videos, seed=seed)
cfg = D.baseline_config(train.masks, n_videos=fit_videos, seed=seed)  # physics: floor plane + collisions
physics = dict(method="physics", k=cfg["k"], decel=cfg["decel"], F=cfg["F"], size_b=cfg["size_b"],
               restitution=cfg["restitution"], radius_scale=cfg["radius_scale"], mass_ratio=cfg["mass_ratio"])
methods = {
    "copy frame 11": dict(method="copy"),
    "constant velocity": dict(method="cv", k=fr["cv_k"]),
    "constant velocity + friction": dict(method="friction", k=fr["k"], decay=fr["decay"]),
    "physics (floor + collisions)": physics,
}
print({k: v for k, v in methods.items() if k != "copy frame 11"})
"""),
    ("code", """
def settings(src):
    return {"min_area": 1, "denoise": False} if src == "true" else {"min_area": unet_min_area, "denoise": True}

table, preds = {}, {}
for name, kw in methods.items():
    for src, x in inputs.items():
        preds[name, src] = O.predict_split(x, progress=False, **kw, **(settings(src) if name != "copy frame 11" else {}))
        table.setdefault(name, {})[src] = jaccard(preds[name, src], true22)[0]
    print(f"{name:32s} true {table[name]['true']:.4f}  U-Net {table[name]['unet']:.4f}")
"""),
    ("md", "## The learned object model (train videos only; a held-out part of train picks the epoch)"),
    ("code", """
learned = None
if train_learned:
    sets = [train.masks] + ([load_labels(labels_dir, "unlabeled")[1]] if use_unlabeled else [])
    learned, hist = D.train_dynamics(sets, out_dir, epochs=epochs, cfg=cfg, seed=seed, device="cpu")
    name = "learned (physics + attention residual)"
    for src, x in inputs.items():
        learned.cfg.update(settings(src))
        preds[name, src] = D.predict_split_learned(learned, x, device="cpu", progress=False)
        table.setdefault(name, {})[src] = jaccard(preds[name, src], true22)[0]
    print(f"{name:32s} true {table[name]['true']:.4f}  U-Net {table[name]['unet']:.4f}")
"""),
    ("code", """
best = max((n for n in table if n != "copy frame 11"), key=lambda n: table[n]["unet"])
ckpt = out_dir / "best.pt" if best.startswith("learned") else None
D.save_selection(out_dir / "selected.json", best, None if ckpt else methods[best], ckpt, **settings("unet"))
print("chosen for notebook 07:", best)
"""),
    ("md", "## Trajectories: tracks of frames 0-10 (dots), predicted (x) and true (o) frame-22 centroids"),
    ("code", """
k = min(3, len(val))
fig, axes = plt.subplots(1, k, figsize=(4.2 * k, 3), squeeze=False)
for ax, i in zip(axes[0], range(k)):
    tr = O.tracks(inputs["true"][i], size_b=cfg["size_b"])
    pr = D.baseline_predictions(tr, cfg)
    ax.imshow(val.frames[i, 10]); ax.set_title(f"video_{val.ids[i]:05d}", fontsize=8); ax.axis("off")
    for cid, t in tr.items():
        c = viz.PALETTE[cid] / 255
        vis = t.visible
        ax.plot(t.centroid[vis, 1], t.centroid[vis, 0], ".-", color=c, ms=3)
        if cid in pr:
            ax.plot(*pr[cid].centroid[::-1], "x", color=c, ms=8, mew=2)
        ys, xs = np.nonzero(true22[i] == cid)
        if len(ys):
            ax.plot(xs.mean(), ys.mean(), "o", mfc="none", color=c, ms=8)
fig.tight_layout()
viz.save_figure(fig, "06_trajectories", figures_dir)
"""),
    ("md", "## Failure cases: the worst videos of the chosen predictor (collisions, entrants)"),
    ("code", """
scores = per_video_iou(preds[best, "unet"], true22)
worst = np.argsort(scores)[:4]
fig = viz.comparison_grid(np.asarray(val.frames[worst, 21]), true22[worst], preds[best, "unet"][worst], val.ids[worst], scores=scores[worst])
viz.save_figure(fig, "06_objects_failures", figures_dir)
late = [i for i in range(len(val)) if set(np.unique(true22[i])) - set(np.unique(inputs["true"][i])) - {0}]
print(f"{len(late)} of {len(val)} val videos have an object at frame 22 that no input frame shows (entrants): "
      f"mean IoU {scores[late].mean() if late else float('nan'):.3f} vs {np.delete(scores, late).mean():.3f} without")
"""),
    ("code", """
io.save_metrics(run_dir, "06_objects", {
    "val_table": table, "chosen": best, "settings": {"physics": cfg, "friction": {k: v for k, v in fr.items() if k != "grid"}},
})
"""),
])

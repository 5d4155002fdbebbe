from tools.nbbuild import build

build("notebooks/02_unet.ipynb", [
    ("md", """
# 02 · Train the U-Net (frames -> masks)

Recipe step 1 (DESIGN.md section 4): a U-Net trained on **every frame of the train split only**
(val is never trained on), scored with the task metric (stacked multiclass Jaccard, `lib.metrics`)
over all val frames. Its masks of frames 0-10 are the inputs of the mask-space predictors; the U-Net on the
true frame 22 is the ceiling of the whole pipeline. Training resumes from `<run_dir>/unet/last.pt`.
The val frames are labelled once, into `<run_dir>/labels/` (notebook 03 then skips val).
"""),
    ("params", """
width = 16          # first encoder width; the full profile uses 64 (64-128-256-512, 1024 bottleneck)
depth = 4
epochs = 6
batch_size = 16
lr = 2e-3
ce = 1.0            # loss weights: cross-entropy + soft Jaccard
jaccard = 0.5
head = "plain"      # "factorized": p(object) x p(shape) x p(material) x p(colour), learns faster
decode = "argmax"   # "vote": each colour blob takes one (shape, material); "vote_video": each object track, lib/decode.py
crop = None         # [h, w]: train on random crops (cheaper steps), None: whole frames
steps_per_epoch = None   # None: every train frame each epoch
eval_videos = 40    # val videos scored after each epoch (None: all), the final score uses all val frames
eval_frames = 6
cpu_amp = True      # bfloat16 autocast when training on a CPU with native bf16 (1.5x faster); CUDA uses float16 AMP
num_workers = 0
device = None       # None: CUDA if available, else CPU
"""),
    ("code", """
import numpy as np
import matplotlib.pyplot as plt

import lib.data as data
import lib.io as io
import lib.viz as viz
import lib.widgets as widgets
from lib.classes import CLASS_NAMES
import lib.label as label
from lib.label import segment
from lib.segmentation import most_confused, score_masks, train_unet
from lib.train import auto_device

out_dir = io.run_path(run_dir, "unet", "x").parent
dev = auto_device(device)
print("device:", dev)
"""),
    ("code", """
model, history, config = train_unet(
    data_root, out_dir, device=device, width=width, depth=depth, head=head, decode=decode, crop=crop,
    epochs=epochs, batch_size=batch_size, lr=lr,
    ce=ce, jaccard=jaccard, steps_per_epoch=steps_per_epoch, eval_videos=eval_videos, eval_frames=eval_frames,
    cpu_amp=cpu_amp, num_workers=num_workers, seed=seed)
print(f"{config['params']:,} parameters")
"""),
    ("md", "## Training curves"),
    ("code", """
fig = viz.curves(history, [("train_loss", "train loss"), ("val_iou", "val IoU (subset)")])
viz.save_figure(fig, "02_unet_curves", figures_dir)
"""),
    ("md", "## Val IoU over every val frame, per class, and the most confused classes"),
    ("code", """
# Every val frame is labelled once, into the labels folder that notebook 03 fills (it will skip val).
val = data.load_split(data_root, "val")
ckpt = out_dir / "best.pt"
labels_dir = io.run_path(run_dir, "labels", "x").parent
lab = label.label_split(model, val, labels_dir, batch_size=44, device=dev, model_key=label.checkpoint_key(ckpt))
res = score_masks(label.load_labels(labels_dir, "val")[1], val.masks, return_confusion=True)
print(f"U-Net val IoU over all {val.frames.shape[0] * val.frames.shape[1]} val frames: {res['val_iou']:.4f}")
if lab["frames_per_s"]:
    print(f"labelled at {lab['frames_per_s']:.1f} frames/s")
fig = viz.class_frequency_plot(np.nan_to_num(res["per_class"]), title="U-Net per-class IoU (val, all frames)", ylabel="IoU")
viz.save_figure(fig, "02_unet_per_class_iou", figures_dir)
"""),
    ("code", """
pairs = most_confused(res["confusion"], k=10)
for t, p, n in pairs:
    print(f"{n:8d} px  true {CLASS_NAMES[t]:24s} -> predicted {CLASS_NAMES[p]}")
ids = sorted({c for t, p, _ in pairs for c in (t, p)})
cm = res["confusion"][np.ix_(ids, ids)].astype(float)
cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
fig, ax = plt.subplots(figsize=(6, 5))
im = ax.imshow(cm, cmap="magma")
ax.set_xticks(range(len(ids)), [CLASS_NAMES[i] for i in ids], rotation=90, fontsize=7)
ax.set_yticks(range(len(ids)), [CLASS_NAMES[i] for i in ids], fontsize=7)
ax.set(xlabel="predicted", ylabel="true", title="row-normalised confusion, most confused classes")
fig.colorbar(im); fig.tight_layout()
viz.save_figure(fig, "02_unet_confusion", figures_dir)
"""),
    ("md", "## Qualitative: image, true mask, prediction, errors"),
    ("code", """
k = min(4, len(val))
imgs = np.stack([val.frames[i, 21] for i in range(k)])
pred = segment(model, imgs, dev)
fig = viz.comparison_grid(imgs, val.masks[:k, 21], pred, [f"{val.ids[i]} t=21" for i in range(k)])
viz.save_figure(fig, "02_unet_qualitative", figures_dir)
"""),
    ("code", """
# Any video and frame: pick below (first val videos, every frame).
nv = min(6, len(val))
pairs_vt = [(v, t) for v in range(nv) for t in range(val.frames.shape[1])]
imgs = np.stack([val.frames[v, t] for v, t in pairs_vt])
preds = segment(model, imgs, dev, video_len=label.vote_window(val.frames.shape[1]))
trues = np.stack([val.masks[v, t] for v, t in pairs_vt])
scores = [float((p == t).mean()) for p, t in zip(preds, trues)]
widgets.compare_viewer(imgs, trues, preds, [f"video_{val.ids[v]:05d} frame {t}" for v, t in pairs_vt],
                       scores=scores, score_name="pixel acc")
"""),
    ("code", """
io.save_metrics(run_dir, "02_unet", {
    "val_iou_all_frames": res["val_iou"],
    "per_class_iou": {CLASS_NAMES[i]: float(v) for i, v in enumerate(res["per_class"]) if v == v},
    "most_confused": [[CLASS_NAMES[t], CLASS_NAMES[p], n] for t, p, n in pairs],
    "history": history, "params": config["params"], "checkpoint": str(ckpt),
    "labelling_frames_per_s": lab["frames_per_s"],
    "seconds": sum(r["seconds"] for r in history),
})
"""),
])

build("notebooks/03_label.ipynb", [
    ("md", """
# 03 · Label every frame with the U-Net

The U-Net of notebook 02 labels every frame of train, val, unlabeled and hidden, in batches under
`torch.inference_mode`. Labels are packed arrays `<run_dir>/labels/<split>.npy` (uint8, N x T x 160 x 240),
written resumably: a rerun skips finished videos and never leaves a half-written file. With
`write_mask_npy=True` each video also gets `<run_dir>/labels/npy/<split>/video_N/mask.npy`, a separate
folder: the dataset's own labels are never touched.

It also scores the two copy-frame-11 baselines on val against the true frame 22:
the true frame-11 mask, and the U-Net's frame-11 mask.
"""),
    ("params", """
splits = ["val", "hidden", "train", "unlabeled"]
batch_size = 44
write_mask_npy = False
device = None
"""),
    ("code", """
import numpy as np

import lib.data as data
import lib.io as io
import lib.label as label
from lib.metrics import jaccard
from lib.segmentation import load_unet

ckpt = io.run_path(run_dir, "unet", "best.pt")
model, cfg = load_unet(ckpt, device)
dev = next(model.parameters()).device
labels_dir = io.run_path(run_dir, "labels", "x").parent
print(f"labelling with {ckpt} on {dev}")
"""),
    ("code", """
results = {}
for split in splits:
    packed = data.load_split(data_root, split)
    results[split] = label.label_split(model, packed, labels_dir, batch_size=batch_size, device=dev,
                                       model_key=label.checkpoint_key(ckpt),
                                       npy_dir=labels_dir / "npy" if write_mask_npy else None)
    fps = results[split]["frames_per_s"]
    print(f"{split:10s} {results[split]['videos']:5d} videos  " + (f"{fps:7.1f} frames/s" if fps else "(already labelled by this U-Net)"))
"""),
    ("md", "## Copy-frame-11 baselines on val (scored against the true frame 22)"),
    ("code", """
val = data.load_split(data_root, "val")
_, val_labels = label.load_labels(labels_dir, "val")
true22 = np.asarray(val.masks[:, 21])
baselines = {
    "copy frame 11 (true mask)": jaccard(val.masks[:, 10], true22)[0],
    "copy frame 11 (U-Net mask)": jaccard(val_labels[:, 10], true22)[0],
    "U-Net on true frame 22 (ceiling)": jaccard(val_labels[:, 21], true22)[0],
    "U-Net on all val frames": jaccard(val_labels, val.masks)[0],
}
for k, v in baselines.items():
    print(f"{k:34s} {v:.4f}")
"""),
    ("code", """
fps = [r["frames_per_s"] for r in results.values() if r["frames_per_s"]]
io.save_metrics(run_dir, "03_label", {
    "baselines": baselines,
    "labelling": results,
    "frames_per_s": float(np.mean(fps)) if fps else None,
    "labels_dir": str(labels_dir),
})
"""),
])

from tools.nbbuild import build

build("notebooks/04_simvp.ipynb", [
    ("md", """
# 04 · SimVP gSTA in mask space

Recipe step 2 (DESIGN.md section 4): class ids -> embedding -> SimVP (gSTA translator, OpenSTL-compatible
weights, `lib/simvp.py`) -> 1x1 head to 49 logits, trained **one step ahead** (11 masks -> the 12th) on
sliding windows (11 a video) of train (true masks) and unlabeled (U-Net labels of notebook 03), with
horizontal flips, cross-entropy, Adam + OneCycle. Never val.

Frame 22 is predicted by 11 autoregressive steps on argmax masks, starting from the **U-Net masks** of frames
0-10, and scored against the true frame-22 masks: the same inputs the hidden set will have.
"""),
    ("params", """
backend = "lib"     # "lib", or "openstl" when OpenSTL is installed from source
embed_dim = 8
hid_S = 16
hid_T = 128
N_S = 2
N_T = 4
down = 2            # 2: SimVP works at 80x120 (cheap), 1: full 160x240 as in the reference
mlp_ratio = 4.0
copy_prior = False  # True: logits start from the last input frame (copy), training learns the motion
epochs = 4
batch_size = 16
lr = 0.001
flip = 0.5
use_unlabeled = True
steps_per_epoch = None
eval_videos = 60    # val videos scored after each epoch (None: all), the table below uses all
num_workers = 0
device = None
"""),
    ("code", """
import numpy as np
import matplotlib.pyplot as plt
import torch

import lib.data as data
import lib.io as io
import lib.viz as viz
import lib.widgets as widgets
from lib.forecast import predict_frame22, train_simvp
from lib.label import load_labels
from lib.metrics import jaccard, per_video_iou
from lib.simvp import rollout
from lib.train import auto_device

labels_dir = io.run_path(run_dir, "labels", "x").parent
out_dir = io.run_path(run_dir, "simvp", "x").parent
dev = auto_device(device)
print("device:", dev)
"""),
    ("code", """
model, history, config = train_simvp(
    data_root, labels_dir, out_dir, device=device, backend=backend, embed_dim=embed_dim, hid_S=hid_S, hid_T=hid_T,
    N_S=N_S, N_T=N_T, down=down, mlp_ratio=mlp_ratio, copy_prior=copy_prior, epochs=epochs, batch_size=batch_size, lr=lr, flip=flip,
    use_unlabeled=use_unlabeled, steps_per_epoch=steps_per_epoch, eval_videos=eval_videos,
    num_workers=num_workers, seed=seed)
print(f"{config['params']:,} parameters, {config['windows']:,} training windows "
      f"({config['train_videos']} train + {config['unlabeled_videos']} unlabeled videos)")
"""),
    ("code", """
fig = viz.curves(history, [("train_loss", "train CE (one step)"), ("val_iou", "val frame-22 IoU (subset)")])
viz.save_figure(fig, "04_simvp_curves", figures_dir)
"""),
    ("md", "## Val table: frame-22 IoU on every val video"),
    ("code", """
val = data.load_split(data_root, "val")
_, val_labels = load_labels(labels_dir, "val")
true22 = np.asarray(val.masks[:, 21])
pred22 = predict_frame22(model, val_labels[:, :11], dev)
table = {
    "copy frame 11 (true mask)": jaccard(val.masks[:, 10], true22)[0],
    "copy frame 11 (U-Net mask)": jaccard(val_labels[:, 10], true22)[0],
    "SimVP rollout (U-Net masks in)": jaccard(pred22, true22)[0],
    "U-Net on true frame 22 (ceiling)": jaccard(val_labels[:, 21], true22)[0],
}
for k, v in table.items():
    print(f"{k:34s} {v:.4f}")
margin = table["SimVP rollout (U-Net masks in)"] - table["copy frame 11 (U-Net mask)"]
print(f"SimVP - copy-frame-11 (U-Net): {margin:+.4f}")
"""),
    ("md", "## Rollouts over frames 12-22 (true above, predicted below)"),
    ("code", """
k = min(3, len(val))
with torch.inference_mode():
    x = torch.from_numpy(np.asarray(val_labels[:k, :11], np.int64)).to(dev)
    steps = rollout(model, x, 11, return_all=True).cpu().numpy()
fig = viz.rollout_figure(steps, val.masks[:k, 11:22], val.ids[:k])
viz.save_figure(fig, "04_simvp_rollouts", figures_dir)
"""),
    ("md", "## Predicted versus true frame 22, worst videos first"),
    ("code", """
scores = per_video_iou(pred22, true22)
widgets.compare_viewer(np.asarray(val.frames[:, 21]), true22, pred22, val.ids, order="worst", scores=scores)
"""),
    ("code", """
io.save_metrics(run_dir, "04_simvp", {
    "val_table": table, "margin_over_copy_unet": margin, "history": history,
    "params": config["params"], "windows": config["windows"], "checkpoint": str(out_dir / "best.pt"),
    "seconds": sum(r["seconds"] for r in history),
})
"""),
])

from tools.nbbuild import build

build("notebooks/05_finetune.ipynb", [
    ("md", """
# 05 · Fine-tune for frame 22: scheduled sampling

Recipe step 3 (DESIGN.md section 4). The one-step model of notebook 04 never saw its own mistakes; at test
time it feeds on them for 11 steps. Here, with a probability that rises on an exponential schedule, the model
first rolls out k steps on its **own argmax output**, then takes the supervised step; k grows from 1 to
`max_rollout` over training. Model selection and early stopping use the val frame-22 IoU of the full
11-step rollout from U-Net masks. An IoU-aware objective (cross-entropy + soft Jaccard) is compared with
cross-entropy alone; the better one is kept for notebook 06.
"""),
    ("params", """
epochs = 3
batch_size = 8
lr = 0.0001
max_rollout = 5
p_rate = 5.0         # sampling probability 1 - exp(-p_rate * progress)
patience = 2         # early stopping: epochs without val improvement
compare_iou_loss = True
jaccard_weight = 0.5  # weight of the soft Jaccard term in the IoU-aware run
steps_per_epoch = None
eval_videos = 60
num_workers = 0
device = None
"""),
    ("code", """
import numpy as np
import matplotlib.pyplot as plt

import lib.data as data
import lib.io as io
import lib.viz as viz
from lib.forecast import ScheduledSampling, finetune_simvp, load_simvp_checkpoint, predict_frame22
from lib.label import load_labels
from lib.metrics import jaccard
from lib.train import auto_device

labels_dir = io.run_path(run_dir, "labels", "x").parent
init = io.run_path(run_dir, "simvp", "best.pt")
dev = auto_device(device)
"""),
    ("md", "## The schedule"),
    ("code", """
ss = ScheduledSampling(max_rollout=max_rollout, p_rate=p_rate)
s = np.linspace(0, 1, 200)
ks, ps = zip(*[ss.schedule(x * 1000, 1000) for x in s])
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(s, ps, label="P(roll out on own output)")
ax2 = ax.twinx(); ax2.step(s, ks, color="C1", where="post", label="rollout length k"); ax2.set_ylabel("k")
ax.set(xlabel="training progress", ylabel="probability"); fig.legend(loc="lower right"); fig.tight_layout()
viz.save_figure(fig, "05_schedule", figures_dir)
"""),
    ("code", """
common = dict(epochs=epochs, batch_size=batch_size, lr=lr, max_rollout=max_rollout, p_rate=p_rate, patience=patience,
              steps_per_epoch=steps_per_epoch, eval_videos=eval_videos, num_workers=num_workers, seed=seed)
runs = {"ce": dict(ce=1.0, jaccard=0.0)}
if compare_iou_loss:
    runs["ce+jaccard"] = dict(ce=1.0, jaccard=jaccard_weight)
results = {}
for name, loss in runs.items():
    out = io.run_path(run_dir, f"finetune_{name.replace('+', '_')}", "x").parent
    model, history, cfg = finetune_simvp(init, data_root, labels_dir, out, device=device, **common, **loss)
    results[name] = {"model": model, "history": history, "out": out, "init_val_iou": cfg["init_val_iou"],
                     "selected": cfg["selected"]}
"""),
    ("code", """
fig, ax = plt.subplots(figsize=(6, 3))
for name, r in results.items():
    h = r["history"]
    ax.plot([0] + [x["epoch"] for x in h], [r["init_val_iou"]] + [x["val_iou"] for x in h], "o-", label=name)
ax.set(xlabel="fine-tuning epoch (0 = notebook 04's model)", ylabel="val frame-22 IoU (subset)"); ax.legend()
fig.tight_layout()
viz.save_figure(fig, "05_finetune_curves", figures_dir)
"""),
    ("md", "## Before and after, on every val video"),
    ("code", """
val = data.load_split(data_root, "val")
_, val_labels = load_labels(labels_dir, "val")
true22 = np.asarray(val.masks[:, 21])
m4 = io.load_metrics(run_dir, "04_simvp")
if m4.get("checkpoint") == str(init):  # notebook 04 scored this checkpoint on every val video already
    table = {"SimVP (notebook 04)": m4["val_table"]["SimVP rollout (U-Net masks in)"]}
else:
    table = {"SimVP (notebook 04)": jaccard(predict_frame22(load_simvp_checkpoint(init, dev)[0], val_labels[:, :11], dev), true22)[0]}
for name, r in results.items():  # a run whose selection kept the starting model scores what it scored
    table[f"fine-tuned, {name}"] = (jaccard(predict_frame22(r["model"], val_labels[:, :11], dev), true22)[0]
                                    if r["selected"] == "finetuned" else table["SimVP (notebook 04)"])
for k, v in table.items():
    print(f"{k:28s} {v:.4f}")
best_name = max(results, key=lambda n: table[f"fine-tuned, {n}"])
best = results[best_name]
selected = str(best["out"] / "best.pt") if best["selected"] == "finetuned" else str(init)
print("kept for notebook 06:", best_name, "->", selected)
"""),
    ("code", """
io.save_metrics(run_dir, "05_finetune", {
    "val_table": table, "best_loss": best_name, "checkpoint": selected,
    "histories": {n: r["history"] for n, r in results.items()},
    "seconds": sum(x["seconds"] for r in results.values() for x in r["history"]),
})
"""),
])

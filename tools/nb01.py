"""Write notebooks/01_explore.ipynb from the cell sources below (no outputs, no execution counts).

    .venv/bin/python -m tools.nb01

Edit the cells here and rebuild rather than editing the .ipynb by hand, so the committed notebook
stays clean and reviewable.
"""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "notebooks" / "01_explore.ipynb"

from tools.nbbuild import COMMON_PARAMS, SETUP as INSTALL  # the same first cell and common parameters

TITLE = '''\
# 01 · Exploring the videos and masks

The task: from frames `t = 0..10` of a CLEVRER-style video (160 x 240 RGB, cubes, spheres and cylinders
sliding and colliding on a grey floor), predict the segmentation mask of frame `t = 21` (the task's
"frame 22"). Masks hold class ids 0..48 (`id = shape*16 + material*8 + color + 1`, 0 = background); within
a video no object repeats, so a class id is one object.

This notebook looks at the data before any model does:

* class frequencies, objects per video and per frame, object sizes;
* **entrants**: objects that first appear after the last input frame cannot be predicted from the inputs;
* **motion**: how many pixels change between `t = 10` and `t = 21`, and the *copy frame 11* baseline
  (the frame-10 mask used as the frame-21 prediction), scored with the task metric on val;
* a grid of sample frames and an interactive video viewer.

Frame indices below are 0-based like the files (`image_0.png` .. `image_21.png`). Each figure is saved
to `<figures_dir>/01_*.png`; the key numbers go to `<run_dir>/metrics/01_explore.json`.'''

PARAMETERS = '''\
n_grid_videos = 4
max_videos = 200   # videos of each split read for the statistics; None reads all'''

SETUP = '''\
import numpy as np
import matplotlib.pyplot as plt

from lib import data, stats, viz
from lib.io import save_metrics
from lib.paths import resolve
from lib.widgets import video_viewer

rng = np.random.default_rng(seed)
root = resolve(data_root)
figures = []   # file names of the figures this notebook writes
print(f"profile={profile}  data={root}  figures -> {resolve(figures_dir)}")'''

MD_DATA = '''\
## The splits

`lib.data.load_split` packs a split once into memory-mapped arrays (`<data_root>/.cache/`) and reports
videos it skipped or padded. The statistics read the first `max_videos` videos of train and val.'''

LOAD = '''\
for split in data.SPLITS:
    if (root / split).is_dir():
        print(f"{split:10s} {len(data.list_videos(root / split)):6d} videos")

train = data.load_split(data_root, "train", progress=True)
val = data.load_split(data_root, "val", progress=True)
for s in (train, val):
    print(f"{s.name}: frames {s.frames.shape}, masks {s.masks.shape}, "
          f"skipped {len(s.report.get('skipped', []))}, padded {len(s.report.get('padded', []))}")

n_read = {s.name: len(s) if max_videos is None else min(len(s), int(max_videos)) for s in (train, val)}
train_masks = np.array(train.masks[: n_read["train"]])   # read into memory
val_masks = np.array(val.masks[: n_read["val"]])
print("videos read for the statistics:", n_read)'''

MD_CLASSES = '''\
## Class frequencies

Pixels of each class over all frames of the train videos read, in the class colours used everywhere in
this project. Background fills most of every frame; objects are small.'''

CLASSES = '''\
class_counts = stats.class_frequencies(train_masks)
fig = viz.class_frequency_plot(class_counts, title=f"Pixels per class, train ({n_read['train']} videos)")
figures.append(viz.save_figure(fig, "01_class_frequencies", figures_dir).name)
classes_seen = int((class_counts[1:] > 0).sum())
print(f"{classes_seen} of 48 object classes appear; background = {class_counts[0] / class_counts.sum():.1%} of pixels")'''

MD_OBJECTS = '''\
## Objects per video and per frame

An object counts in a frame when at least one of its pixels is visible there.'''

OBJECTS = '''\
opf = stats.objects_per_frame(train_masks)                         # (N, T)
first = stats.first_appearance(train_masks)                        # (N, 49), -1 = never
objects_per_video = (first >= 0).sum(1)

fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
viz.histogram(objects_per_video, "Objects per video (train)", "distinct objects in the video", ax=axes[0])
viz.histogram(opf.ravel(), "Objects per frame (train)", "objects visible in a frame", ax=axes[1])
figures.append(viz.save_figure(fig, "01_objects_per_video_and_frame", figures_dir).name)
print(f"objects per video {objects_per_video.mean():.2f}, per frame {opf.mean():.2f} "
      f"(t=0: {opf[:, 0].mean():.2f}, t=10: {opf[:, 10].mean():.2f}, t=21: {opf[:, 21].mean():.2f})")'''

MD_ENTRANTS = '''\
## Entrants over time

The frame where each object first becomes visible. Objects first seen after `t = 10` (late entrants) are
invisible in the input frames: a model can at best guess them, and the metric counts them in the target.'''

ENTRANTS = '''\
fig = viz.entrants_over_time_plot(first[first >= 0], num_frames=train_masks.shape[1])
figures.append(viz.save_figure(fig, "01_entrants_over_time", figures_dir).name)

late = stats.entrants(train_masks, after=10)                       # per video: ids first seen after t=10
late_entrant_share = float(np.mean([len(e) > 0 for e in late]))
# late entrants still visible in the target frame t=21 (those are the ones that cost IoU)
late_in_target = [np.isin(train_masks[i, 21], e) for i, e in enumerate(late)]
late_in_target_share = float(np.mean([m.any() for m in late_in_target]))
late_pixel_share = float(sum(m.sum() for m in late_in_target) / max(1, (train_masks[:, 21] > 0).sum()))
print(f"videos with a late entrant: {late_entrant_share:.1%}; "
      f"with one visible at t=21: {late_in_target_share:.1%}; "
      f"late-entrant share of object pixels at t=21: {late_pixel_share:.1%}")'''

MD_MOTION = '''\
## Motion and object sizes

Pixels whose label changes between the last input frame `t = 10` and the target `t = 21`, and the size of
every visible object in every frame (equivalent diameter `2 sqrt(area / pi)`). The *copy frame 11*
baseline predicts `t = 21` with the mask of `t = 10`; it is scored with the task metric (stacked multiclass
IoU over val, DESIGN.md section 3). On the real data it scores about 0.24.'''

MOTION = '''\
moved = stats.moved_pixels(train_masks, 10, 21)
# object sizes in chunks of videos (keeps the memory of the per-frame area table small)
sizes = np.concatenate([stats.object_sizes(train_masks[i:i + 16]) for i in range(0, len(train_masks), 16)])
size_p5, size_p50, size_p95 = (float(v) for v in np.percentile(sizes, [5, 50, 95]))

fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
viz.histogram(moved, "Pixels changing label between t=10 and t=21 (train)", "pixels per video", ax=axes[0])
viz.histogram(sizes, "Object sizes (train, every frame)", "equivalent diameter (px)", ax=axes[1])
figures.append(viz.save_figure(fig, "01_motion_and_sizes", figures_dir).name)

copy_iou, copy_per_class = stats.copy_frame_iou(val_masks, src=10, dst=21)
train_copy_iou, _ = stats.copy_frame_iou(train_masks, src=10, dst=21)
frame_px = train_masks.shape[2] * train_masks.shape[3]
print(f"pixels changing label t=10 -> t=21: mean {moved.mean():.0f} per video ({moved.mean() / frame_px:.2%} of the frame)")
print(f"object diameter px: p5 {size_p5:.1f}, median {size_p50:.1f}, p95 {size_p95:.1f}")
print(f"copy-frame-11 IoU: val {copy_iou:.3f} ({n_read['val']} videos), train {train_copy_iou:.3f}")'''

MD_GRID = '''\
## Sample videos

Randomly chosen val videos (`seed`) at the first frame, the last input frame and the target frame, with
their masks and the classes present.'''

GRID = '''\
pick = np.sort(rng.choice(len(val), size=min(n_grid_videos, len(val)), replace=False))
fig = viz.sample_grid(val.frames[pick], val.masks[pick], val.ids[pick], frame_indices=(0, 10, 21))
figures.append(viz.save_figure(fig, "01_sample_grid", figures_dir).name)'''

MD_VIEWER = '''\
## Browse the val videos

Pick a video, drag the frame slider or press play: image | mask | overlay. The overlay slider sets how
strongly the class colours cover the image.'''

VIEWER = '''\
viewer = video_viewer(val.frames, val.masks, val.ids)
viewer'''

MD_METRICS = '''\
## Record

The key numbers, for the tests and the results report.'''

METRICS = '''\
metrics = {
    "profile": profile,
    "data_root": str(data_root),
    "figures_dir": str(resolve(figures_dir)),
    "videos_read": n_read,
    "copy_frame_iou_val": float(copy_iou),
    "copy_frame_iou_train": float(train_copy_iou),
    "objects_per_frame": float(opf.mean()),
    "objects_per_video": float(objects_per_video.mean()),
    "late_entrant_share": late_entrant_share,
    "late_entrant_in_target_share": late_in_target_share,
    "late_entrant_pixel_share_target": late_pixel_share,
    "moved_pixels_mean": float(moved.mean()),
    "size_p5": size_p5,
    "size_p50": size_p50,
    "size_p95": size_p95,
    "object_classes_seen": classes_seen,
    "figures": figures,
}
print(save_metrics(run_dir, "01_explore", metrics))
metrics'''


def build():
    cells = [
        new_code_cell(INSTALL),
        new_markdown_cell(TITLE),
        new_code_cell(COMMON_PARAMS + "\n" + PARAMETERS, metadata={"tags": ["parameters"]}),
        new_code_cell(SETUP),
        new_markdown_cell(MD_DATA), new_code_cell(LOAD),
        new_markdown_cell(MD_CLASSES), new_code_cell(CLASSES),
        new_markdown_cell(MD_OBJECTS), new_code_cell(OBJECTS),
        new_markdown_cell(MD_ENTRANTS), new_code_cell(ENTRANTS),
        new_markdown_cell(MD_MOTION), new_code_cell(MOTION),
        new_markdown_cell(MD_GRID), new_code_cell(GRID),
        new_markdown_cell(MD_VIEWER), new_code_cell(VIEWER),
        new_markdown_cell(MD_METRICS), new_code_cell(METRICS),
    ]
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })
    for i, c in enumerate(nb.cells):   # stable ids keep diffs quiet
        c.id = f"cell-{i:02d}"
    nbformat.validate(nb)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, OUT)
    return OUT


if __name__ == "__main__":
    print(build())

"""Score the U-Net's decodings on val videos: per-pixel argmax, per-object vote in each frame, and per-track
vote over each video's frames 0-10 and 11-21 (lib/segmentation/decode.py). The logits of each video are computed once
(with the mixed precision that labelling uses) and decoded three ways.

    python scripts/experiments/eval_decode.py --checkpoint runs/cpu-3/unet/best.pt --videos 30
"""

import argparse
import time

import numpy as np
import torch

from lib.common.device import inference_autocast
from lib.data import dataset as data
from lib.data.torch_datasets import to_image_tensor
from lib.segmentation.decode import DECODES, decode
from lib.segmentation.label import vote_window
from lib.segmentation.training import score_masks
from lib.segmentation.unet import load_unet


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data-root", default="data/embedded")
    ap.add_argument("--videos", type=int, default=30, help="val videos, drawn with --seed (0: all)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default=None)
    ap.add_argument("--policy", default="skip", help="packing policy (the run's common `policy`)")
    args = ap.parse_args()
    model, _ = load_unet(args.checkpoint, args.device)
    dev = next(model.parameters()).device
    val = data.load_split(args.data_root, "val", policy=args.policy)
    idx = (
        np.arange(len(val))
        if not args.videos
        else np.sort(np.random.default_rng(args.seed).permutation(len(val))[: args.videos])
    )
    T = val.frames.shape[1]
    w = vote_window(T)
    preds = {how: np.empty((len(idx), T, data.H, data.W), np.uint8) for how in DECODES}
    seconds = dict.fromkeys(DECODES, 0.0)
    with torch.inference_mode():
        for n, v in enumerate(idx):
            x = to_image_tensor(np.asarray(val.frames[v])).to(dev)
            with inference_autocast(dev):
                logits = model(x).float().cpu()
            for how in DECODES:
                t0 = time.perf_counter()
                if how == "vote_video":
                    preds[how][n] = np.concatenate([decode(logits[i : i + w], how) for i in range(0, T, w)])
                else:
                    preds[how][n] = decode(logits, how)
                seconds[how] += time.perf_counter() - t0
    true = np.asarray(val.masks[idx])
    print(f"{args.checkpoint}: {len(idx)} val videos x {T} frames (vote_video windows of {w} frames)")
    print(f"{'decode':<12}{'val IoU':>9}{'ms/frame':>10}")
    for how in DECODES:
        print(
            f"{how:<12}{score_masks(preds[how], true)['val_iou']:>9.4f}{1000 * seconds[how] / true[:, :, 0, 0].size:>10.1f}"
        )


if __name__ == "__main__":
    main()

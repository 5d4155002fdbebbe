"""The full pipeline from raw frames 0-10 to a frame-22 mask, and the hidden-set submission file.

    frames 0-10 --U-Net--> masks 0-10 --SimVP rollout (11 steps)--> frame 22 --[post-processing]--> mask

Submission: ``torch.save({"masks": uint8 (N, 160, 240), "ids": int64 (N,)})`` with the videos in the
numeric order of their ids, written atomically and checked on reload.
"""
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import data
from .classes import NUM_CLASSES
from .forecast import predict_frame22
from .io import torch_save
from .label import segment
from .metrics import jaccard
from .paths import resolve
from .postprocess import suppress_batch


def predict_from_frames(unet, simvp, frames, device, postprocess=None, batch_videos=8, progress=True):
    """frames uint8 (N, >=11, H, W, 3) -> (frame-22 masks (N, H, W) uint8, U-Net masks of frames 0-10).
    ``postprocess``: None, or a dict of ``postprocess.suppress`` settings (min_blob, remap)."""
    n = len(frames)
    masks_in = np.empty((n, data.N_INPUT, *frames.shape[2:4]), np.uint8)
    for i in tqdm(range(0, n, batch_videos), desc="U-Net on frames 0-10", disable=not progress):
        chunk = np.asarray(frames[i:i + batch_videos, :data.N_INPUT])
        masks_in[i:i + len(chunk)] = segment(unet, chunk.reshape(-1, *chunk.shape[2:]), device).reshape(
            len(chunk), data.N_INPUT, *chunk.shape[2:4])
    pred = predict_frame22(simvp, masks_in, device)
    if postprocess:
        pred = suppress_batch(pred, masks_in, **postprocess)
    return pred, masks_in


def save_submission(path, ids, masks):
    """Write the submission atomically after checking it; returns the path."""
    ids = np.asarray(ids, np.int64)
    masks = np.asarray(masks)
    order = np.argsort(ids, kind="stable")
    sub = {"ids": torch.from_numpy(ids[order]), "masks": torch.from_numpy(masks[order].astype(np.uint8))}
    check_submission(sub, len(ids))
    torch_save(path, sub)
    check_submission(load_submission(path), len(ids))
    return Path(path)


def load_submission(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no submission file")
    try:
        return torch.load(path, weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: not a readable submission ({e})") from e


def check_submission(sub, n_expected=None):
    """Raises ValueError naming what is wrong: keys, shape, dtype, id range, order."""
    if not isinstance(sub, dict) or set(sub) != {"ids", "masks"}:
        raise ValueError(f"submission must be a dict with 'ids' and 'masks', got {type(sub).__name__} "
                         f"{sorted(sub) if isinstance(sub, dict) else ''}")
    ids, masks = sub["ids"], sub["masks"]
    if masks.dtype not in (torch.uint8, torch.int64):
        raise ValueError(f"masks have dtype {masks.dtype}, expected uint8 or int64")
    if masks.ndim != 3 or tuple(masks.shape[1:]) != (data.H, data.W):
        raise ValueError(f"masks have shape {tuple(masks.shape)}, expected (N, {data.H}, {data.W})")
    if n_expected is not None and masks.shape[0] != n_expected:
        raise ValueError(f"{masks.shape[0]} masks for {n_expected} hidden videos")
    if ids.dtype != torch.int64 or ids.shape != (masks.shape[0],):
        raise ValueError(f"ids must be int64 of shape ({masks.shape[0]},), got {ids.dtype} {tuple(ids.shape)}")
    if masks.numel() and (int(masks.min()) < 0 or int(masks.max()) >= NUM_CLASSES):
        raise ValueError(f"class ids {int(masks.min())}..{int(masks.max())} outside 0..{NUM_CLASSES - 1}")
    if len(ids) > 1 and not bool((ids[1:] > ids[:-1]).all()):
        raise ValueError("ids are not in increasing numeric order (or repeat)")


def score_hidden(data_root, sub):
    """IoU of a submission against ``<data_root>/hidden_answers.npz`` (embedded dataset only), or None."""
    path = resolve(data_root) / "hidden_answers.npz"
    if not path.is_file():
        return None
    ans = np.load(path)
    ids = sub["ids"].numpy()
    index = {int(v): i for i, v in enumerate(ans["ids"])}
    missing = [int(v) for v in ids if int(v) not in index]
    if missing:
        raise ValueError(f"{path}: no answer for hidden videos {missing[:5]}")
    truth = ans["masks"][[index[int(v)] for v in ids]]
    return jaccard(sub["masks"].numpy(), truth)

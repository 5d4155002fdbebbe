"""torch Datasets over packed splits (lib/data/dataset.py): single frames with their masks (``FrameDataset``, for the
U-Net) and sliding windows of masks (``WindowDataset``, for SimVP), and ``to_image_tensor``, the one conversion of
uint8 frames into model inputs."""

import numpy as np
import torch

from lib.data.dataset import N_INPUT, H, W


def to_image_tensor(frames):
    """uint8 (..., H, W, 3) -> float32 (..., 3, H, W) in [0, 1]."""
    t = torch.from_numpy(np.array(frames))  # a copy: memmaps are read-only
    return t.movedim(-1, -3).float().div_(255)


class FrameDataset(torch.utils.data.Dataset):
    """Every frame of a packed split as (image float (3,H,W), mask int64 (H,W)); image only when the split
    has no masks. ``augment(image, mask)`` is applied if given.

    ``crop=(h, w)`` returns random crops instead of whole frames (training a fully convolutional net on
    crops is several times cheaper per step and it still segments whole frames). Objects cover ~6% of a
    frame, so with probability ``object_bias`` the crop is centred on a random object pixel. Draws use
    torch's global RNG (which training checkpoints carry)."""

    def __init__(self, packed, *, videos=None, frames=None, augment=None, crop=None, object_bias=0.75):
        self.packed, self.augment, self.crop, self.object_bias = packed, augment, crop, object_bias
        vids = np.arange(len(packed)) if videos is None else np.asarray(videos)
        ts = np.arange(packed.frames.shape[1]) if frames is None else np.asarray(frames)
        self.index = [(int(v), int(t)) for v in vids for t in ts]

    def __len__(self):
        return len(self.index)

    def _window(self, mask):
        ch, cw = self.crop
        fg = np.flatnonzero(mask) if mask is not None else ()
        if len(fg) and float(torch.rand(())) < self.object_bias:
            cy, cx = divmod(int(fg[int(torch.randint(len(fg), ()))]), W)
        else:
            cy, cx = int(torch.randint(H, ())), int(torch.randint(W, ()))
        y0 = min(max(cy - ch // 2, 0), H - ch)
        x0 = min(max(cx - cw // 2, 0), W - cw)
        return slice(y0, y0 + ch), slice(x0, x0 + cw)

    def __getitem__(self, i):
        v, t = self.index[i]
        frame = self.packed.frames[v, t]
        mask = None if self.packed.masks is None else np.asarray(self.packed.masks[v, t])
        if self.crop:
            ys, xs = self._window(mask)
            frame = frame[ys, xs]
            mask = None if mask is None else mask[ys, xs]
        image = to_image_tensor(frame)
        if mask is None:
            return image
        mask = torch.from_numpy(mask.astype(np.int64))
        if self.augment is not None:
            image, mask = self.augment(image, mask)
        return image, mask


class WindowDataset(torch.utils.data.Dataset):
    """Sliding windows over mask videos (N, T, H, W): ``in_len`` frames in, the next ``out_len`` frames out,
    as int64 tensors. With 22 frames, in_len=11 and out_len=1 there are 11 windows a video.
    (Flips are drawn in the training step, lib/forecasting/training.py, from the RNG that checkpoints carry.)"""

    def __init__(self, masks, in_len=N_INPUT, out_len=1):
        self.masks, self.in_len, self.out_len = masks, in_len, out_len
        self.per_video = masks.shape[1] - in_len - out_len + 1
        if self.per_video < 1:
            raise ValueError(f"videos of {masks.shape[1]} frames hold no {in_len}+{out_len} window")

    def __len__(self):
        return len(self.masks) * self.per_video

    def __getitem__(self, i):
        v, s = divmod(i, self.per_video)
        clip = torch.from_numpy(np.asarray(self.masks[v, s : s + self.in_len + self.out_len], np.int64))
        return clip[: self.in_len], clip[self.in_len :]

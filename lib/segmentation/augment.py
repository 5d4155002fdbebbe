"""Joint image/mask augmentation suited to these frames.

- Horizontal flip (p=0.5): the scene is left-right symmetric (static camera, objects enter from both
  sides), and a flip keeps every class id valid.
- Vertical flip: off by default. The camera looks down at the floor at an oblique angle, so an upside-down
  frame (far floor at the bottom, shadows and perspective reversed) is not a scene the model will ever see.
- Light brightness/contrast jitter (+-10%): renders and lighting vary a little between videos.
- NO hue or saturation jitter: the 8 object colours (gray, red, blue, green, brown, cyan, purple, yellow)
  are part of the class id, so a hue shift would turn, e.g., a red cube into a brown one while its mask still
  says red: it would teach the model wrong labels.
- No rotation/scale/crop by default: object size and position carry depth in this fixed camera.

Every random draw comes from the ``torch.Generator`` passed in (or torch's global RNG when None), so a
given generator state gives the same result.
"""

import numpy as np
import torch


def _rand(generator):
    return float(torch.rand((), generator=generator))


class Augment:
    """``aug(image, mask, generator=None) -> (image, mask)`` for image (3,H,W) float in [0,1], mask (H,W).

    Also accepts stacks (T,3,H,W) with masks (T,H,W): one draw is applied to all frames alike.
    """

    def __init__(self, hflip=0.5, vflip=0.0, brightness=0.1, contrast=0.1):
        self.hflip, self.vflip = hflip, vflip
        self.brightness, self.contrast = brightness, contrast

    def __call__(self, image, mask=None, generator=None):
        # Always draw the same number of values, so the RNG stream does not depend on the outcomes.
        u_h, u_v, u_b, u_c = (_rand(generator) for _ in range(4))
        if u_h < self.hflip:
            image = image.flip(-1)
            mask = None if mask is None else mask.flip(-1)
        if u_v < self.vflip:
            image = image.flip(-2)
            mask = None if mask is None else mask.flip(-2)
        if self.brightness or self.contrast:
            b = 1.0 + self.brightness * (2 * u_b - 1)
            c = 1.0 + self.contrast * (2 * u_c - 1)
            mean = image.mean(dim=(-3, -2, -1), keepdim=True)
            image = ((image - mean) * c + mean) * b
            image = image.clamp(0.0, 1.0)
        return image, mask

    def __repr__(self):
        return (
            f"Augment(hflip={self.hflip}, vflip={self.vflip}, brightness={self.brightness}, contrast={self.contrast})"
        )


def augment(image, mask, generator=None, **kwargs):
    """One-off call of ``Augment(**kwargs)``."""
    return Augment(**kwargs)(image, mask, generator)


def flip_masks(masks, p=0.5, generator=None):
    """Horizontally flip a whole (T,H,W) mask stack (tensor or array) with probability ``p``.

    One draw for the stack, so every frame of a window is flipped alike (motion stays consistent).
    """
    if _rand(generator) >= p:
        return masks
    if torch.is_tensor(masks):
        return masks.flip(-1)
    return np.ascontiguousarray(np.asarray(masks)[..., ::-1])

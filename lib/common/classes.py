"""The 49 semantic classes (docs/classes.md): id = shape*16 + material*8 + color + 1, 0 = background.

One place for ids, names, attributes and the fixed colour each class gets in every figure and widget.
"""

import colorsys

import numpy as np

SHAPES = ["cube", "sphere", "cylinder"]
MATERIALS = ["metal", "rubber"]
COLORS = ["gray", "red", "blue", "green", "brown", "cyan", "purple", "yellow"]
NUM_CLASSES = 49
BACKGROUND = 0

# RGB of each object colour as it is rendered (CLEVR's palette, 0..1).
COLOR_RGB = {
    "gray": (0.34, 0.34, 0.34),
    "red": (0.68, 0.14, 0.14),
    "blue": (0.16, 0.29, 0.84),
    "green": (0.11, 0.41, 0.08),
    "brown": (0.51, 0.29, 0.10),
    "cyan": (0.16, 0.82, 0.82),
    "purple": (0.51, 0.15, 0.75),
    "yellow": (1.00, 0.93, 0.20),
}


def class_id(shape, material, color):
    """Class id of an object given its attribute names or indices."""
    s = SHAPES.index(shape) if isinstance(shape, str) else int(shape)
    m = MATERIALS.index(material) if isinstance(material, str) else int(material)
    c = COLORS.index(color) if isinstance(color, str) else int(color)
    if not (0 <= s < 3 and 0 <= m < 2 and 0 <= c < 8):
        raise ValueError(f"no class for shape={shape!r} material={material!r} color={color!r}")
    return s * 16 + m * 8 + c + 1


def attributes(cid):
    """(shape, material, color) names of a class id 1..48."""
    cid = int(cid)
    if not 1 <= cid <= 48:
        raise ValueError(f"class id {cid} has no attributes (objects are 1..48, 0 is background)")
    k = cid - 1
    return SHAPES[k // 16], MATERIALS[(k // 8) % 2], COLORS[k % 8]


def class_name(cid):
    return "background" if int(cid) == 0 else " ".join(attributes(cid))


CLASS_NAMES = [class_name(i) for i in range(NUM_CLASSES)]


def _palette():
    """A fixed, distinct RGB colour per class for plots: hue from the object colour, shade from
    shape and material, so that related classes look related and all 49 stay distinguishable."""
    pal = np.zeros((NUM_CLASSES, 3), np.uint8)
    pal[0] = (40, 40, 40)
    for cid in range(1, NUM_CLASSES):
        s, m, c = attributes(cid)
        r, g, b = COLOR_RGB[c]
        h, _lum, sat = colorsys.rgb_to_hls(r, g, b)
        light = [0.35, 0.55, 0.75][SHAPES.index(s)] - (0.08 if m == "metal" else 0.0)
        if c == "gray":
            sat = 0.0
        pal[cid] = np.round(
            np.array(colorsys.hls_to_rgb(h, light, max(sat, 0.0) if c == "gray" else max(sat, 0.6))) * 255
        )
    return pal


PALETTE = _palette()

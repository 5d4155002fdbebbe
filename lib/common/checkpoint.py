"""Training checkpoints: reading them (``read_checkpoint``, ``load_checkpoint``, a ``CheckpointError`` naming the
file when one is missing, unreadable or not a training checkpoint) and comparing the configs a checkpoint was made
with (``config_diff``; ``RESUME_IGNORE`` lists the keys that may change on resumption). ``lib.common.trainer.fit``
writes them; its docstring describes their content."""

import json
from pathlib import Path

import torch

from lib.common.distributed import unwrap
from lib.common.files import _jsonable

# Config keys that may change between a run and its resumption (they do not change the experiment).
RESUME_IGNORE = ("device", "num_workers", "progress", "log_every", "out_dir", "run_dir", "resume", "amp")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or belongs to a different experiment."""


def json_normal(obj):
    """JSON-normal form (tuples -> lists, numpy/Path -> python), so configs compare and load safely."""
    return json.loads(json.dumps(obj, default=_jsonable))


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def read_checkpoint(path, map_location="cpu"):
    """The whole checkpoint dict; ``CheckpointError`` naming the file if it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated, garbage, or not a torch file
        raise CheckpointError(
            f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}: {e}); "
            "delete it, or start over with resume=False"
        ) from e
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"checkpoint {path} is not a training checkpoint (no 'model' entry)")
    return ckpt


def load_checkpoint(path, model=None, map_location="cpu", strict=True):
    """``(model, config)`` with the weights loaded into ``model``, or ``(state_dict, config)`` without one."""
    ckpt = read_checkpoint(path, map_location)
    if model is None:
        return ckpt["model"], ckpt.get("config", {})
    unwrap(model).load_state_dict(ckpt["model"], strict=strict)
    return model, ckpt.get("config", {})


def config_diff(old, new, ignore=RESUME_IGNORE):
    """Sorted flattened keys (``a.b``) whose values differ between two configs, ignoring ``ignore``."""
    a, b = _flatten(json_normal(old)), _flatten(json_normal(new))
    skip = set(ignore)
    return sorted(
        k
        for k in set(a) | set(b)
        if k not in skip and k.split(".")[-1] not in skip and a.get(k, "<absent>") != b.get(k, "<absent>")
    )

"""OpenSTL compatibility (docs/recipe.md, "SimVP and OpenSTL compatibility"): the SimVP class of a backend
(``simvp_backend``: the in-repo port of lib/forecasting/simvp_port.py, or OpenSTL's own ``SimVP_Model``, imported
with clear errors when OpenSTL is missing or is the unrelated PyPI package of the same name), the torchvision
import that OpenSTL needs beside a CPU-only torch (``import_torchvision``), and the conversion of state dicts
between ``MaskSimVP`` (lib/forecasting/simvp.py) and OpenSTL (``to_openstl_state_dict`` /
``from_openstl_state_dict``).
"""

import importlib.machinery
import sys

import torch

from lib.forecasting.simvp_port import SimVP

OPENSTL_INSTALL = (
    "install OpenSTL from its source repository: `git clone https://github.com/chengtan9907/OpenSTL"
    " && cd OpenSTL && pip install -e .`"
)


# ----------------------------------------------------------------------------------------------------------
# Backends
# ----------------------------------------------------------------------------------------------------------
_TORCHVISION_PLACEHOLDERS = []  # keeps the placeholder op definitions alive (a Library undoes them when deleted)


def import_torchvision():
    """Import torchvision (OpenSTL imports timm, which imports torchvision) where its C++ ops cannot load.

    PyPI's torchvision for x86-64 Linux is a CUDA build: beside a CPU-only torch (torch==2.13.0+cpu here) its
    ``_C`` extension does not load, which torchvision allows, but its ``_meta_registrations`` then stops the
    import with 'operator torchvision::nms does not exist'. SimVP uses none of torchvision's ops, so on exactly
    that error the named ops are defined as placeholders without kernels (calling one raises) and the import is
    retried. Any other error is left to OpenSTL's own import; a working torchvision is imported as it is.
    """
    import re

    for _ in range(8):
        try:
            import torchvision  # noqa: F401

            return
        except ImportError:
            return  # not installed: `from openstl.models import ...` reports it
        except RuntimeError as e:
            op = re.search(r"operator torchvision::(\w+) does not exist", str(e))
            if op is None:
                raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]  # the half-imported package
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for name in {"nms", "qnms", op.group(1)} - {n for _, n in _TORCHVISION_PLACEHOLDERS}:
            lib.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            _TORCHVISION_PLACEHOLDERS.append((lib, name))


def _openstl_class():
    try:
        import openstl
    except ImportError as e:
        raise ImportError(
            f"OpenSTL is not installed ({e}); {OPENSTL_INSTALL} (or `bash scripts/setup/install_openstl.sh` with its "
            "source folder, which adds only what SimVP needs). It is not on PyPI: `pip install openstl` gets an "
            "unrelated STL-file package."
        ) from e
    if "openstl.models" not in sys.modules:
        # searched in the imported `openstl`'s own folders: a plain module has none; and an editable install's
        # finder (which answers by name) cannot vouch for a different `openstl` than the one imported
        path = getattr(openstl, "__path__", None)
        try:
            spec = None if path is None else importlib.machinery.PathFinder.find_spec("openstl.models", list(path))
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            where = getattr(openstl, "__file__", None) or "no file"
            raise ImportError(
                f"the installed `openstl` ({where}) has no `openstl.models`: it is the unrelated PyPI "
                f"package of the same name (STL files), not OpenSTL. Run `pip uninstall openstl`, then "
                f"{OPENSTL_INSTALL}."
            )
        import_torchvision()
    try:
        from openstl.models import SimVP_Model
    except ImportError as e:
        raise ImportError(
            f"OpenSTL is installed but `from openstl.models import SimVP_Model` failed ({e}); "
            f"install OpenSTL's requirements (`pip install -r requirements.txt` in its clone, or the few that SimVP "
            f"needs: `bash scripts/setup/install_openstl.sh`)."
        ) from e
    return SimVP_Model


def simvp_backend(name="lib"):
    """The SimVP class for a backend: 'lib' -> ``lib.forecasting.simvp_port.SimVP``; 'openstl' -> ``openstl.models.SimVP_Model``
    (OpenSTL installed from source; a clear ImportError otherwise, also for the PyPI name clash)."""
    if name == "lib":
        return SimVP
    if name == "openstl":
        return _openstl_class()
    raise ValueError(f"backend must be 'lib' or 'openstl', not {name!r}")


# ----------------------------------------------------------------------------------------------------------
# State-dict conversion
# ----------------------------------------------------------------------------------------------------------
def _strip(sd, prefix):
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def to_openstl_state_dict(sd, prefix="simvp."):
    """The inner SimVP's state dict, loadable as is (strict) into OpenSTL's ``SimVP_Model`` or ``SimVP``.

    Accepts a MaskSimVP state dict (keys under ``prefix`` are kept, stripped; embedding and head dropped),
    or one already inner; ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) prefixes are removed.
    """
    sd = _strip(_strip(dict(sd), "module."), "_orig_mod.")
    if any(k.startswith(prefix) for k in sd):
        return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    return sd


def from_openstl_state_dict(sd, prefix="simvp."):
    """An OpenSTL ``SimVP_Model`` state dict (or a checkpoint dict with 'state_dict', keys possibly under
    ``model.`` / ``module.`` as OpenSTL's trainers save them) with keys under ``prefix`` for a MaskSimVP:
    ``mask_model.load_state_dict(from_openstl_state_dict(sd), strict=False)``, or
    ``mask_model.simvp.load_state_dict(from_openstl_state_dict(sd, prefix=''))`` (strict)."""
    if "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    sd = _strip(_strip(_strip(dict(sd), "module."), "model."), "_orig_mod.")
    return {prefix + k: v for k, v in sd.items()}

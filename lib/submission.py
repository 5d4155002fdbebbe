"""The hidden-set submission file: writing, checking, scoring.

``torch.save({"masks": uint8 (N, 160, 240), "ids": int64 (N,)})`` with the videos in the numeric order of their
ids, written atomically (fsynced) and checked on reload. It holds one mask per ``video_N`` folder of
``<data_root>/hidden``: ``check_submission(..., expected_ids=data.hidden_ids(root))`` names any missing or extra
id, and ``score_hidden`` refuses to score a subset of the answers. Hidden videos with bad frames are predicted
from what they have (lib/data/dataset.py, ``read_hidden``); ``submission_report`` lists them with the fallback
used. Notebook 07 writes it from the predictor lib/pipeline.py chooses.

The course's grader reads another file: one tensor of frame-22 masks, uint8 (N, 160, 240), the hidden videos in
the numeric order of their ids, without the ids (``save_grader_file``). It is written from the checked
``{ids, masks}`` submission, so its row i is the video of the i-th smallest hidden folder id, and checked against
the hidden folders on disk (one row per folder) on reload.
"""

from pathlib import Path

import numpy as np
import torch

from lib.common.classes import NUM_CLASSES
from lib.common.files import torch_save
from lib.common.metrics import jaccard
from lib.common.paths import resolve
from lib.data import dataset as data


def make_submission(ids, masks, expected_ids=None):
    """The submission ``{"ids", "masks"}`` in numeric order of the ids, checked (against ``expected_ids``, the
    hidden folders' ids, when given: ``data.hidden_ids(data_root)``)."""
    ids = np.asarray(ids, np.int64)
    masks = np.asarray(masks)
    order = np.argsort(ids, kind="stable")
    sub = {"ids": torch.from_numpy(ids[order]), "masks": torch.from_numpy(masks[order].astype(np.uint8))}
    check_submission(sub, len(ids), expected_ids=expected_ids)
    return sub


def save_submission(path, ids, masks, expected_ids=None):
    """Write the submission atomically after checking it (``make_submission``); returns the path. Nothing is
    written when a check fails."""
    sub = make_submission(ids, masks, expected_ids)
    torch_save(path, sub)
    check_submission(load_submission(path), len(ids), expected_ids=expected_ids)
    return Path(path)


def save_grader_file(path, sub, expected_ids):
    """Write the grader's file: ``sub["masks"]`` alone, one uint8 (160, 240) mask per hidden folder in the numeric
    order of ``expected_ids`` (the ids of the hidden folders on disk); ``sub`` is checked against them first and
    the file on reload (``check_grader_file``). Returns the path."""
    check_submission(sub, expected_ids=expected_ids)
    torch_save(path, sub["masks"].to(torch.uint8).contiguous())
    check_grader_file(load_submission(path), expected_ids, sub)
    return Path(path)


def check_grader_file(masks, expected_ids, sub=None):
    """Raises ValueError naming what is wrong with a grader's file: not one uint8 tensor (N, 160, 240), class
    ids out of range, a number of masks other than the number of hidden folders, or (given the ``{ids, masks}``
    submission it was made from) rows that are not its masks in its numeric order."""
    if not isinstance(masks, torch.Tensor):
        raise ValueError(f"the grader's file must hold one tensor, got {type(masks).__name__}")
    if masks.dtype != torch.uint8 or masks.ndim != 3 or tuple(masks.shape[1:]) != (data.H, data.W):
        raise ValueError(f"the grader's file holds {masks.dtype} {tuple(masks.shape)}, expected uint8 (N, 160, 240)")
    if masks.numel() and int(masks.max()) >= NUM_CLASSES:
        raise ValueError(f"class ids up to {int(masks.max())}, outside 0..{NUM_CLASSES - 1}")
    if masks.shape[0] != len(expected_ids):
        raise ValueError(f"the grader's file has {masks.shape[0]} masks for {len(expected_ids)} hidden video folders")
    if sub is not None and not torch.equal(masks, sub["masks"].to(torch.uint8)):
        raise ValueError("the grader's file is not the submission's masks in the numeric order of the hidden ids")


def load_submission(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no submission file")
    try:
        return torch.load(path, weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: not a readable submission ({e})") from e


def _ids_text(ids, k=10):
    ids = sorted(int(v) for v in ids)
    return ", ".join(f"video_{v:05d}" for v in ids[:k]) + (f" ... ({len(ids)} in all)" if len(ids) > k else "")


def check_submission(sub, n_expected=None, expected_ids=None, data_root=None):
    """Raises ValueError naming what is wrong: keys, shape, dtype, id range, order, and, with ``expected_ids``
    (or ``data_root``, whose ``hidden/video_N`` folders give them), every missing or extra id."""
    if not isinstance(sub, dict) or set(sub) != {"ids", "masks"}:
        raise ValueError(
            f"submission must be a dict with 'ids' and 'masks', got {type(sub).__name__} "
            f"{sorted(sub) if isinstance(sub, dict) else ''}"
        )
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
    if expected_ids is None and data_root is not None:
        expected_ids = data.hidden_ids(data_root)
    if expected_ids is not None:
        want, got = {int(v) for v in expected_ids}, {int(v) for v in ids.tolist()}
        missing, extra = want - got, got - want
        if missing or extra:
            raise ValueError(
                f"the submission has {len(got)} ids for {len(want)} hidden video folders: "
                + "; ".join(
                    ([f"missing {_ids_text(missing)}"] if missing else [])
                    + ([f"extra (no such hidden folder) {_ids_text(extra)}"] if extra else [])
                )
            )


def submission_report(hidden, sub, expected_ids, background=()):
    """What the submission holds and how: one entry per hidden folder expected, and every video predicted by a
    fallback (``hidden.report["fallback"]``: files, reasons, fallback) with what was predicted for it."""
    ids = [int(v) for v in sub["ids"].tolist()]
    fallbacks = [
        {**f, "predicted": "all background" if f["video"] in set(background) else "from the filled frames"}
        for f in hidden.report.get("fallback", [])
    ]
    kinds = [f["fallback"] for f in fallbacks]
    return {
        "videos": len(ids),
        "hidden_folders": len(expected_ids),
        "ids_match_folders": ids == sorted(int(v) for v in expected_ids),
        "first_id": ids[0] if ids else None,
        "last_id": ids[-1] if ids else None,
        "fallback_counts": {k: kinds.count(k) for k in sorted(set(kinds))},
        "fallbacks": fallbacks,
    }


def hidden_answers(data_root, sub):
    """The true frame-22 masks of the submission's videos, in its order, from ``<data_root>/hidden_answers.npz``
    (embedded dataset only), or None. The submission must answer every answered video: scoring a subset is an
    error naming the ids left out."""
    path = resolve(data_root) / "hidden_answers.npz"
    if not path.is_file():
        return None
    ans = np.load(path)
    ids = sub["ids"].numpy()
    index = {int(v): i for i, v in enumerate(ans["ids"])}
    missing = [int(v) for v in ids if int(v) not in index]
    if missing:
        raise ValueError(f"{path}: no answer for hidden videos {missing[:5]}")
    left_out = set(index) - {int(v) for v in ids}
    if left_out:
        raise ValueError(
            f"the submission leaves out {len(left_out)} of the {len(index)} answered hidden videos "
            f"({_ids_text(left_out)}): scoring it would score a subset"
        )
    return ans["masks"][[index[int(v)] for v in ids]]


def score_hidden(data_root, sub):
    """(IoU, per-class IoU) of a submission against ``hidden_answers`` (embedded dataset only), or None."""
    truth = hidden_answers(data_root, sub)
    return None if truth is None else jaccard(sub["masks"].numpy(), truth)

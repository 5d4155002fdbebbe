"""The full pipeline from raw frames 0-10 to a frame-22 mask: U-Net masks, then a predictor.

    frames 0-10 --U-Net--> masks 0-10 --predictor--> frame 22

U-Net masks: ``split_unet_masks`` (notebook 03's labels when the same checkpoint made them). Predictors, each with
``.name`` and ``.predict(masks)`` ((N, 11, H, W) U-Net masks -> (N, H, W) uint8 frame-22 masks):

- ``ObjectPredictor``: the object-centric predictor notebook 06 chose (a motion model of lib/objects/motion.py,
  or the learned model of lib/objects/learned.py), saved with ``.save`` and read back with ``ObjectPredictor.load``;
- ``ResimPredictor``: the re-simulating predictor (lib/resim, docs/resim.md), one notebook 06 may choose too: saved
  the same way (``"kind": "resim"``, its fitted constants in ``resim.json`` beside the choice), loaded by
  ``ObjectPredictor.load``;
- ``ResimLearnedPredictor``: re-simulation for the objects that meet in its simulation, the learned model for the
  others (``"kind": "resim+learned"``);
- ``SimVPPredictor``: the fine-tuned SimVP's rollout, optionally post-processed (new-object suppression);
- ``CombinedPredictor``: the object prediction with SimVP's confident pixels of known objects where the object
  renderer left background (``combine``, mode "fill_confident", the threshold of ``choose_threshold``).

``choose_predictor`` builds the last two on val, scores the three there and picks one (notebook 07): the hidden
videos are then predicted by the ``.predict`` of that same object. The submission file: lib/submission.py.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from lib.common.files import save_json, save_npz
from lib.common.metrics import jaccard
from lib.data import dataset as data
from lib.forecasting.postprocess import suppress_batch
from lib.forecasting.training import predict_frame22
from lib.objects import learned, motion
from lib.objects.motion import MotionSettings
from lib.resim import predict as resim
from lib.resim.combine import combine_split
from lib.resim.fitted import ResimFit
from lib.segmentation.label import StaleLabels, cached_labels, check_labels, labels_path, segment, vote_window


# ----------------------------------------------------------------------------------------------- U-Net
def segment_videos(unet, frames, device, frame_idx=range(data.N_INPUT), batch_videos=4, progress=True):
    """U-Net masks (N, len(frame_idx), H, W) uint8 of some frames of uint8 videos (N, T, H, W, 3)."""
    frame_idx = list(frame_idx)
    n = len(frames)
    out = np.empty((n, len(frame_idx), *frames.shape[2:4]), np.uint8)
    for i in tqdm(range(0, n, batch_videos), desc="U-Net", unit="batch", disable=not progress):
        chunk = np.asarray(frames[i : i + batch_videos][:, frame_idx])
        out[i : i + len(chunk)] = segment(
            unet, chunk.reshape(-1, *chunk.shape[2:]), device, batch_size=44, video_len=vote_window(len(frame_idx))
        ).reshape(len(chunk), len(frame_idx), *chunk.shape[2:4])
    return out


def split_unet_masks(unet, packed, device, labels_dir=None, model_key=None, frames=range(data.N_INPUT), relabel=True):
    """U-Net masks (N, len(frames), H, W) uint8 of some frames of a packed split. Read from ``labels_dir`` when
    ``lib.segmentation.label.label_split`` wrote them there with ``model_key`` (the same checkpoint) for the same
    data (the packed split's fingerprint), otherwise computed from the raw frames. With ``relabel=False``, labels
    in ``labels_dir`` made by another checkpoint or for other data are a ``StaleLabels`` error instead (missing
    ones a ``FileNotFoundError``). Returns (masks, "labels" or "frames")."""
    frames = list(frames)
    if labels_dir is not None and model_key is not None:
        data_key = packed.fingerprint or None
        if not relabel:
            if not labels_path(labels_dir, packed.name).is_file():
                raise FileNotFoundError(
                    f"{labels_path(labels_dir, packed.name)}: no labels of {packed.name}; run notebook 03, "
                    "or set relabel=True"
                )
            check_labels(labels_dir, packed.name, model_key, data_key)
        cached = cached_labels(labels_dir, packed.name, model_key, data_key)
        if cached is not None and np.array_equal(cached[0], packed.ids) and max(frames) < cached[1].shape[1]:
            return np.asarray(cached[1][:, frames]), "labels"
        if not relabel:
            raise StaleLabels(f"{labels_path(labels_dir, packed.name)}: labels do not list the packed videos")
    return segment_videos(unet, packed.frames, device, frames), "frames"


# ------------------------------------------------------------------------------------- the object predictor
class ObjectPredictor:
    """An object-centric frame-22 predictor: the motion model ``settings`` (a ``motion.MotionSettings``, also
    saying how input masks are read), or the learned ``model`` (``learned.ObjectDynamics``; ``settings`` are then
    its baseline's, from its config) from ``checkpoint``. ``size_b``: the size model fitted on train (the
    perspective the oracles use), whatever the predictor uses."""

    uses_simvp = False

    def __init__(self, name, settings, size_b=0.0, model=None, checkpoint=None):
        self.name, self.settings, self.size_b = name, settings, float(size_b)
        self.model, self.checkpoint = model, checkpoint

    @classmethod
    def of_model(cls, name, model, checkpoint=None):
        """The predictor of a learned model (its checkpoint's path: what ``save`` records)."""
        return cls(name, MotionSettings.from_config(model.cfg), model.cfg["size_b"], model, checkpoint)

    def __repr__(self):
        return f"ObjectPredictor({self.name!r}, {self.settings}, checkpoint={self.checkpoint})"

    def for_inputs(self, src, unet_min_area=motion.UNET_MIN_AREA):
        """This predictor reading "true" masks or "unet" labels (``motion.reading``)."""
        return ObjectPredictor(
            self.name, self.settings.for_inputs(src, unet_min_area), self.size_b, self.model, self.checkpoint
        )

    def predict(self, masks):
        """(N, H, W) uint8 frame-22 masks of (N, >=11, H, W) input masks."""
        if self.model is None:
            return motion.predict_split(masks, self.settings, progress=False)
        self.model.cfg.update(min_area=self.settings.min_area, denoise=self.settings.denoise)
        return learned.predict_split_learned(self.model, masks, device="cpu", progress=False)

    def save(self, path):
        """Record the predictor as JSON (notebook 06's ``objects/selected.json``): its name, the motion settings
        (``kwargs``) or the checkpoint, how inputs are read (``min_area``, ``denoise``) and ``size_b``. A
        checkpoint in the JSON's folder (or below) is stored relative to it, so a copied run folder uses its own."""
        path = Path(path)
        checkpoint = None if self.checkpoint is None else Path(self.checkpoint).resolve()
        if checkpoint is not None and checkpoint.is_relative_to(path.parent.resolve()):
            checkpoint = checkpoint.relative_to(path.parent.resolve())
        s = asdict(self.settings)
        reading = {"min_area": s.pop("min_area"), "denoise": s.pop("denoise")}
        save_json(
            path,
            {
                "kind": "objects",
                "name": self.name,
                "kwargs": {} if self.checkpoint else s,
                "checkpoint": None if checkpoint is None else str(checkpoint),
                **reading,
                "size_b": self.size_b,
            },
        )

    @classmethod
    def load(cls, path):
        """The predictor a ``save`` file records: this class's, or with ``"kind": "resim"`` a ``ResimPredictor``
        (``"resim+learned"``: a ``ResimLearnedPredictor``)
        (files written before the kind was recorded are this class's). One written before ``size_b`` was recorded
        (an older run's ``objects/selected.json``) takes it from its run's notebook 06 metrics, else from the
        settings."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no object predictor chosen yet; run notebook 06 (objects) first")
        sel = json.loads(path.read_text())
        kind = sel.get("kind", "objects")
        if kind in (ResimPredictor.kind, ResimLearnedPredictor.kind):
            return {"resim": ResimPredictor, "resim+learned": ResimLearnedPredictor}[kind].from_selection(path, sel)
        if kind != "objects":
            raise ValueError(f"{path}: unknown predictor kind {kind!r} (known: 'objects', 'resim', 'resim+learned')")
        reading = {"min_area": sel["min_area"], "denoise": sel["denoise"]}
        if sel["checkpoint"]:
            checkpoint = path.parent / sel["checkpoint"]  # relative to this file's folder (absolute: as it is)
            model = learned.load_dynamics(checkpoint)
            model.cfg.update(reading)
            out = cls.of_model(sel["name"], model, checkpoint)
        else:
            out = cls(sel["name"], MotionSettings(**sel["kwargs"], **reading))
        if "size_b" in sel:
            out.size_b = float(sel["size_b"])
        else:  # written before size_b was recorded: the size model of its run's notebook 06, as notebook 07 read it
            metrics = path.parent.parent / "metrics" / "06_objects.json"
            if metrics.is_file():
                out.size_b = float(json.loads(metrics.read_text())["settings"]["physics"]["size_b"])
        return out


@dataclass(frozen=True)
class Reading:
    """How a predictor reads its input masks (``motion.reading``): objects under ``min_area`` pixels dropped, and
    with ``denoise`` each object taken from its largest blob."""

    min_area: int = 1
    denoise: bool = False


@dataclass(frozen=True)
class ResimPredictor:
    """The re-simulating predictor (lib/resim, docs/resim.md): the camera, sizes and physics of ``fit`` (a
    ``ResimFit``, fitted on train), reading input masks as ``settings`` says (a ``Reading``; notebook 07's oracle
    rows read them alike), predicting in ``workers`` processes. ``size_b``: the size model fitted on train (the
    perspective the oracles use), which re-simulation itself does not use."""

    name: str
    fit: ResimFit
    settings: Reading = Reading()
    size_b: float = 0.0
    workers: int = 2  # notebook 07 predicts with this many (it has no workers parameter)

    kind = "resim"
    uses_simvp = False
    FIT_FILE = "resim.json"  # the fit's file, beside the selection

    def __repr__(self):
        return f"ResimPredictor({self.name!r}, {self.settings}, workers={self.workers})"

    def for_inputs(self, src, unet_min_area=motion.UNET_MIN_AREA):
        """This predictor reading "true" masks or "unet" labels (``motion.reading``)."""
        return replace(self, settings=Reading(**motion.reading(src, unet_min_area)))

    def predict(self, masks, touching=False):
        """(N, H, W) uint8 frame-22 masks of (N, >=11, H, W) input masks; with ``touching`` also, per video, the
        class ids of the objects that touch another one in the simulation (``ResimLearnedPredictor`` takes them)."""
        f, s = self.fit, self.settings
        return resim.predict_split(
            masks, f.camera, f.sizes, f.physics, min_area=s.min_area, denoise=s.denoise, workers=self.workers,
            progress=False, touching=touching,
        )  # fmt: skip

    def estimate(self, masks_in):
        """The scene that ``predict`` starts from, of one video's input masks (>= 11, H, W): an
        ``estimate.Estimate``, with each object's floor positions measured per input frame."""
        f, s = self.fit, self.settings
        return resim.estimate_inputs(masks_in, f.camera, f.sizes, f.physics, min_area=s.min_area, denoise=s.denoise)

    def save(self, path):
        """Record the predictor as JSON (notebook 06's ``objects/selected.json``): ``"kind": "resim"``, its name, how
        inputs are read, ``size_b``, and the fit, written to ``FIT_FILE`` in the same folder and named relative to
        it (a copied run folder uses its own)."""
        path = Path(path)
        self.fit.to_json(path.parent / self.FIT_FILE)
        record = {"kind": self.kind, "name": self.name, "fit": self.FIT_FILE, **asdict(self.settings)}
        save_json(path, {**record, "size_b": self.size_b})

    @classmethod
    def from_selection(cls, path, sel):
        """The predictor that ``sel``, the content of the selection file ``path``, records (``ObjectPredictor.load``
        reads the file)."""
        fit_path = Path(path).parent / sel["fit"]  # relative to the selection's folder (absolute: as it is)
        if not fit_path.is_file():
            raise FileNotFoundError(f"{path}: its re-simulation fit {fit_path} is missing; run notebook 06 again")
        reading = Reading(sel["min_area"], sel["denoise"])
        return cls(sel["name"], ResimFit.from_json(fit_path), reading, float(sel["size_b"]))


@dataclass(frozen=True)
class ResimLearnedPredictor:
    """Re-simulation for the objects that touch another one in its simulation, the learned object model for the
    others (``lib/resim/combine.py``): the simulator resolves collisions, the learned model moves lone objects
    better. ``resim`` a ``ResimPredictor``, ``learned`` an ``ObjectPredictor`` of the learned model; notebook 07's
    oracle rows read inputs as the learned model does (``settings``, ``size_b``)."""

    name: str
    resim: ResimPredictor
    learned: ObjectPredictor

    kind = "resim+learned"
    uses_simvp = False
    PARTS = {"resim": "selected_resim.json", "learned": "selected_learned.json"}  # its parts' files, beside it

    @property
    def settings(self):
        return self.learned.settings

    @property
    def size_b(self):
        return self.learned.size_b

    def for_inputs(self, src, unet_min_area=motion.UNET_MIN_AREA):
        """Both parts reading "true" masks or "unet" labels (``motion.reading``)."""
        return replace(
            self, resim=self.resim.for_inputs(src, unet_min_area), learned=self.learned.for_inputs(src, unet_min_area)
        )

    def predict(self, masks):
        """(N, H, W) uint8 frame-22 masks of (N, >=11, H, W) input masks."""
        resim_masks, touched = self.resim.predict(masks, touching=True)
        return combine_split(resim_masks, self.learned.predict(masks), touched)

    def save(self, path):
        """Record the predictor as JSON (``"kind": "resim+learned"``) and each part with its own ``save`` in the
        same folder (``PARTS``), named relative to it."""
        path = Path(path)
        for part, name in self.PARTS.items():
            getattr(self, part).save(path.parent / name)
        save_json(path, {"kind": self.kind, "name": self.name, "parts": self.PARTS})

    @classmethod
    def from_selection(cls, path, sel):
        """The predictor that ``sel``, the content of the selection file ``path``, records."""
        parts = {part: ObjectPredictor.load(Path(path).parent / name) for part, name in sel["parts"].items()}
        return cls(sel["name"], parts["resim"], parts["learned"])


# ------------------------------------------------------------------------------------------ SimVP
@dataclass(frozen=True)
class SimVPPredictor:
    """SimVP's frame 22: the 11-step rollout of ``model`` (``predict_frame22``), with the new-object suppression
    (``suppress_batch``, blobs under ``min_blob`` pixels) when ``postprocess``."""

    model: object
    device: object
    postprocess: bool = False
    min_blob: int = 100
    uses_simvp = True

    @property
    def name(self):
        return "fine-tuned + post-processing" if self.postprocess else "SimVP fine-tuned (notebook 05)"

    def forecast(self, masks):
        """(prediction, confidence): the rollout and its max softmax probability, before post-processing."""
        return predict_frame22(self.model, masks, self.device, return_conf=True)

    def finish(self, pred, masks):
        """The post-processed ``pred`` when ``postprocess``, else ``pred``."""
        return suppress_batch(pred, masks, min_blob=self.min_blob) if self.postprocess else pred

    def predict(self, masks):
        return self.finish(self.forecast(masks)[0], masks)


# ------------------------------------------------------------------------------------------ combination
COMBINE_MODES = ("fill", "confident", "fill_confident")


def known_ids(masks):
    """Per video the ids its input masks (N, T, H, W) show (what ``combine`` may fill)."""
    return [np.unique(m) for m in masks]


def combine(objects_pred, simvp_pred, simvp_conf=None, mode="fill", threshold=0.9, known_ids=None):
    """Merge an object-rendered prediction with SimVP's, (H, W) or (N, H, W) alike.

    - ``"fill"``: keep the object prediction; where it is background and SimVP predicts an object id
      (one of ``known_ids`` if given: ids seen in the input frames, a list per video or one set), take SimVP's
      (SimVP sees new contacts, objects the renderer could not move, shapes it could not complete).
    - ``"confident"``: take SimVP's wherever its confidence (``simvp_conf``: max softmax prob, same shape)
      exceeds ``threshold``, else the object prediction.
    - ``"fill_confident"``: both rules ("fill" only where SimVP is confident too).
    """
    if mode not in COMBINE_MODES:
        raise ValueError(f"mode must be one of {COMBINE_MODES}, not {mode!r}")
    obj = np.asarray(objects_pred)
    sim = np.asarray(simvp_pred)
    if obj.shape != sim.shape:
        raise ValueError(f"object prediction {obj.shape} and SimVP prediction {sim.shape} differ in shape")
    if mode != "fill" and simvp_conf is None:
        raise ValueError(f"mode {mode!r} needs simvp_conf")
    out = obj.copy()
    fill = (obj == 0) & (sim != 0)
    if known_ids is not None:
        if obj.ndim == 3 and len(known_ids) == len(obj) and not np.isscalar(known_ids[0]):
            ok = np.stack([np.isin(s, np.asarray(list(k))) for s, k in zip(sim, known_ids)])
        else:
            ok = np.isin(sim, np.asarray(list(known_ids)))
        fill &= ok
    conf = None if simvp_conf is None else np.asarray(simvp_conf) > threshold
    if mode == "fill":
        take = fill
    elif mode == "confident":
        take = conf
    else:
        take = fill & conf
    out[take] = sim[take]
    return out


def choose_threshold(
    objects_pred, simvp_pred, simvp_conf, true, known_ids, thresholds=(0.5, 0.7, 0.9, 0.95, 0.99, 1.0), folds=2, seed=0
):
    """The confidence threshold of ``combine(mode="fill_confident")``, chosen on labelled videos (val).

    Returns (threshold best on all videos, for new videos; the cross-validated prediction: the videos are split
    into ``folds`` parts and each part is combined with the threshold best on the others, so the IoU of that
    prediction is an honest estimate of the combination, not one tuned on the videos it is scored on).
    Threshold 1.0 never takes SimVP's pixels (the object prediction alone)."""
    obj, sim, conf, true = (np.asarray(a) for a in (objects_pred, simvp_pred, simvp_conf, true))

    def best(idx):
        return max(
            thresholds,
            key=lambda t: jaccard(
                combine(obj[idx], sim[idx], conf[idx], "fill_confident", t, [known_ids[i] for i in idx]), true[idx]
            )[0],
        )

    n = len(obj)
    parts = np.array_split(np.random.default_rng(seed).permutation(n), folds)
    cv = np.empty_like(obj)
    for k, part in enumerate(parts):
        rest = np.sort(np.concatenate([p for j, p in enumerate(parts) if j != k]))
        t = best(rest)
        cv[part] = combine(obj[part], sim[part], conf[part], "fill_confident", t, [known_ids[i] for i in part])
    return best(np.arange(n)), cv


class CombinedPredictor:
    """The object prediction, with SimVP's pixels of known objects whose confidence exceeds ``threshold`` where the
    object renderer left background (``combine``, mode "fill_confident"; SimVP post-processed as ``simvp`` is)."""

    name = "combined: objects + confident SimVP fill (cross-validated)"
    uses_simvp = True

    def __init__(self, objects, simvp, threshold):
        self.objects, self.simvp, self.threshold = objects, simvp, threshold

    def predict(self, masks):
        sim, conf = self.simvp.forecast(masks)
        sim = self.simvp.finish(sim, masks)
        return combine(self.objects.predict(masks), sim, conf, "fill_confident", self.threshold, known_ids(masks))


# ------------------------------------------------------------------------------------------ choice on val
@dataclass
class Choice:
    """What ``choose_predictor`` found on val: the chosen ``predictor`` (under ``key``), every candidate and the
    name of its row (``names``), the val predictions by row name (``rows``; the combination's cross-validated),
    SimVP's post-processing and the combination's threshold."""

    key: str
    predictor: object
    candidates: dict
    names: dict
    rows: dict
    postprocess: bool
    threshold: float

    @property
    def name(self):
        """The chosen predictor's row."""
        return self.names[self.key]


def _chosen_key(predictor_file, masks_in):
    """sha256 of the bytes of ``predictor_file`` and of the shape, dtype and bytes of ``masks_in``."""
    masks_in = np.ascontiguousarray(masks_in)
    h = hashlib.sha256(Path(predictor_file).read_bytes())
    h.update(f"{masks_in.shape}{masks_in.dtype}".encode())
    h.update(masks_in.tobytes())
    return h.hexdigest()


def save_chosen_predictions(path, predictor_file, masks_in, preds):
    """Notebook 06: the chosen object predictor's frame-22 masks ``preds`` of val from ``masks_in`` (its U-Net
    frames 0-10), kept beside ``predictor_file`` (``objects/selected.json``) so that notebook 07 need not predict
    val again (``load_chosen_predictions``)."""
    save_npz(path, masks=np.asarray(preds, np.uint8), key=np.array(_chosen_key(predictor_file, masks_in)))


def load_chosen_predictions(path, predictor_file, masks_in):
    """The masks ``save_chosen_predictions`` kept in ``path`` when they were predicted by the predictor that
    ``predictor_file`` now holds from these same ``masks_in``; None otherwise (absent, another choice, other
    inputs)."""
    path = Path(path)
    if not path.is_file():
        return None
    with np.load(path) as z:
        return z["masks"] if str(z["key"]) == _chosen_key(predictor_file, masks_in) else None


def choose_predictor(objects, simvp, masks, true22, predictor="auto", postprocess="auto", seed=0, objects_val=None):
    """The three candidates on labelled videos (val) and the one ``predictor`` names, or with "auto" the best.

    ``objects``: the ``ObjectPredictor``; ``simvp``: a ``SimVPPredictor`` (its ``postprocess`` is decided here:
    ``postprocess`` "on", "off", or "auto": on when it raises the IoU of ``masks``); the combination's threshold is
    chosen by ``choose_threshold`` (cross-validated over two folds: its row is an honest estimate). ``rows``: the
    val predictions of SimVP without and with post-processing, of the objects and of the combination, by the names
    of their rows; candidates are scored by the stacked IoU of their row against ``true22``. ``objects_val``: the
    objects' predictions of ``masks``, when already made (``load_chosen_predictions``)."""
    sim, conf = simvp.forecast(masks)
    pp = suppress_batch(sim, masks, min_blob=simvp.min_blob)
    use_pp = postprocess == "on" or (postprocess == "auto" and jaccard(pp, true22)[0] > jaccard(sim, true22)[0])
    simvp = replace(simvp, postprocess=use_pp)
    obj = objects.predict(masks) if objects_val is None else objects_val
    threshold, comb = choose_threshold(obj, pp if use_pp else sim, conf, true22, known_ids(masks), seed=seed)
    combined = CombinedPredictor(objects, simvp, threshold)
    rows = {
        replace(simvp, postprocess=False).name: sim,
        replace(simvp, postprocess=True).name: pp,
        f"objects: {objects.name} (notebook 06)": obj,
        combined.name: comb,
    }
    candidates = {"simvp": simvp, "objects": objects, "combined": combined}
    names = dict(zip(candidates, (simvp.name, f"objects: {objects.name} (notebook 06)", combined.name)))
    if predictor == "auto":
        key = max(candidates, key=lambda c: jaccard(rows[names[c]], true22)[0])
    elif predictor in candidates:
        key = predictor
    else:
        raise ValueError(f"predictor must be 'auto' or one of {list(candidates)}, not {predictor!r}")
    return Choice(key, candidates[key], candidates, names, rows, use_pp, threshold)

"""SimVP against the REAL OpenSTL (``openstl.models.SimVP_Model``), not the project's copy: the same weights
load both ways, logits and 11-step rollouts agree exactly, and checkpoints trained with either backend load
and predict the same with the other.

Skipped as a whole where OpenSTL is not importable. To run it: ``bash scripts/setup/install_openstl.sh`` (with the
OpenSTL source in shared/third_party/OpenSTL beside the clone, or its path as argument / $OPENSTL_SRC),
or ``pip install -e ".[openstl]"``.
"""

import numpy as np
import pytest
import torch

from lib.common.classes import NUM_CLASSES
from lib.forecasting.openstl import from_openstl_state_dict, simvp_backend, to_openstl_state_dict
from lib.forecasting.simvp import MaskSimVP, count_params, load_simvp, rollout, save_simvp
from lib.forecasting.simvp_port import SimVP

HOW_TO_RUN = (
    "to run these tests: `bash scripts/setup/install_openstl.sh` (with the OpenSTL source in shared/third_party/OpenSTL "
    'beside the clone, or OPENSTL_SRC=/path/to/OpenSTL), or `pip install -e ".[openstl]"`'
)
try:
    SimVP_Model = simvp_backend("openstl")
except ImportError as e:
    pytest.skip(f"the real OpenSTL is not importable ({e}); {HOW_TO_RUN}", allow_module_level=True)

# tiny sizes: 11 input frames (the recipe's), frames not a multiple of the encoder's stride (padding is exercised)
TINY = dict(embed_dim=4, hid_S=4, hid_T=8, N_S=2, N_T=3, mlp_ratio=2.0, frame_size=(18, 26))
H, W = TINY["frame_size"]


def _pair(seed=0, **kw):
    """(lib model, OpenSTL model) holding the same weights; BatchNorm running stats moved off their defaults."""
    cfg = {**TINY, **kw}
    torch.manual_seed(seed)
    lib = MaskSimVP(backend="lib", **cfg)
    lib.train()
    with torch.no_grad():
        lib(torch.randint(0, NUM_CLASSES, (2, 11, H, W)))
    ost = MaskSimVP(backend="openstl", **cfg)
    ost.load_state_dict(lib.state_dict())  # strict
    return lib.eval(), ost.eval()


def _masks(seed=1, b=2, t=11):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, NUM_CLASSES, (b, t, H, W), generator=g)


def test_the_real_openstl_is_used():
    assert SimVP_Model.__module__ == "openstl.models.simvp_model"
    m = MaskSimVP(backend="openstl", **TINY)
    assert type(m.simvp) is SimVP_Model and m.config["backend"] == "openstl"


def test_state_dict_loads_both_ways():
    torch.manual_seed(0)
    lib = MaskSimVP(backend="lib", **TINY)
    ost = MaskSimVP(backend="openstl", **TINY)
    a, b = lib.state_dict(), ost.state_dict()
    assert list(a) == list(b) and all(a[k].shape == b[k].shape for k in a)
    assert count_params(lib) == count_params(ost)
    ost.load_state_dict(a)  # lib -> openstl (strict)
    lib2 = MaskSimVP(backend="lib", **TINY)
    lib2.load_state_dict(ost.state_dict())  # openstl -> lib (strict)
    assert all(torch.equal(v, lib2.state_dict()[k]) for k, v in a.items())
    # the inner module alone: a MaskSimVP's SimVP into a bare SimVP_Model, and an OpenSTL state dict back
    bare = SimVP_Model(**lib.simvp_config())
    bare.load_state_dict(to_openstl_state_dict(lib.state_dict()))  # strict
    for sd in (bare.state_dict(), {"state_dict": {"model." + k: v for k, v in bare.state_dict().items()}}):
        fresh = MaskSimVP(backend="lib", **TINY)
        res = fresh.load_state_dict(from_openstl_state_dict(sd), strict=False)
        assert sorted(res.missing_keys) == ["embed.weight", "head.bias", "head.weight"] and not res.unexpected_keys
        assert all(torch.equal(v, a["simvp." + k]) for k, v in fresh.simvp.state_dict().items())


def test_plain_simvp_matches_simvp_model():
    cfg = dict(in_shape=(4, 2, 16, 16), hid_S=8, hid_T=16, N_S=2, N_T=3)
    torch.manual_seed(0)
    ours, theirs = SimVP(**cfg), SimVP_Model(**cfg)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    x = torch.rand(2, 4, 2, 16, 16)
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), theirs.eval()(x))


@pytest.mark.parametrize("down,copy_prior", [(1, False), (2, True)])
def test_logits_equal(down, copy_prior):
    lib, ost = _pair(down=down, copy_prior=copy_prior)
    x = _masks()
    with torch.no_grad():
        a, b = lib(x), ost(x)
    assert a.shape == (2, NUM_CLASSES, H, W)
    assert torch.equal(a, b)
    # why MaskSimVP.decode hands the translator the 5-D latent: OpenSTL's MidMetaNet takes nothing else
    latent, _ = ost.encode(x)
    with pytest.raises(ValueError):
        ost.simvp.hid(latent.flatten(1, 2))


def test_train_mode_forward_and_gradients_equal():
    lib, ost = _pair(down=2)
    lib.train(), ost.train()
    x, y = _masks(), _masks(seed=2, t=1)[:, 0]
    grads = []
    for m in (lib, ost):
        loss = torch.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        grads.append((loss.detach(), {k: p.grad for k, p in m.named_parameters()}))
    (la, ga), (lb, gb) = grads
    assert torch.equal(la, lb)
    assert all(torch.allclose(ga[k], gb[k], rtol=1e-5, atol=1e-7) for k in ga)


def test_rollouts_equal():
    lib, ost = _pair(down=2, copy_prior=True)
    x = _masks(t=13)  # more frames than the window: the last 11 are used
    a, b = rollout(lib, x, 11, return_all=True), rollout(ost, x, 11, return_all=True)
    assert a.shape == (2, 11, H, W)
    assert torch.equal(a, b)
    assert torch.equal(rollout(ost, x, 11), b[:, -1])


def test_save_simvp_checkpoint_loads_with_either_backend(tmp_path):
    lib, ost = _pair(down=2)
    x = _masks()
    with torch.no_grad():
        want = lib(x)
    for saved in (lib, ost):
        path = save_simvp(tmp_path / f"{saved.config['backend']}.pt", saved)
        for backend in ("lib", "openstl"):
            m = load_simvp(path, backend=backend).eval()
            assert type(m.simvp) is simvp_backend(backend)
            with torch.no_grad():
                assert torch.equal(m(x), want)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    """A data root of one train and one val video and the val labels (the true masks, standing in for the
    U-Net labels that train_simvp evaluates on)."""
    from conftest import write_video

    from lib.data import dataset as data

    root = tmp_path_factory.mktemp("openstl-data")
    write_video(root / "train" / "video_00000", seed=0)
    write_video(root / "val" / "video_01000", seed=1)
    val = data.load_split(root, "val", progress=False)
    (root / "labels").mkdir()
    np.save(root / "labels" / "val.ids.npy", np.asarray(val.ids))
    np.save(root / "labels" / "val.npy", np.asarray(val.masks))
    return root, np.asarray(val.masks[:, :11])


@pytest.mark.parametrize("trained", ["lib", "openstl"])
def test_train_simvp_checkpoint_predicts_the_same_with_the_other_backend(trained, small_root, tmp_path):
    from lib.forecasting.training import load_simvp_checkpoint, predict_frame22, train_simvp

    root, inputs = small_root
    out = tmp_path / f"simvp-{trained}"
    model, history, config = train_simvp(
        root,
        root / "labels",
        out,
        progress=False,
        device="cpu",
        embed_dim=4,
        hid_S=4,
        hid_T=8,
        N_T=2,
        mlp_ratio=2.0,
        backend=trained,
        epochs=1,
        steps_per_epoch=2,
        batch_size=2,
        use_unlabeled=False,
        eval_videos=1,
    )
    assert len(history) == 1 and config["backend"] == trained and type(model.simvp) is simvp_backend(trained)
    dev = torch.device("cpu")
    want = predict_frame22(model, inputs, dev)
    x = torch.from_numpy(inputs.astype(np.int64))
    with torch.no_grad():
        logits = model(x)
    other = "openstl" if trained == "lib" else "lib"
    for backend in (None, trained, other):  # None: the backend the checkpoint was trained with
        m, cfg = load_simvp_checkpoint(out / "best.pt", "cpu", backend=backend)
        assert cfg["backend"] == (backend or trained) and type(m.simvp) is simvp_backend(backend or trained)
        assert not m.training
        with torch.no_grad():
            assert torch.equal(m(x), logits)
        if backend == other:  # the frame-22 prediction (11-step rollout) of the other backend
            assert np.array_equal(predict_frame22(m, inputs, dev), want)

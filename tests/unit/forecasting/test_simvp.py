"""SimVP: OpenSTL-compatible layout (keys, shapes, parameter count), MaskSimVP shapes, rollout,
checkpoints, state-dict transfer, the OpenSTL import guard, drop-path rates, FLOPs counter."""

import math
import sys
import types

import pytest
import torch
import torch.nn as nn

from lib.common.classes import NUM_CLASSES
from lib.forecasting.openstl import from_openstl_state_dict, simvp_backend, to_openstl_state_dict
from lib.forecasting.simvp import MaskSimVP, count_flops, count_params, load_simvp, rollout, save_simvp
from lib.forecasting.simvp_port import DropPath, SimVP

BN = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]

# ------------------------------------------------------------------------------------------------------
# Expected layout, from OpenSTL's rules (docs/recipe.md, SimVP and OpenSTL compatibility), not dumped from our SimVP.
# Config: in_shape=(4, 2, 16, 16), hid_S=8, hid_T=16, N_S=2, N_T=3, mlp_ratio=8.
#   encoder strides [False, True]; decoder [True (PixelShuffle: conv to 4*8=32), False]; readout 8 -> 2.
#   translator width T*hid_S = 32: block 0 at 32 (+ reduction 32->16), block 1 at 16, block 2 at 16
#   (+ reduction 16->32); MLP hidden = 8 * dim.
# ------------------------------------------------------------------------------------------------------
SMALL_ARGS = dict(in_shape=(4, 2, 16, 16), hid_S=8, hid_T=16, N_S=2, N_T=3)
SMALL_LISTING = {
    "enc.enc.0.conv.conv.weight": (8, 2, 3, 3),
    "enc.enc.0.conv.conv.bias": (8,),
    "enc.enc.0.conv.norm.weight": (8,),
    "enc.enc.0.conv.norm.bias": (8,),
    "enc.enc.1.conv.conv.weight": (8, 8, 3, 3),
    "enc.enc.1.conv.conv.bias": (8,),
    "enc.enc.1.conv.norm.weight": (8,),
    "enc.enc.1.conv.norm.bias": (8,),
    "dec.dec.0.conv.conv.0.weight": (32, 8, 3, 3),
    "dec.dec.0.conv.conv.0.bias": (32,),
    "dec.dec.0.conv.norm.weight": (8,),
    "dec.dec.0.conv.norm.bias": (8,),
    "dec.dec.1.conv.conv.weight": (8, 8, 3, 3),
    "dec.dec.1.conv.conv.bias": (8,),
    "dec.dec.1.conv.norm.weight": (8,),
    "dec.dec.1.conv.norm.bias": (8,),
    "dec.readout.weight": (2, 8, 1, 1),
    "dec.readout.bias": (2,),
    # translator block 0, dim 32, MLP hidden 256
    "hid.enc.0.block.layer_scale_1": (32,),
    "hid.enc.0.block.layer_scale_2": (32,),
    "hid.enc.0.block.norm1.weight": (32,),
    "hid.enc.0.block.norm1.bias": (32,),
    "hid.enc.0.block.norm1.running_mean": (32,),
    "hid.enc.0.block.norm1.running_var": (32,),
    "hid.enc.0.block.norm1.num_batches_tracked": (),
    "hid.enc.0.block.attn.proj_1.weight": (32, 32, 1, 1),
    "hid.enc.0.block.attn.proj_1.bias": (32,),
    "hid.enc.0.block.attn.spatial_gating_unit.conv0.weight": (32, 1, 5, 5),
    "hid.enc.0.block.attn.spatial_gating_unit.conv0.bias": (32,),
    "hid.enc.0.block.attn.spatial_gating_unit.conv_spatial.weight": (32, 1, 7, 7),
    "hid.enc.0.block.attn.spatial_gating_unit.conv_spatial.bias": (32,),
    "hid.enc.0.block.attn.spatial_gating_unit.conv1.weight": (64, 32, 1, 1),
    "hid.enc.0.block.attn.spatial_gating_unit.conv1.bias": (64,),
    "hid.enc.0.block.attn.proj_2.weight": (32, 32, 1, 1),
    "hid.enc.0.block.attn.proj_2.bias": (32,),
    "hid.enc.0.block.norm2.weight": (32,),
    "hid.enc.0.block.norm2.bias": (32,),
    "hid.enc.0.block.norm2.running_mean": (32,),
    "hid.enc.0.block.norm2.running_var": (32,),
    "hid.enc.0.block.norm2.num_batches_tracked": (),
    "hid.enc.0.block.mlp.fc1.weight": (256, 32, 1, 1),
    "hid.enc.0.block.mlp.fc1.bias": (256,),
    "hid.enc.0.block.mlp.dwconv.dwconv.weight": (256, 1, 3, 3),
    "hid.enc.0.block.mlp.dwconv.dwconv.bias": (256,),
    "hid.enc.0.block.mlp.fc2.weight": (32, 256, 1, 1),
    "hid.enc.0.block.mlp.fc2.bias": (32,),
    "hid.enc.0.reduction.weight": (16, 32, 1, 1),
    "hid.enc.0.reduction.bias": (16,),
    # translator block 1, dim 16, MLP hidden 128, no reduction
    "hid.enc.1.block.layer_scale_1": (16,),
    "hid.enc.1.block.layer_scale_2": (16,),
    "hid.enc.1.block.norm1.weight": (16,),
    "hid.enc.1.block.norm1.bias": (16,),
    "hid.enc.1.block.norm1.running_mean": (16,),
    "hid.enc.1.block.norm1.running_var": (16,),
    "hid.enc.1.block.norm1.num_batches_tracked": (),
    "hid.enc.1.block.attn.proj_1.weight": (16, 16, 1, 1),
    "hid.enc.1.block.attn.proj_1.bias": (16,),
    "hid.enc.1.block.attn.spatial_gating_unit.conv0.weight": (16, 1, 5, 5),
    "hid.enc.1.block.attn.spatial_gating_unit.conv0.bias": (16,),
    "hid.enc.1.block.attn.spatial_gating_unit.conv_spatial.weight": (16, 1, 7, 7),
    "hid.enc.1.block.attn.spatial_gating_unit.conv_spatial.bias": (16,),
    "hid.enc.1.block.attn.spatial_gating_unit.conv1.weight": (32, 16, 1, 1),
    "hid.enc.1.block.attn.spatial_gating_unit.conv1.bias": (32,),
    "hid.enc.1.block.attn.proj_2.weight": (16, 16, 1, 1),
    "hid.enc.1.block.attn.proj_2.bias": (16,),
    "hid.enc.1.block.norm2.weight": (16,),
    "hid.enc.1.block.norm2.bias": (16,),
    "hid.enc.1.block.norm2.running_mean": (16,),
    "hid.enc.1.block.norm2.running_var": (16,),
    "hid.enc.1.block.norm2.num_batches_tracked": (),
    "hid.enc.1.block.mlp.fc1.weight": (128, 16, 1, 1),
    "hid.enc.1.block.mlp.fc1.bias": (128,),
    "hid.enc.1.block.mlp.dwconv.dwconv.weight": (128, 1, 3, 3),
    "hid.enc.1.block.mlp.dwconv.dwconv.bias": (128,),
    "hid.enc.1.block.mlp.fc2.weight": (16, 128, 1, 1),
    "hid.enc.1.block.mlp.fc2.bias": (16,),
    # translator block 2 (last), dim 16, MLP hidden 128, reduction 16 -> 32
    "hid.enc.2.block.layer_scale_1": (16,),
    "hid.enc.2.block.layer_scale_2": (16,),
    "hid.enc.2.block.norm1.weight": (16,),
    "hid.enc.2.block.norm1.bias": (16,),
    "hid.enc.2.block.norm1.running_mean": (16,),
    "hid.enc.2.block.norm1.running_var": (16,),
    "hid.enc.2.block.norm1.num_batches_tracked": (),
    "hid.enc.2.block.attn.proj_1.weight": (16, 16, 1, 1),
    "hid.enc.2.block.attn.proj_1.bias": (16,),
    "hid.enc.2.block.attn.spatial_gating_unit.conv0.weight": (16, 1, 5, 5),
    "hid.enc.2.block.attn.spatial_gating_unit.conv0.bias": (16,),
    "hid.enc.2.block.attn.spatial_gating_unit.conv_spatial.weight": (16, 1, 7, 7),
    "hid.enc.2.block.attn.spatial_gating_unit.conv_spatial.bias": (16,),
    "hid.enc.2.block.attn.spatial_gating_unit.conv1.weight": (32, 16, 1, 1),
    "hid.enc.2.block.attn.spatial_gating_unit.conv1.bias": (32,),
    "hid.enc.2.block.attn.proj_2.weight": (16, 16, 1, 1),
    "hid.enc.2.block.attn.proj_2.bias": (16,),
    "hid.enc.2.block.norm2.weight": (16,),
    "hid.enc.2.block.norm2.bias": (16,),
    "hid.enc.2.block.norm2.running_mean": (16,),
    "hid.enc.2.block.norm2.running_var": (16,),
    "hid.enc.2.block.norm2.num_batches_tracked": (),
    "hid.enc.2.block.mlp.fc1.weight": (128, 16, 1, 1),
    "hid.enc.2.block.mlp.fc1.bias": (128,),
    "hid.enc.2.block.mlp.dwconv.dwconv.weight": (128, 1, 3, 3),
    "hid.enc.2.block.mlp.dwconv.dwconv.bias": (128,),
    "hid.enc.2.block.mlp.fc2.weight": (16, 128, 1, 1),
    "hid.enc.2.block.mlp.fc2.bias": (16,),
    "hid.enc.2.reduction.weight": (32, 16, 1, 1),
    "hid.enc.2.reduction.bias": (32,),
}
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def expected_listing(T, C, hid_S, hid_T, N_S, N_T, mlp_ratio=8.0, k_enc=3, k_dec=3):
    """The same rules for any configuration (checked against SMALL_LISTING below)."""
    out = {}
    strides = [False, True] * (N_S // 2)
    for i in range(len(strides)):
        cin = C if i == 0 else hid_S
        out[f"enc.enc.{i}.conv.conv.weight"], out[f"enc.enc.{i}.conv.conv.bias"] = (hid_S, cin, k_enc, k_enc), (hid_S,)
        out[f"enc.enc.{i}.conv.norm.weight"] = out[f"enc.enc.{i}.conv.norm.bias"] = (hid_S,)
    for i, up in enumerate(reversed(strides)):
        conv = f"dec.dec.{i}.conv.conv.0" if up else f"dec.dec.{i}.conv.conv"
        cout = 4 * hid_S if up else hid_S
        out[f"{conv}.weight"], out[f"{conv}.bias"] = (cout, hid_S, k_dec, k_dec), (cout,)
        out[f"dec.dec.{i}.conv.norm.weight"] = out[f"dec.dec.{i}.conv.norm.bias"] = (hid_S,)
    out["dec.readout.weight"], out["dec.readout.bias"] = (C, hid_S, 1, 1), (C,)
    widths = [T * hid_S] + [hid_T] * (N_T - 1) + [T * hid_S]
    for j in range(N_T):
        d, o, h, p = widths[j], widths[j + 1], int(widths[j] * mlp_ratio), f"hid.enc.{j}"
        b = p + ".block"
        out[f"{b}.layer_scale_1"] = out[f"{b}.layer_scale_2"] = (d,)
        for n in ("norm1", "norm2"):
            for key in BN:
                out[f"{b}.{n}.{key}"] = () if key == "num_batches_tracked" else (d,)
        g = f"{b}.attn.spatial_gating_unit"
        for name, shape in (
            (f"{b}.attn.proj_1", (d, d, 1, 1)),
            (f"{g}.conv0", (d, 1, 5, 5)),
            (f"{g}.conv_spatial", (d, 1, 7, 7)),
            (f"{g}.conv1", (2 * d, d, 1, 1)),
            (f"{b}.attn.proj_2", (d, d, 1, 1)),
            (f"{b}.mlp.fc1", (h, d, 1, 1)),
            (f"{b}.mlp.dwconv.dwconv", (h, 1, 3, 3)),
            (f"{b}.mlp.fc2", (d, h, 1, 1)),
        ) + (((f"{p}.reduction", (o, d, 1, 1)),) if d != o else ()):
            out[name + ".weight"], out[name + ".bias"] = shape, (shape[0],)
    return out


def n_params(listing):
    return sum(math.prod(s) for k, s in listing.items() if not k.endswith(BUFFERS))


def shapes(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_reference_parameter_count():
    m = SimVP(in_shape=(10, 1, 64, 64), hid_S=64, hid_T=512, N_S=4, N_T=8)
    assert count_params(m) == 46_769_665
    assert n_params(expected_listing(10, 1, 64, 512, 4, 8)) == 46_769_665
    assert shapes(m) == expected_listing(10, 1, 64, 512, 4, 8)


def test_small_config_listing_by_hand():
    m = SimVP(**SMALL_ARGS)
    assert shapes(m) == SMALL_LISTING
    assert expected_listing(4, 2, 8, 16, 2, 3) == SMALL_LISTING
    assert count_params(m) == n_params(SMALL_LISTING)
    x = torch.rand(2, 4, 2, 16, 16)
    assert m(x).shape == x.shape


def test_recipe_shape_family():
    with torch.device("meta"):  # no memory, no init cost
        full = MaskSimVP(embed_dim=16, in_len=11, hid_S=64, hid_T=512, N_S=4, N_T=8, down=1)
        cpu = MaskSimVP(embed_dim=8, in_len=11, hid_S=16, hid_T=64, N_S=2, N_T=4, down=2)
    for m, args in ((full, (11, 16, 64, 512, 4, 8)), (cpu, (11, 8, 16, 64, 2, 4))):
        want = expected_listing(*args)
        assert shapes(m.simvp) == want
        assert count_params(m.simvp) == n_params(want)
        extra = {k: v for k, v in shapes(m).items() if not k.startswith("simvp.")}
        C = args[1]
        assert extra == {
            "embed.weight": (NUM_CLASSES, C),
            "head.weight": (NUM_CLASSES, C, 1, 1),
            "head.bias": (NUM_CLASSES,),
        }


def test_drop_path_rates():
    m = SimVP((4, 2, 16, 16), hid_S=4, hid_T=8, N_S=2, N_T=5, drop_path=0.2)
    rates = [blk.block.drop_path.drop_prob for blk in m.hid.enc]
    want = [x.item() for x in torch.linspace(1e-2, 0.2, 5)]
    assert rates == pytest.approx(want) and rates[-1] == 0.2
    # OpenSTL quirk kept: with drop_path=0 the rates still start at 1e-2, the last block has none
    m0 = SimVP((4, 2, 16, 16), hid_S=4, hid_T=8, N_S=2, N_T=3, drop_path=0.0)
    assert [type(b.block.drop_path) for b in m0.hid.enc] == [DropPath, DropPath, nn.Identity]
    assert m0.hid.enc[0].block.drop_path.drop_prob == pytest.approx(1e-2)
    assert m0.hid.enc[1].block.drop_path.drop_prob == pytest.approx(5e-3)
    assert [b.block.layer_scale_1.detach().unique().tolist() for b in m0.hid.enc] == [[pytest.approx(1e-2)]] * 3


def test_drop_path_module():
    dp = DropPath(0.5)
    x = torch.ones(400, 3, 2, 2)
    dp.eval()
    assert torch.equal(dp(x), x)
    dp.train()
    y = dp(x)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert (per_sample.min(1).values == per_sample.max(1).values).all()  # whole samples dropped
    assert 0.3 < (per_sample[:, 0] == 0).float().mean() < 0.7


def test_other_model_types_refused():
    with pytest.raises(NotImplementedError, match="gSTA"):
        SimVP((4, 2, 16, 16), model_type="IncepU")
    # the name is case-insensitive: "gsta" builds the very gSTA model, layout and output shape
    lower = SimVP((4, 2, 16, 16), hid_S=4, hid_T=8, N_S=2, N_T=2, model_type="gsta")
    assert shapes(lower) == expected_listing(4, 2, 4, 8, 2, 2)
    x = torch.rand(2, 4, 2, 16, 16)
    assert lower(x).shape == x.shape


@pytest.mark.parametrize("down,N_S", [(1, 2), (2, 2), (1, 4), (2, 4)])
def test_mask_simvp_shapes(down, N_S):
    m = MaskSimVP(embed_dim=4, in_len=5, hid_S=8, hid_T=16, N_S=N_S, N_T=2, down=down, mlp_ratio=2.0)
    x = torch.randint(0, NUM_CLASSES, (2, 5, 32, 48))
    out = m(x)
    assert out.shape == (2, NUM_CLASSES, 32, 48) and out.dtype == torch.float32
    out.sum().backward()
    assert m.embed.weight.grad is not None and m.simvp.enc.enc[0].conv.conv.weight.grad is not None
    m.eval()
    with torch.no_grad():  # sizes that are not a multiple of the downsampling are padded and cropped
        assert m(x[..., :30, :45]).shape == (2, NUM_CLASSES, 30, 45)
    with pytest.raises(ValueError, match="expected class ids"):
        m(x[:, :4])


def test_mask_simvp_uses_last_frame():
    m = MaskSimVP(embed_dim=4, in_len=3, hid_S=4, hid_T=8, N_S=2, N_T=2, mlp_ratio=2.0).eval()
    x = torch.randint(0, NUM_CLASSES, (1, 3, 16, 16))
    with torch.no_grad():
        feats = m.simvp(m.embed(x).permute(0, 1, 4, 2, 3))
        assert torch.allclose(m(x), m.head(feats[:, -1]), atol=1e-6)


def test_mask_simvp_equals_full_simvp_down2_copy_prior():
    """Decoding only the last slot, the head before the upsampling and the scattered prior change nothing:
    the logits equal the straightforward path (whole SimVP, upsample, head, + scale * one-hot)."""
    torch.manual_seed(0)
    m = MaskSimVP(embed_dim=4, in_len=3, hid_S=4, hid_T=8, N_S=2, N_T=2, down=2, mlp_ratio=2.0, copy_prior=True).eval()
    x = torch.randint(0, NUM_CLASSES, (2, 3, 16, 24))
    with torch.no_grad():
        e = nn.functional.avg_pool2d(m.embed(x).permute(0, 1, 4, 2, 3).reshape(6, 4, 16, 24), 2)
        y = m.simvp(e.reshape(2, 3, 4, 8, 12))[:, -1]
        ref = m.head(nn.functional.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False))
        ref = ref + m.prior_scale * nn.functional.one_hot(x[:, -1], NUM_CLASSES).permute(0, 3, 1, 2)
        assert torch.allclose(m(x), ref, atol=1e-5)


class ShiftModel(nn.Module):
    """Deterministic next-frame 'model': predicts (last frame + 1) mod 49 as one-hot logits."""

    in_len = 3

    def forward(self, window):
        return nn.functional.one_hot((window[:, -1] + 1) % NUM_CLASSES, NUM_CLASSES).permute(0, 3, 1, 2).float()


def test_rollout_feeds_back_argmax():
    m = ShiftModel().eval()
    masks = torch.zeros(2, 3, 4, 5, dtype=torch.long)
    masks[1] = 47
    allp = rollout(m, masks, 4, return_all=True)
    assert allp.shape == (2, 4, 4, 5) and allp.dtype == torch.long
    assert allp[0, :, 0, 0].tolist() == [1, 2, 3, 4] and allp[1, :, 0, 0].tolist() == [48, 0, 1, 2]
    last = rollout(m, masks, 4)
    assert last.shape == (2, 4, 5) and torch.equal(last, allp[:, -1])
    m.train()
    assert not rollout(m, masks, 1).is_inference()


def test_rollout_output_feeds_training():
    """Scheduled sampling: eval-mode rollout output is the input of a training step (embedding saves it)."""
    m = MaskSimVP(embed_dim=4, in_len=3, hid_S=4, hid_T=8, N_S=2, N_T=2, mlp_ratio=2.0).eval()
    masks = torch.randint(0, NUM_CLASSES, (1, 3, 8, 8))
    preds = rollout(m, masks, 2, return_all=True)
    assert not preds.is_inference() and not rollout(m, masks, 2).is_inference()
    m.train()
    m(torch.cat([masks[:, 2:], preds], 1)).sum().backward()
    assert m.embed.weight.grad is not None


def test_rollout_mask_simvp():
    m = MaskSimVP(embed_dim=4, in_len=4, hid_S=4, hid_T=8, N_S=2, N_T=2, down=2, mlp_ratio=2.0).eval()
    masks = torch.randint(0, NUM_CLASSES, (2, 6, 16, 24), dtype=torch.uint8)
    preds = rollout(m, masks, 3, return_all=True)
    assert preds.shape == (2, 3, 16, 24)
    with torch.no_grad():  # step by step by hand: the window is the last 4 frames, then slides
        w = masks[:, -4:].long()
        for k in range(3):
            nxt = m(w).argmax(1)
            assert torch.equal(preds[:, k], nxt)
            w = torch.cat([w[:, 1:], nxt[:, None]], 1)
    assert torch.equal(rollout(m, masks, 3), preds[:, -1])


def test_save_load_round_trip(tmp_path):
    m = MaskSimVP(embed_dim=4, in_len=3, hid_S=4, hid_T=8, N_S=2, N_T=2, down=2, mlp_ratio=2.0, frame_size=(16, 24))
    m.train()
    m(torch.randint(0, NUM_CLASSES, (2, 3, 16, 24)))  # move the BatchNorm running stats
    m.eval()
    path = save_simvp(tmp_path / "ck" / "simvp.pt", m, extra={"epoch": 3})
    m2 = load_simvp(path)
    assert m2.config == m.config and m2.extra == {"epoch": 3}
    x = torch.randint(0, NUM_CLASSES, (2, 3, 16, 24))
    m2.eval()
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))
    assert not list(path.parent.glob(".*.tmp"))
    # a plain SimVP needs its constructor arguments
    s = SimVP(**SMALL_ARGS)
    with pytest.raises(ValueError):
        save_simvp(tmp_path / "s.pt", s)
    s2 = load_simvp(save_simvp(tmp_path / "s.pt", s, config=SMALL_ARGS))
    assert all(torch.equal(a, b) for a, b in zip(s.state_dict().values(), s2.state_dict().values()))


def test_state_dict_transfer_to_plain_simvp():
    m = MaskSimVP(embed_dim=4, in_len=3, hid_S=4, hid_T=8, N_S=2, N_T=3, mlp_ratio=2.0, frame_size=(16, 24)).eval()
    inner = to_openstl_state_dict(m.state_dict())
    assert set(inner) == set(m.simvp.state_dict())
    plain = SimVP(**m.simvp_config())
    plain.load_state_dict(inner, strict=True)
    plain.eval()
    x = torch.rand(2, 3, 4, 16, 24)
    with torch.no_grad():
        assert torch.equal(plain(x), m.simvp(x))
    # DataParallel / compiled prefixes are removed
    assert set(to_openstl_state_dict({"module." + k: v for k, v in m.state_dict().items()})) == set(inner)
    # back: OpenSTL checkpoints (plain, under 'model.', or wrapped in {'state_dict': ...})
    for sd in (
        plain.state_dict(),
        {"model." + k: v for k, v in plain.state_dict().items()},
        {"state_dict": {"model." + k: v for k, v in plain.state_dict().items()}, "epoch": 1},
    ):
        fresh = MaskSimVP(**m.config)
        res = fresh.load_state_dict(from_openstl_state_dict(sd), strict=False)
        assert sorted(res.missing_keys) == ["embed.weight", "head.bias", "head.weight"] and not res.unexpected_keys
        fresh.simvp.load_state_dict(from_openstl_state_dict(sd, prefix=""))  # strict
        assert all(torch.equal(a, b) for a, b in zip(fresh.simvp.state_dict().values(), inner.values()))


def test_backend_lib():
    assert simvp_backend("lib") is SimVP
    with pytest.raises(ValueError):
        simvp_backend("timm")


def test_openstl_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "openstl", None)  # import openstl -> ImportError
    with pytest.raises(ImportError, match="OpenSTL is not installed.*pip install -e"):
        simvp_backend("openstl")
    with pytest.raises(ImportError, match="not on PyPI"):
        MaskSimVP(backend="openstl")


def test_openstl_pypi_name_clash(monkeypatch):
    fake = types.ModuleType("openstl")  # the PyPI STL-file package: a module without `openstl.models`
    fake.__file__ = "/site-packages/openstl/__init__.py"
    monkeypatch.setitem(sys.modules, "openstl", fake)
    monkeypatch.delitem(sys.modules, "openstl.models", raising=False)
    with pytest.raises(ImportError, match="unrelated PyPI package") as e:
        simvp_backend("openstl")
    assert "pip uninstall openstl" in str(e.value) and "pip install -e ." in str(e.value)
    pkg = types.ModuleType("openstl")  # a package without a models subpackage is refused the same way
    pkg.__path__ = []
    monkeypatch.setitem(sys.modules, "openstl", pkg)
    with pytest.raises(ImportError, match="unrelated PyPI package"):
        simvp_backend("openstl")


def test_openstl_backend_used_when_present(monkeypatch):
    pkg, models = types.ModuleType("openstl"), types.ModuleType("openstl.models")

    class SimVP_Model(SimVP):  # stands in for OpenSTL's class (same constructor and layout)
        pass

    models.SimVP_Model = SimVP_Model
    pkg.__path__, pkg.models = [], models
    monkeypatch.setitem(sys.modules, "openstl", pkg)
    monkeypatch.setitem(sys.modules, "openstl.models", models)
    assert simvp_backend("openstl") is SimVP_Model
    m = MaskSimVP(embed_dim=4, in_len=3, hid_S=4, hid_T=8, N_S=2, N_T=2, mlp_ratio=2.0, backend="openstl")
    assert type(m.simvp) is SimVP_Model
    assert m(torch.randint(0, NUM_CLASSES, (1, 3, 8, 8))).shape == (1, NUM_CLASSES, 8, 8)


def test_count_flops():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Flatten(), nn.Linear(8 * 10 * 10, 5)
    )
    net.train()
    assert count_flops(net, torch.rand(2, 3, 10, 10)) == 2 * (8 * 100 * 27 + 8 * 100 * 9 + 5 * 800)
    assert net.training
    m = MaskSimVP(embed_dim=4, in_len=3, hid_S=4, hid_T=8, N_S=2, N_T=2, mlp_ratio=2.0)
    x = torch.randint(0, NUM_CLASSES, (1, 3, 16, 16))
    assert count_flops(m, torch.cat([x, x])) == 2 * count_flops(m, x) > 0


def test_copy_prior_starts_from_copying_the_last_frame():
    torch.manual_seed(0)
    m = MaskSimVP(
        embed_dim=4, hid_S=4, hid_T=8, N_S=2, N_T=2, down=2, mlp_ratio=2.0, frame_size=(32, 48), copy_prior=True
    ).eval()
    with torch.no_grad():
        m.head.weight.mul_(0.01)
        m.head.bias.zero_()
    x = torch.randint(0, 49, (2, 11, 32, 48))
    with torch.no_grad():
        assert torch.equal(m(x).argmax(1), x[:, -1])
    assert "prior_scale" in dict(m.named_parameters())
    assert "prior_scale" not in dict(
        MaskSimVP(embed_dim=4, hid_S=4, hid_T=8, N_S=2, N_T=2, frame_size=(32, 48)).named_parameters()
    )

import math

import torch

from lib.common.losses import SegLoss
from lib.forecasting.training import OneStep, ScheduledSampling, _flip


class Recorder(torch.nn.Module):
    """Predicts 'last frame + 1' (mod 49) and records every window it is given."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen = []

    def forward(self, window):
        self.seen.append(window.clone())
        nxt = (window[:, -1] + 1) % 49
        return torch.nn.functional.one_hot(nxt, 49).permute(0, 3, 1, 2).float() * 10 + self.w


def test_schedule_rises():
    ss = ScheduledSampling(max_rollout=5, p_rate=5.0)
    ks, ps = zip(*[ss.schedule(s, 100) for s in range(101)])
    assert ks[0] == 1 and ks[-1] == 5 and list(ks) == sorted(ks)
    assert ps[0] == 0 and all(b > a for a, b in zip(ps, ps[1:]))
    assert math.isclose(ps[-1], 1 - math.exp(-5))


def _clip(b=2, n=16, h=4, w=6):
    frames = torch.arange(n)[None, :, None, None].expand(b, n, h, w).clone()  # frame t holds value t
    return frames[:, :11], frames[:, 11:]


def test_scheduled_sampling_feeds_own_predictions():
    x, y = _clip()
    y = y.clone()
    y[:, 0] = 40  # the true frame index 11 differs from what the model predicts (10 + 1 = 11)
    model = Recorder()
    ss = ScheduledSampling(max_rollout=5, loss=SegLoss(), flip=0.0)
    ss.k, ss.p = 3, 1.0  # always roll out 2 steps on own output, supervise frame 11+3
    ss(model, (x, y), torch.device("cpu"))
    last = model.seen[-1]
    assert last.shape == (2, 11, 4, 6)
    assert (last[:, -2] == 11).all() and (last[:, -1] == 12).all()  # own predictions, not the true 40
    ss.p = 0.0  # teacher forcing: the true frames, shifted by k-1
    model.seen.clear()
    ss(model, (x, y), torch.device("cpu"))
    assert len(model.seen) == 1 and (model.seen[0][:, -2] == 40).all() and (model.seen[0][:, -1] == 12).all()


def test_flip_keeps_inputs_and_targets_aligned():
    torch.manual_seed(0)
    x = torch.randint(0, 49, (64, 11, 4, 6))
    y = torch.cat([x[:, -1:]], 1)
    fx, fy = _flip(x, y, 0.5)
    flipped = [(not torch.equal(fx[i], x[i])) for i in range(64)]
    assert 10 < sum(flipped) < 54
    assert torch.equal(fx[:, -1:], fy)
    assert torch.isfinite(OneStep(flip=0.5)(Recorder(), (x, y), torch.device("cpu")))

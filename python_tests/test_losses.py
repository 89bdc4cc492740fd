"""SAL losses: hand-computed values on small tensors, and the whole objective against a
statement-by-statement re-statement of the reference train steps (main_thumos.py,
SAL_ActivityNet main_SA13_1.py)."""
import math

import pytest
import torch
import torch.nn.functional as F

from sal_ext.config import get_preset
from sal_ext.losses import (AdaptiveActionnessMask, SALLoss, background_kl, consistency_mse,
                            gce_mask, pseudo_labels, soft_ce)
from sal_ext.model import SAL


def test_soft_ce_hand_value():
    logits = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    y = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    lse0 = math.log(math.e + math.e ** 2 + 1)
    lse1 = math.log(2 + math.e ** 3)
    eps = 1e-10
    l0 = -((0.5 + eps) * (1 - lse0) + (0.5 + eps) * (2 - lse0) + eps * (0 - lse0))
    l1 = -(eps * (0 - lse1) * 2 + (1 + eps) * (3 - lse1))
    assert soft_ce(logits, y).item() == pytest.approx((l0 + l1) / 2, rel=1e-6)


def test_gce_mask_hand_value():
    p = torch.tensor([[0.9, 0.2, 0.5], [0.1, 0.6, 0.3]])
    g = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    m = torch.tensor([[1.0, 0.5, 0.25], [1.0, 1.0, 0.0]])
    q = 0.5

    def f(x):
        return (1 - (x + 1e-7) ** q) / q
    pos0 = (f(0.9) * 1 + f(0.5) * 0.25) / (1.25 + 1e-7)
    pos1 = 0.0 / (0 + 1e-7)
    neg0 = (f(1 - 0.2) * 0.5) / (0.5 + 1e-7)
    neg1 = (f(1 - 0.1) * 1 + f(1 - 0.6) * 1) / (2 + 1e-7)
    want = (pos0 + pos1) / 2 + (neg0 + neg1) / 2
    assert gce_mask(p, g, m, q).item() == pytest.approx(want, rel=1e-5)


def test_background_kl_hand_value():
    z = torch.tensor([[0.0, 1.0], [2.0, 2.0]])
    want = 0.0
    for row in ([0.0, 1.0], [2.0, 2.0]):
        s = sum(math.exp(v) for v in row)
        want += sum(0.5 * (math.log(0.5) - math.log(math.exp(v) / s)) for v in row)
    assert background_kl(z).item() == pytest.approx(want / 2, rel=1e-6)
    # the reference formulation: kl_div(softmax(z).log(), softmax(ones), 'batchmean')
    ref = F.kl_div(torch.softmax(z, -1).log(), torch.softmax(torch.ones_like(z), -1), reduction="batchmean")
    assert background_kl(z).item() == pytest.approx(ref.item(), rel=1e-6)


def test_consistency_mse():
    a = torch.tensor([[0.1, 0.5]])
    b = torch.tensor([[0.3, 0.0]])
    assert consistency_mse(a, b).item() == pytest.approx((0.04 + 0.25) / 2, rel=1e-6)


def test_adaptive_mask_ema_and_state():
    C = 4
    mk = AdaptiveActionnessMask(C, momentum=0.7, var_scale=0.5)
    mu, var = 1.0 / C, 1.0
    for step in range(3):
        cas = torch.randn(2, 5, C) * (step + 1)
        probs = torch.softmax(cas, -1).reshape(-1, C)
        pmax = probs.max(-1).values
        mu = 0.7 * mu + (1 - 0.7) * pmax.mean().item()
        var = 0.7 * var + (1 - 0.7) * torch.var(pmax, unbiased=True).item()
        mask = mk(cas)
        want = torch.exp(-(torch.clamp(pmax - mu, max=0.0) ** 2) / (2 * var / 4)).reshape(2, 5)
        torch.testing.assert_close(mask, want, rtol=1e-6, atol=1e-7)
        assert mk.mu.item() == pytest.approx(mu, rel=1e-12) and mk.var.item() == pytest.approx(var, rel=1e-12)
    assert torch.all(mask <= 1) and not mask.requires_grad
    sd = mk.state_dict()
    assert set(sd) == {"mu", "var"}
    other = AdaptiveActionnessMask(C)
    other.load_state_dict(sd)
    assert other.mu.item() == mk.mu.item() and other.var.item() == mk.var.item()
    # one hand value: max p = 0.5 below mu = 0.6, var = 0.08, scale 6 -> exp(-0.01 / 0.48)
    mk2 = AdaptiveActionnessMask(2, var_scale=6.0)
    mk2.mu.fill_(0.6)
    mk2.var.fill_(0.08)
    assert mk2.mask(torch.tensor([[0.5, 0.5], [0.9, 0.1]])).tolist() == pytest.approx([math.exp(-0.01 / 0.48), 1.0])


def test_pseudo_labels_hand_value():
    a = torch.tensor([[0.9, 0.1, 0.8, 0.7, 0.2], [0.1, 0.2, 0.3, 0.4, 0.5]])
    cas = torch.zeros(2, 5, 2)
    cas[0, :, 0] = torch.tensor([5.0, 4.0, -1.0, 3.0, 2.0])   # confidence top-2: t=0, 1
    cas[1, :, 1] = torch.tensor([0.0, 0.0, 0.0, 2.0, 1.0])    # confidence top-2: t=3, 4
    labels = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    g = pseudo_labels(a, cas, labels, topk=3, confidence_topk=2)
    # video 0: top-3 of a = {0, 2, 3}, x conf {0, 1} -> {0}; video 1 has no label -> nothing
    assert g.tolist() == [[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    g = pseudo_labels(a, cas, labels, topk=2, confidence_topk=None, require_label=False)
    assert g.tolist() == [[1, 0, 1, 0, 0], [0, 0, 0, 1, 1]]


# ---- the whole objective against the reference train steps ---------------------------------
class RefState:
    def __init__(self, C, ema):
        self.mu, self.var, self.ema = 1.0 / C, 1.0, ema

    def mask(self, cas, div):
        probs = torch.softmax(cas, dim=-1).reshape(-1, cas.shape[-1])
        mp = probs.max(dim=-1).values
        self.mu = self.ema * self.mu + (1 - self.ema) * torch.mean(mp).item()
        self.var = self.ema * self.var + (1 - self.ema) * torch.var(mp, unbiased=True).item()
        return torch.exp(-((torch.clamp(mp - self.mu, max=0.0) ** 2) / div(self.var))).reshape(cas.shape[0], -1)


def ref_ce(logits, label):
    label = label / torch.sum(label, dim=1, keepdim=True) + 1e-10
    return -torch.mean(torch.sum(label * F.log_softmax(logits, dim=1), dim=1), dim=0)


def ref_gce(logits, label, mask, q=0.5):
    pos = torch.sum(label * mask, dim=1) + 1e-7
    neg = torch.sum((1 - label) * mask, dim=1) + 1e-7
    a = torch.mean(torch.sum(((1 - (logits + 1e-7) ** q) / q) * label * mask, dim=1) / pos)
    b = torch.mean(torch.sum(((1 - (1 - logits + 1e-7) ** q) / q) * (1 - label) * mask, dim=1) / neg)
    return a + b


def ref_thumos_step(o, label, st, r=8, lam=0.1):
    cas, cas_bg = o["cas"], o["cas_bg"]
    af, ar = o["a_flow"].unsqueeze(1), o["a_rgb"].unsqueeze(1)
    afa, ara = o["a_flow_aug"].unsqueeze(1), o["a_rgb_aug"].unsqueeze(1)
    B, T, C = cas.shape
    combined = (torch.softmax(cas, -1) + af.permute(0, 2, 1) + ar.permute(0, 2, 1)) / 3
    _, idx = torch.topk(combined, T // r, dim=1)
    cas_top = torch.mean(torch.gather(cas, 1, idx), dim=1)
    action = ((1 - lam) * af + lam * ar).permute(0, 2, 1)
    _, idx_bg = torch.topk(torch.softmax(cas_bg, -1), T // r, dim=1)
    cas_top_bg = torch.mean(torch.gather(cas_bg, 1, idx_bg), dim=1)
    _, idx_ag = torch.topk(action, T // r + 17, dim=1)
    idx_ag = idx_ag.repeat(1, 1, C)
    gt = torch.zeros(B, 1, T)
    for b in range(B):
        lab = torch.nonzero(label[b, :])[:, 0]
        for c in lab:
            gt[b, 0, idx_ag[b, :, c]] = 1
    conf = torch.sum(torch.relu(cas), dim=-1, keepdim=True)
    _, idx_conf = torch.topk(conf, T // 2, dim=1)
    conf_gt = torch.zeros(B, 1, T)
    for b in range(B):
        conf_gt[b, 0, idx_conf[b, :, 0]] = 1
    gt = gt * conf_gt
    mask = st.mask(cas.detach(), lambda v: 2 * v / 4)
    mask_aug = (mask + torch.cat((mask[-1:], mask[:-1]), dim=0)) / 2
    gt_aug = gt + torch.cat((gt[-1:], gt[:-1]), dim=0)
    gt_aug = torch.where(gt_aug >= 1, 1, 0)
    mil = ref_ce(cas_top, label)
    bg = 10 * F.kl_div(torch.softmax(cas_top_bg, -1).log(), torch.softmax(torch.ones_like(label), -1),
                       reduction="batchmean")
    act = ref_gce(af.squeeze(1), gt.squeeze(1), mask) + ref_gce(ar.squeeze(1), gt.squeeze(1), mask)
    mix = ref_gce(afa.squeeze(1), gt_aug.squeeze(1), mask_aug) + ref_gce(ara.squeeze(1), gt_aug.squeeze(1), mask_aug)
    mc = 5 * F.mse_loss(ar, af)
    se = ref_ce(o["sc"], label) + ref_ce(o["sc_flow"], label) + ref_ce(o["sc_rgb"], label)
    return mil + mc + bg + act + 3 * se + mix


def ref_anet_step(o, label, st):
    cas, cas_bg = o["cas"], o["cas_bg"]
    af, ar = o["a_flow"].unsqueeze(1), o["a_rgb"].unsqueeze(1)
    afa, ara = o["a_flow_aug"].unsqueeze(1), o["a_rgb_aug"].unsqueeze(1)
    B, T, C = cas.shape
    _, idx = torch.topk(cas, T // 4, dim=1)
    cas_top = torch.mean(torch.gather(cas, 1, idx), dim=1)
    action = 0.7 * af.permute(0, 2, 1) + 0.3 * ar.permute(0, 2, 1)
    _, idx_a = torch.topk(action, 40, dim=1)
    _, idx_bg = torch.topk(torch.softmax(cas_bg, -1), T // 8, dim=1)
    cas_top_bg = torch.mean(torch.gather(cas_bg, 1, idx_bg), dim=1)
    gt = torch.zeros(B, 1, T)
    for b in range(B):
        gt[b, 0, idx_a[b, :, 0]] = 1
    gt_aug = torch.where(gt + torch.cat((gt[-1:], gt[:-1]), dim=0) >= 1, 1, 0)
    mask = st.mask(cas.detach(), lambda v: 6 * v)
    mask_aug = (mask + torch.cat((mask[-1:], mask[:-1]), dim=0)) / 2
    base = ref_ce(cas_top, label)
    sta = ref_gce(af.squeeze(1), gt.squeeze(1), mask) + ref_gce(ar.squeeze(1), gt.squeeze(1), mask)
    aug = ref_gce(afa.squeeze(1), gt_aug.squeeze(1), mask_aug) + ref_gce(ara.squeeze(1), gt_aug.squeeze(1), mask_aug)
    mu = F.mse_loss(ar, af)
    sc = ref_ce(o["sc"], label) + ref_ce(o["sc_flow"], label) + ref_ce(o["sc_rgb"], label)
    fp = F.kl_div(torch.softmax(cas_top_bg, -1).log(), torch.softmax(torch.ones_like(label), -1),
                  reduction="batchmean")
    return base + sta + 20 * mu + fp + 3 * sc + aug


def _labels(B, C, gen):
    y = (torch.rand(B, C, generator=gen) < 0.2).float()
    y[torch.arange(B), torch.randint(0, C, (B,), generator=gen)] = 1
    return y


@pytest.mark.parametrize("preset,T", [("thumos14", 160), ("activitynet13", 50)])
def test_sal_loss_equals_reference_train_step(preset, T):
    cfg = get_preset(preset)
    C = 7
    cfg["num_classes"] = C
    lam = cfg["model"]["fusion_lambda"]
    gen = torch.Generator().manual_seed(3)
    model = SAL(in_dim=32, num_classes=C, hidden=12, fusion_lambda=lam,
                encoder_kernel=cfg["model"]["encoder_kernel"]).train()
    crit = SALLoss(cfg)
    st = RefState(C, cfg["loss"]["ema_momentum"])
    for step in range(3):  # several steps: the EMA state carries over
        x = torch.randn(4, T, 32, generator=gen)
        y = _labels(4, C, gen)
        out = model(x)
        total, parts = crit(out, y)
        ref = ref_thumos_step(out, y, st, lam=lam) if preset == "thumos14" else ref_anet_step(out, y, st)
        torch.testing.assert_close(total, ref, rtol=1e-5, atol=1e-5)
        assert crit.mask.mu.item() == pytest.approx(st.mu, rel=1e-9)
        assert crit.mask.var.item() == pytest.approx(st.var, rel=1e-9)
        g1 = torch.autograd.grad(total, list(model.parameters()), retain_graph=True)
        g2 = torch.autograd.grad(ref, list(model.parameters()))
        for a, b in zip(g1, g2):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert set(parts) >= {"total", "mil", "bg", "act", "mix", "mc", "se"}
    assert "mask.mu" in crit.state_dict()


def test_training_step_kernel_equals_torch_backend():
    """One training step (forward + loss + backward) with backend 'kernel' and 'torch'."""
    cfg = get_preset("thumos14")
    torch.manual_seed(0)
    x = torch.randn(3, 40, 64)
    y = _labels(3, 20, torch.Generator().manual_seed(1))
    results = []
    for backend in ("kernel", "torch"):
        torch.manual_seed(5)
        model = SAL(in_dim=64, num_classes=20, hidden=16, backend=backend).train()
        crit = SALLoss(cfg, backend=backend)
        torch.manual_seed(6)
        total, _ = crit(model(x), y)
        total.backward()
        results.append((total.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_small_T_clips_k():
    cfg = get_preset("thumos14")
    crit = SALLoss(cfg)
    assert crit.topk_sizes(750) == {"k": 93, "mil": 93, "bg": 93, "pseudo": 110, "conf": 375}
    assert crit.topk_sizes(20)["pseudo"] == 19 and crit.topk_sizes(20)["mil"] == 2
    anet = SALLoss(get_preset("activitynet13"))
    assert anet.topk_sizes(50) == {"k": 6, "mil": 12, "bg": 6, "pseudo": 40, "conf": None}
    model = SAL(in_dim=16, num_classes=20, hidden=4)
    total, _ = crit(model(torch.randn(2, 5, 16)), _labels(2, 20, torch.Generator().manual_seed(0)))
    assert torch.isfinite(total)
    with pytest.raises(ValueError, match="unknown loss keys"):
        SALLoss({"loss": {"bogus": 1}, "num_classes": 3})

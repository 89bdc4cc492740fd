"""SAL network fidelity: every output against an independent plain-torch re-statement of the
reference forward (SAL_SPEC.md "Network"; lizhilin-ustc/SAL models/model_x4.py)."""
import pytest
import torch
import torch.nn.functional as F

from sal_ext.model import SAL, load_reference_state_dict, reference_state_dict


def ref_pool(x):
    """Reference BilinearPooling: X X^T / T^2, signed sqrt(|g| + 1e-5), L2 normalisation."""
    B, D, T = x.shape
    g = torch.bmm(x, x.transpose(1, 2)) / (T ** 2)
    g = g.reshape(B, D * D)
    g = torch.sign(g) * torch.sqrt(torch.abs(g) + 1e-5)
    return F.normalize(g)


def ref_forward(p, x, lam, k_enc=3, drop=None):
    """The reference forward, statement by statement, on a plain parameter dict.

    drop: None (eval) or a callable applied after every ReLU in the reference's order."""
    d = drop or (lambda t: t)
    inp = x.permute(0, 2, 1)
    half = inp.shape[1] // 2
    flow, rgb = inp[:, half:, :], inp[:, :half, :]
    flow_aug = flow + torch.cat((flow[-1:], flow[:-1]), dim=0)
    rgb_aug = rgb + torch.cat((rgb[-1:], rgb[:-1]), dim=0)

    def head(z, name):
        return d(F.relu(F.conv1d(z, p[f"action_{name}.0.weight"], p[f"action_{name}.0.bias"], padding=1)))

    emb_flow, emb_rgb = head(flow, "flow"), head(rgb, "rgb")
    emb_flow_aug, emb_rgb_aug = head(flow_aug, "flow"), head(rgb_aug, "rgb")

    def act(e, name):
        return torch.sigmoid(F.conv1d(e, p[f"cls_{name}.0.weight"], p[f"cls_{name}.0.bias"]))

    a_flow, a_rgb = act(emb_flow, "flow"), act(emb_rgb, "rgb")
    a_flow_aug, a_rgb_aug = act(emb_flow_aug, "flow"), act(emb_rgb_aug, "rgb")
    action = (1 - lam) * a_flow + lam * a_rgb
    emb = d(F.relu(F.conv1d(inp, p["encoder.0.weight"], p["encoder.0.bias"], padding=k_enc // 2)))
    sc = ref_pool(emb)
    semantic = F.linear(sc, p["fc1.weight"], p["fc1.bias"]).unsqueeze(-1)
    emb = emb + torch.einsum("bkt,bdk->bdt", [action, semantic])
    sc = F.linear(sc, p["fc.weight"], p["fc.bias"])
    sc_rgb = F.linear(ref_pool(emb_rgb), p["fc.weight"], p["fc.bias"])
    sc_flow = F.linear(ref_pool(emb_flow), p["fc.weight"], p["fc.bias"])
    cas = F.conv1d(emb, p["cls.0.weight"], p["cls.0.bias"]).permute(0, 2, 1)
    cas_bg = cas * (1 - action).permute(0, 2, 1)
    return {"cas": cas, "cas_bg": cas_bg, "a_flow": a_flow[:, 0], "a_rgb": a_rgb[:, 0],
            "a_flow_aug": a_flow_aug[:, 0], "a_rgb_aug": a_rgb_aug[:, 0], "a": action[:, 0],
            "sc": sc, "sc_flow": sc_flow, "sc_rgb": sc_rgb}


KEYS = ["cas", "cas_bg", "a_rgb", "a_flow", "a_rgb_aug", "a_flow_aug", "a", "sc", "sc_rgb", "sc_flow"]


@pytest.mark.parametrize("B,T,D,H,C,kenc,lam", [(3, 37, 64, 16, 5, 3, 0.1), (2, 1, 32, 8, 4, 7, 0.3),
                                               (1, 20, 2048, 24, 20, 3, 0.1), (4, 11, 16, 12, 200, 7, 0.3)])
@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_forward_matches_reference_eval(B, T, D, H, C, kenc, lam, backend):
    model = SAL(in_dim=D, num_classes=C, hidden=H, encoder_kernel=kenc, fusion_lambda=lam, backend=backend).eval()
    # non-trivial biases everywhere (zero fc1 bias at init would hide mistakes)
    with torch.no_grad():
        for prm in model.parameters():
            prm.add_(0.05 * torch.randn_like(prm))
    x = torch.randn(B, T, D).abs()
    out = model(x)
    ref = ref_forward(dict(model.state_dict()), x, lam, kenc)
    for k in KEYS:
        assert out[k].shape == ref[k].shape, k
        torch.testing.assert_close(out[k], ref[k], rtol=1e-5, atol=1e-5, msg=k)
    pred = model.predict(x)
    assert set(pred) == {"cas", "a_rgb", "a_flow", "sc"}
    for k in pred:
        torch.testing.assert_close(pred[k], ref[k], rtol=1e-5, atol=1e-5, msg=k)


def test_forward_float64_and_train_mode_dropout_order():
    """In train mode the dropout masks are drawn in the reference's order (flow, rgb, flow_aug,
    rgb_aug, encoder): the same seed gives the same outputs as the reference statement."""
    torch.manual_seed(1)
    model = SAL(in_dim=32, num_classes=6, hidden=10).double().train()
    x = torch.randn(3, 15, 32, dtype=torch.float64)
    torch.manual_seed(7)
    out = model(x)
    torch.manual_seed(7)
    ref = ref_forward(dict(model.state_dict()), x, 0.1, drop=lambda t: F.dropout(t, 0.5, True))
    for k in KEYS:
        torch.testing.assert_close(out[k], ref[k], rtol=1e-10, atol=1e-10, msg=k)


def test_gradients_flow_to_every_parameter():
    model = SAL(in_dim=16, num_classes=3, hidden=6)
    out = model(torch.randn(2, 9, 16))
    sum(v.sum() for v in out.values()).backward()
    for name, prm in model.named_parameters():
        assert prm.grad is not None and prm.grad.abs().sum() > 0, name


def test_reference_state_dict_names_and_shapes():
    """hidden=512 THUMOS network: exactly the reference's parameter names and shapes."""
    with torch.device("meta"):
        model = SAL()
    want = {
        "encoder.0.weight": (512, 2048, 3), "encoder.0.bias": (512,),
        "action_rgb.0.weight": (512, 1024, 3), "action_rgb.0.bias": (512,),
        "action_flow.0.weight": (512, 1024, 3), "action_flow.0.bias": (512,),
        "cls.0.weight": (20, 512, 1), "cls.0.bias": (20,),
        "cls_rgb.0.weight": (1, 512, 1), "cls_rgb.0.bias": (1,),
        "cls_flow.0.weight": (1, 512, 1), "cls_flow.0.bias": (1,),
        "fc.weight": (20, 512 ** 2), "fc.bias": (20,),
        "fc1.weight": (512, 512 ** 2), "fc1.bias": (512,),
    }
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == want
    assert list(got) == list(want)  # same order as the reference module
    with torch.device("meta"):
        anet = SAL(num_classes=200, encoder_kernel=7)
    assert tuple(anet.encoder[0].weight.shape) == (512, 2048, 7)


def test_init_like_reference():
    torch.manual_seed(0)
    model = SAL(in_dim=64, num_classes=5, hidden=32)
    assert torch.all(model.fc1.bias == 0)
    # Kaiming normal, fan_in = hidden^2, gain sqrt(2): std = sqrt(2) / hidden
    std = model.fc1.weight.std().item()
    assert abs(std - (2 ** 0.5) / 32) < 0.02 * (2 ** 0.5) / 32 * 5
    # same seed -> same parameters as creating the modules in the reference's order
    torch.manual_seed(0)
    enc = torch.nn.Conv1d(64, 32, 3, padding=1)
    torch.testing.assert_close(model.encoder[0].weight, enc.weight)


def test_loading_reference_checkpoints():
    src = SAL(in_dim=16, num_classes=3, hidden=6, encoder_kernel=7)
    sd = src.state_dict()
    for variant in (sd, {"module." + k: v for k, v in sd.items()},
                    {("base_module." + k[len("encoder."):] if k.startswith("encoder.") else k): v
                     for k, v in sd.items()},
                    {"model": sd}, {"state_dict": {"module." + k: v for k, v in sd.items()}}):
        dst = SAL(in_dim=16, num_classes=3, hidden=6, encoder_kernel=7)
        load_reference_state_dict(dst, variant)
        for k, v in dst.state_dict().items():
            assert torch.equal(v, sd[k]), k
    # a plain reference state dict loads with load_state_dict unchanged
    SAL(in_dim=16, num_classes=3, hidden=6, encoder_kernel=7).load_state_dict(sd)
    assert set(reference_state_dict({"module.fc.bias": 1})) == {"fc.bias"}


def test_bad_input():
    model = SAL(in_dim=16, num_classes=3, hidden=6)
    with pytest.raises(ValueError, match="x"):
        model(torch.randn(2, 5, 15))
    with pytest.raises(ValueError, match="x"):
        model.predict(torch.randn(5, 16))
    with pytest.raises(ValueError, match="in_dim"):
        SAL(in_dim=15)

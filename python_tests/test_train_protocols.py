"""eval.protocols: the trainer's final evaluation under several protocols (issue 9)."""
import numpy as np

from eval_cases import thumos_like_files
from sal_ext import config, evaluate as ev, train


def test_presets_have_the_keys():
    for name in config.PRESETS:
        cfg = config.get_preset(name)
        assert cfg["eval"]["protocols"] == ["activitynet"] and cfg["eval"]["ambiguous_file"] is None
    cfg = config.get_preset("synthetic")
    config.apply_overrides(cfg, ['eval.protocols=["activitynet","wtalc","thumos14"]'])
    assert cfg["eval"]["protocols"] == ["activitynet", "wtalc", "thumos14"]


def test_final_protocols(tmp_path):
    gt, pred, amb = thumos_like_files(5)
    cfg = config.get_preset("thumos14")
    cfg["eval"]["protocols"] = ["activitynet", "wtalc", "thumos14"]
    cfg["data_root"] = str(tmp_path)  # no Ambiguous_test.txt there: none, and no warning
    res = train.final_protocols(gt, pred, cfg, "test")
    assert list(res) == ["activitynet", "wtalc", "thumos14"]
    assert res["thumos14"]["mAP"] == ev.detection_map(gt, pred, protocol="thumos14", ambiguous=[])["mAP"]
    (tmp_path / "Ambiguous_test.txt").write_text("".join(f"{v} {s} {e}\n" for v, s, e in amb))
    res = train.final_protocols(gt, pred, cfg, "test")  # the data root's file is used
    want = ev.detection_map(gt, pred, protocol="wtalc", ambiguous=amb)
    np.testing.assert_allclose(res["wtalc"]["mAP"], want["mAP"], rtol=0, atol=1e-12)
    cfg["eval"]["ambiguous_file"] = str(tmp_path / "Ambiguous_test.txt")
    assert train.final_protocols(gt, pred, cfg, "test")["wtalc"]["mAP"] == res["wtalc"]["mAP"]

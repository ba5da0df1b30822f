"""The accelerator paths (issue 22): prediction, mixed-precision training and a saved model on the device named by
ACCORDS_TEST_DEVICE ('cuda', or 'cpu' to run the same tests without a GPU). Skipped unless that variable is set or CUDA
is present; `bench/gpu_check.sh` runs them (`--cpu` on a machine without a GPU)."""
import os
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.device
torch = pytest.importorskip('torch')

from accords_tem import unet
from accords_tem.core import load_config
from accords_tem.seg_data import UnetConfig
from accords_tem.seg_eval import predict_tiled
from accords_tem.seg_train import build_model, load_model
from accords_tem.training import resolve_precision

TINY = dict(encoder='resnet18', encoder_weights=None, decoder_channels=[32, 16, 8], batch_size=2, patch_size=64, stride=64,
            tile_size=64, tile_overlap=32)


@pytest.fixture(scope='module')
def device():
    return torch.device(os.environ.get('ACCORDS_TEST_DEVICE') or 'cuda')


def test_tiled_prediction_matches_the_cpu(device):
    "fp32 on the device gives the CPU's probabilities; bf16 autocast stays close."
    u = UnetConfig(**TINY)
    model = build_model(u, weights=False)[0].eval()
    img = (np.random.default_rng(0).random((150, 170)) * 255).astype(np.uint8)
    kw = dict(tile=64, overlap=32, batch=4, tta='flips', mean=u.norm_mean, std=u.norm_std)
    ref, _ = predict_tiled(model, img, device=torch.device('cpu'), amp=False, **kw)
    got, unc = predict_tiled(model.to(device), img, device=device, amp=False, **kw)
    assert got.shape == ref.shape == (model.segmentation_head[0].out_channels, 150, 170) and unc.shape == got.shape
    np.testing.assert_allclose(got, ref, atol=1e-3)
    amp, _ = predict_tiled(model, img, device=device, amp=True, **kw)
    assert np.isfinite(amp).all() and np.abs(amp - ref).max() < 0.05   # bf16 keeps about 3 significant digits


def test_mixed_precision_training_and_reload(tmp_path, device):
    "A short training on the device with the automatic precision: finite losses, thresholds, a model that reloads there."
    unet.write_toy_dataset(tmp_path, n=6, size=64)
    cfg = load_config(None, {**{f'unet.{k}': v for k, v in TINY.items()}, 'unet.epochs': 2, 'unet.min_steps': 0, 'unet.max_figures': 0,
                             'unet.precision': 'auto', 'unet.predict_run_images': False, 'device': device.type})
    s = unet.run_unet(cfg, tmp_path, progress=False)
    assert s['precision'] == resolve_precision('auto', device)
    assert s['device'].startswith(device.type)
    h = pd.read_csv(tmp_path/'unet'/'history.csv')
    assert np.isfinite(h.train_loss).all() and np.isfinite(h.valid_loss).all()
    sm = load_model(tmp_path/'unet'/'model', device)
    assert next(sm.model.parameters()).device.type == device.type

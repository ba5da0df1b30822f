"""Stage 01 (normalization): min-max, percentile window, CLAHE, bit-depth policy, the resumable batch."""
from pathlib import Path

import numpy as np
import pytest
import tifffile

from accords_tem.core import ConfigError, FailureLog, load_config
from accords_tem.normalization import (NormalizationConfig, clahe, intensity_window, minmax, normalize,
                                       normalized_path, run_normalization)
from accords_tem.imaging import clip_uint8
from accords_tem.layout import layout_problems


def test_minmax_known_answer():
    np.testing.assert_allclose(minmax(np.array([2, 4, 6])), [0, 127.5, 255])


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16, np.int32, np.float32, np.float64])
def test_minmax_any_dtype_to_full_range(dtype):
    x = np.array([[10, 20], [30, 40]], dtype=dtype)
    out = minmax(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0, 85], [170, 255]], atol=1e-4)


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize('low,high', [(0, 100), (1, 99), (0.5, 99.5), (5, 60)])
def test_intensity_window_equals_numpy_percentile(dtype, low, high):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 250 if dtype == np.uint8 else 5000, (37, 29)).astype(dtype)
    np.testing.assert_allclose(intensity_window(x, low, high), np.percentile(x, [low, high]), rtol=1e-6)


def test_percentile_clipping_saturates_outliers():
    x = np.r_[np.zeros(5), np.linspace(0, 1, 990), np.full(5, 1e5)]  # 0.5 % dead and 0.5 % hot pixels
    plain, robust = minmax(x), minmax(x, 1, 99)
    assert plain[5:995].max() < 1             # hot pixels squeeze everything into grey level 0
    assert robust[-5:].min() == 255 and robust[:5].max() == 0
    assert robust[500] == pytest.approx(127.5, abs=2)   # the bulk spans the full range


def test_flat_image_gives_zeros_not_nan():
    out = minmax(np.full((4, 4), 1234, np.uint16))
    assert np.all(out == 0) and not np.isnan(out).any()


def test_16bit_input_8bit_output():
    ramp = np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)
    r = normalize(ramp, NormalizationConfig())
    assert r['minmax'].dtype == np.uint8 and r['clahe'].dtype == np.uint8
    np.testing.assert_array_equal(r['minmax'].ravel(), np.arange(256))
    assert r['dtype'] == 'uint16' and r['window'] == (0.0, 65535.0)


def test_clip_uint8_rounds_and_clips():
    assert clip_uint8(np.array([-1, 0.49, 0.51, 255.4, 999])).tolist() == [0, 0, 1, 255, 255]


@pytest.mark.parametrize('backend', ['opencv', 'skimage'])
def test_clahe_flat_stays_flat_and_contrast_grows(backend):
    assert np.ptp(clahe(np.full((64, 64), 77, np.uint8), backend=backend)) == 0
    yy, xx = np.mgrid[:128, :128]
    img = clip_uint8(minmax(np.sin(xx / 9) + 0.3 * (yy > 64)))
    assert clahe(img, clip_limit=0.03, backend=backend)[:16, :16].std() > img[:16, :16].std()


def test_clahe_backends_agree_on_stretched_image():
    yy, xx = np.mgrid[:256, :256]
    img = clip_uint8(minmax(np.sin(xx / 15) * np.cos(yy / 23) + 0.5 * (yy > 200)))
    a, b = clahe(img, backend='opencv'), clahe(img, backend='skimage')
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.97


def test_clahe_rejects_rgb_and_unknown_backend():
    with pytest.raises(ValueError, match='2-D'): clahe(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match='backend'): clahe(np.zeros((8, 8), np.uint8), backend='fiji')


def test_config_validation():
    with pytest.raises(ConfigError, match='normalization.tile_grd'):
        load_config(None, {'normalization.tile_grd': [4, 4]}).section('normalization')
    with pytest.raises(ConfigError, match='normalization.method'):
        load_config(None, {'normalization.method': 'gamma'}).section('normalization')


def test_normalized_path_keeps_material_folder():
    assert normalized_path(Path('/d/GO_02/x.tif'), Path('/d'), Path('/r/normalized')) == Path('/r/normalized/GO_02/x.png')


def _data(root: Path):
    rng = np.random.default_rng(0)
    (root/'GO_01').mkdir(parents=True); (root/'G_02').mkdir()
    tifffile.imwrite(root/'GO_01'/'a.tif', rng.integers(1000, 30000, (64, 80)).astype(np.uint16))
    tifffile.imwrite(root/'G_02'/'b.tif', rng.integers(10, 60, (48, 48)).astype(np.uint8))
    (root/'G_02'/'c.tif').write_bytes(b'not a tiff at all')


def test_run_normalization_batch_failures_and_resume(tmp_path):
    _data(tmp_path/'data')
    cfg = load_config(None, {'data.root': str(tmp_path/'data'), 'normalization.format': 'tif'})
    s = run_normalization(cfg, tmp_path/'run', progress=False)
    assert (s['images'], s['written'], s['failed'], s['skipped']) == (3, 2, 1, 0)
    assert layout_problems(tmp_path/'run') == []
    out = tifffile.imread(tmp_path/'run'/'normalized'/'GO_01'/'a.tif')
    assert out.dtype == np.uint8 and out.shape == (64, 80)
    assert (tmp_path/'run'/'normalized'/'figures'/'b.png').exists()
    rows = FailureLog(tmp_path/'run', 'normalization').rows()
    assert [Path(r['file']).name for r in rows] == ['c.tif'] and rows[0]['stage'] == 'normalization'
    s2 = run_normalization(cfg, tmp_path/'run', progress=False)
    assert (s2['written'], s2['skipped'], s2['failed']) == (0, 2, 1)
    assert len(FailureLog(tmp_path/'run', 'normalization').rows()) == 1   # re-run does not duplicate rows
    s3 = run_normalization(cfg, tmp_path/'run', force=True, progress=False)
    assert s3['written'] == 2
    import os, time
    later = time.time() + 5
    b = tmp_path/'data'/'G_02'/'b.tif'
    os.utime(b, (later, later))                                  # touched, same bytes: both skipped
    assert run_normalization(cfg, tmp_path/'run', progress=False)['skipped'] == 2
    tifffile.imwrite(b, 255 - tifffile.imread(b)); os.utime(b, (1, 1))   # other bytes, older mtime: redone, the other skipped
    s4 = run_normalization(cfg, tmp_path/'run', progress=False)
    assert (s4['written'], s4['skipped']) == (1, 1)


def test_minmax_method_output_is_the_minmax_image(tmp_path):
    _data(tmp_path/'data')
    cfg = load_config(None, {'data.root': str(tmp_path/'data'), 'normalization.method': 'minmax',
                             'normalization.figures': False, 'normalization.format': 'tif'})
    run_normalization(cfg, tmp_path/'run', progress=False)
    raw = tifffile.imread(tmp_path/'data'/'G_02'/'b.tif')
    np.testing.assert_array_equal(tifffile.imread(tmp_path/'run'/'normalized'/'G_02'/'b.tif'), clip_uint8(minmax(raw)))
    assert not (tmp_path/'run'/'normalized'/'figures').exists()

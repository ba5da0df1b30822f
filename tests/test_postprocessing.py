"""Stage 03 (ilastik labels -> U-Net dataset): the cleaning rules on arrays with known answers, the bad inputs,
resuming, and the files the U-Net and ilastik read back."""
import json, os, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accords_tem.core import ConfigError, FailureLog, IlastikFormatError, load_config
from accords_tem.io import read_ilastik_h5, read_tem, write_ilastik_h5, write_tem_tiff
from accords_tem.postprocessing import (PostprocessingConfig, check_aspect, check_label_values, clean_labels,
                                        fill_unlabelled, label_stem, make_demo_inputs, onehot_check, open_class,
                                        run_postprocessing, save_png, to_onehot)
from accords_tem.imaging import resize_labels
from accords_tem.layout import layout_problems


# ---------------------------------------------------------------- resizing
@pytest.mark.parametrize('dtype', [np.uint8, np.uint16, np.int32])
@pytest.mark.parametrize('size', [(7, 7), (64, 64), (512, 512), (100, 37), (1000, 1500)])
def test_resize_never_creates_label_values(dtype, size):
    rng = np.random.default_rng(1)
    lab = rng.choice(np.array([0, 1, 2, 3, 200], dtype), size=(123, 91))
    out = resize_labels(lab, size)
    assert out.shape == size and out.dtype == lab.dtype
    assert set(np.unique(out)) <= set(np.unique(lab))


@pytest.mark.parametrize('k', [2, 3, 4])
def test_resize_integer_factor_is_exact(k):
    rng = np.random.default_rng(2)
    lab = rng.integers(0, 4, (16, 12), dtype=np.uint8)
    big = lab.repeat(k, 0).repeat(k, 1)
    np.testing.assert_array_equal(resize_labels(big, lab.shape), lab)   # down: each block's centre pixel
    np.testing.assert_array_equal(resize_labels(lab, big.shape), big)   # up: blocks


# ---------------------------------------------------------------- gap filling
@pytest.mark.parametrize('width', [2, 4, 6, 10, 20])
@pytest.mark.parametrize('vertical', [False, True])
def test_gap_between_two_classes_is_split_half_and_half(width, vertical):
    lab = np.zeros((9, 5 + width + 5), np.uint8)
    lab[:, :5] = 1; lab[:, 5 + width:] = 2
    if vertical: lab = lab.T
    out = fill_unlabelled(lab)
    assert (out == 0).sum() == 0
    assert (out == 1).sum() == (out == 2).sum() == lab.size // 2


def test_fill_takes_the_nearest_labelled_pixel():
    rng = np.random.default_rng(3)
    lab = np.where(rng.random((15, 17)) < 0.15, rng.integers(1, 4, (15, 17)), 0).astype(np.uint8)
    out = fill_unlabelled(lab)
    ys, xs = np.nonzero(lab)
    for y, x in zip(*np.nonzero(lab == 0)):
        d = (ys - y)**2 + (xs - x)**2
        assert out[y, x] in set(lab[ys[d == d.min()], xs[d == d.min()]])  # one of the nearest (ties allowed)
    np.testing.assert_array_equal(out[lab != 0], lab[lab != 0])           # labelled pixels untouched


def test_fill_all_unlabelled_fails():
    with pytest.raises(ValueError, match='no labelled pixel'): fill_unlabelled(np.zeros((4, 4), np.uint8))


# ---------------------------------------------------------------- opening
@pytest.mark.parametrize('radius', [1, 2, 3])
def test_opening_removes_specks_keeps_large_regions(radius):
    from skimage.draw import disk
    lab = np.ones((60, 60), np.uint8)
    lab[disk((30, 30), 12)] = 2                   # a hole far larger than the disk
    lab[5, 5] = 2; lab[50:52, 8:10] = 2           # specks smaller than the disk
    out, n = open_class(lab, 2, radius)
    assert out[5, 5] == 0 and (out[50:52, 8:10] == 0).all()
    big = np.zeros_like(lab, bool); big[disk((30, 30), 12)] = True
    assert (out[big] == 2).mean() > 0.97          # the hole survives (corners of the pixel disk may round off)
    assert n == (lab == 2).sum() - (out == 2).sum()
    assert ((out == 1) == (lab == 1)).all()       # other classes untouched


def test_isolated_speck_goes_to_background():
    lab = np.ones((20, 20), np.uint8); lab[10, 10] = 2; lab[:, 15:] = 3
    out, st = clean_labels(lab, (20, 20), opening_value=2, radius=1, background=3)
    assert out[10, 10] == 3 and st['opened_px'] == 1 and st['background_px'] == 1 and st['unlabelled_after'] == 0


# ---------------------------------------------------------------- cleaning + one-hot
@pytest.mark.parametrize('fill_at', ['target', 'original'])
@pytest.mark.parametrize('size', [(32, 32), (64, 48)])
def test_clean_onehot_sums_to_one_everywhere(fill_at, size):
    rng = np.random.default_rng(4)
    lab = np.where(rng.random((128, 96)) < 0.6, rng.integers(1, 4, (128, 96)), 0).astype(np.uint8)
    out, st = clean_labels(lab, size, opening_value=2, radius=1, background=3, fill_at=fill_at)
    assert out.shape == size and set(np.unique(out)) <= {1, 2, 3}
    oh = to_onehot(out, [1, 2, 3])
    assert oh.dtype == np.uint8 and oh.shape == (3,) + size
    assert (oh.sum(0) == 1).all()
    assert onehot_check(oh) == dict(overlap_px=0, uncovered_px=0)
    assert st['unlabelled_after'] == 0


def test_onehot_channel_order_is_config_order():
    lab = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(to_onehot(lab, [3, 1, 2])[:, 0], [[0, 0, 1], [1, 0, 0], [0, 1, 0]])


def test_labels_vanishing_in_resize_are_reported():
    lab = np.zeros((64, 64), np.uint8); lab[11, 11] = 1          # one pixel, not under any output pixel centre
    with pytest.raises(ValueError, match='no labelled pixel is left after resizing'): clean_labels(lab, (16, 16))
    out, _ = clean_labels(lab, (16, 16), fill_at='original', opening_value=None)
    assert (out == 1).all()


# ---------------------------------------------------------------- input checks
@pytest.mark.parametrize('labels, match', [
    (np.zeros((5, 5), np.uint8), 'every pixel is 0'),
    (np.array([[0, 1], [4, 9]], np.uint8), r'label values \[4, 9\]'),
    (np.array([[0.5, 1.0]], np.float32), 'not integers'),
    (np.array([[np.nan, 1.0]], np.float32), 'not integers'),
])
def test_bad_label_values(labels, match):
    with pytest.raises(IlastikFormatError, match=match): check_label_values(labels, [1, 2, 3], 'x_Labels.h5')


@pytest.mark.parametrize('img, lab, ok', [((512, 512), (512, 512), True), ((2048, 2048), (512, 512), True),
                                          ((768, 1024), (384, 512), True), ((1024, 1024), (1024, 768), False),
                                          ((1024, 1024), (1024, 1020), True)])
def test_aspect(img, lab, ok):
    if ok: check_aspect(img, lab)
    else:
        with pytest.raises(IlastikFormatError, match='cannot cover the same field of view'): check_aspect(img, lab)


@pytest.mark.parametrize('name, stem', [('A_0001_Labels.h5', 'A_0001'), ('A_0001 Labels.h5', 'A_0001'),
                                        ('A_0001-labels.hdf5', 'A_0001'), ('A_0001.h5', 'A_0001')])
def test_label_stem(name, stem): assert label_stem(name) == stem


def test_config_rejects_unknown_class(tmp_path):
    "A class the configuration does not define is refused when the configuration is loaded (core.check_class_names)."
    with pytest.raises(ConfigError, match="'postprocessing.opening_class' names unknown class 'hole'"):
        load_config(overrides={'data.root': str(tmp_path/'data'), 'postprocessing.opening_class': 'hole'})


# ---------------------------------------------------------------- the stage
def _cfg(root, **kw):
    ov = {'data.root': str(root), 'postprocessing.size': [32, 32], 'postprocessing.opening_radius': 1,
          'postprocessing.examples': 0}
    ov.update({f'postprocessing.{k}': v for k, v in kw.items()})
    return load_config(overrides=ov)


@pytest.fixture
def demo(tmp_path):
    make_demo_inputs(tmp_path/'data', size=64)
    return tmp_path


def test_stage_bad_inputs_are_logged_and_the_batch_goes_on(demo):
    s = run_postprocessing(_cfg(demo/'data', examples=1), demo/'run', progress=False)
    assert layout_problems(demo/'run') == []
    assert (s['labels_found'], s['written'], s['failed']) == (8, 4, 4)
    rows = FailureLog(demo/'run', 'postprocessing').rows()
    reasons = {Path(r['file']).name: r['reason'] for r in rows}
    assert all(r['stage'] == 'postprocessing' for r in rows)
    assert 'no matching image' in reasons['AC_UT_G_04_01_UO_5000X_0099_Labels.h5']
    assert 'aspect' in reasons['AC_UT_G_04_01_UO_5000X_0003_Labels.h5']
    assert 'ilastik headless' in reasons['AC_UT_G_04_01_UO_5000X_0004_Labels.h5']
    assert 'not configured' in reasons['AC_UT_G_04_01_UO_5000X_0005_Labels.h5']
    ds = demo/'run'/'dataset'
    qc = pd.read_csv(ds/'qc.csv')
    assert len(qc) == 4 and qc['onehot_ok'].all() and (qc['overlap_px'] == 0).all() and (qc['unlabelled_after'] == 0).all()
    assert set(qc['image_source']) == {'raw'}
    for stem in qc['stem']:
        m = np.load(ds/'masks'/f'{stem}.npy'); im = read_tem(ds/'images'/f'{stem}.png')
        assert m.shape == (3, 32, 32) and m.dtype == np.uint8 and (m.sum(0) == 1).all()
        assert im.shape == (32, 32) and im.dtype == np.uint8
        assert (ds/'masks'/f'{stem}.png').exists() and (ds/'ilastik'/f'{stem}_Labels.h5').exists()
    info = json.loads((ds/'dataset.json').read_text())
    assert info['channels'] == ['GFM', 'carbonhole', 'undefined'] and info['n_images'] == 4
    assert abs(sum(info['pixel_fractions'].values()) - 1) < 1e-9
    for f in ['pixel_distribution.png', 'intensity_by_class.png', 'examples.png']: assert (ds/f).stat().st_size > 1000
    gap = qc.set_index('stem').loc['AC_UT_GO_02_01_UO_2000X_0002']
    assert gap['unlabelled_before'] > 0 and gap['unlabelled_after_fill'] == 0
    assert gap['gt_accuracy_gaps'] == 1.0 and gap['gt_accuracy'] > 0.97    # against the exact answer
    assert (qc['gt_accuracy'] > 0.97).all()


@pytest.mark.parametrize('axes', ['yx', 'yxc', 'cyx', 'xyc', 'tzyxc', 'noaxistags'])
def test_axis_orders_give_the_same_dataset(tmp_path, axes):
    make_demo_inputs(tmp_path/'data', size=64, bad=False)
    lab = read_ilastik_h5(tmp_path/'data'/'ilastik'/'AC_UT_GO_02_01_UO_2000X_0001_Labels.h5', axes='yx')
    expected = to_onehot(clean_labels(lab, (32, 32), opening_value=2, radius=1, background=3)[0], [1, 2, 3])
    p = tmp_path/'data'/'ilastik'/'AC_UT_GO_02_01_UO_2000X_0001_Labels.h5'
    if axes == 'noaxistags':
        import h5py
        p.unlink()
        with h5py.File(p, 'w') as f: f['exported_data'] = lab[..., None]
    else:
        arr = {'yx': lab, 'yxc': lab[..., None], 'cyx': lab[None], 'xyc': lab.T[..., None], 'tzyxc': lab[None, None, ..., None]}[axes]
        write_ilastik_h5(p, arr, axes)
    run_postprocessing(_cfg(tmp_path/'data'), tmp_path/'run', progress=False)
    stem = 'AC_UT_GO_02_01_UO_2000X_0001'
    np.testing.assert_array_equal(np.load(tmp_path/'run'/'dataset'/'masks'/f'{stem}.npy'), expected)
    flags = pd.read_csv(tmp_path/'run'/'dataset'/'qc.csv', keep_default_na=False).set_index('stem').loc[stem, 'flags']
    assert ('no_axistags' in flags) == (axes == 'noaxistags')


def test_ilastik_reexport_round_trip(demo):
    run_postprocessing(_cfg(demo/'data'), demo/'run', progress=False)
    stem = 'AC_UT_GO_02_01_UO_2000X_0002'
    back = read_ilastik_h5(demo/'run'/'dataset'/'ilastik'/f'{stem}_Labels.h5')
    assert back.shape == (64, 64, 1) and back.dtype == np.uint8               # the shape of the original export
    m = np.load(demo/'run'/'dataset'/'masks'/f'{stem}.npy')
    np.testing.assert_array_equal(resize_labels(back[..., 0], (32, 32)), np.argmax(m, 0) + 1)
    run_postprocessing(_cfg(demo/'data', ilastik_resolution='target'), demo/'run2', progress=False)
    assert read_ilastik_h5(demo/'run2'/'dataset'/'ilastik'/f'{stem}_Labels.h5').shape == (32, 32, 1)


def test_resume_skips_fresh_and_redoes_changed(demo):
    cfg, run = _cfg(demo/'data'), demo/'run'
    assert run_postprocessing(cfg, run, progress=False)['written'] == 4
    s = run_postprocessing(cfg, run, progress=False)
    assert (s['written'], s['skipped_fresh']) == (0, 4)
    lf = demo/'data'/'ilastik'/'AC_UT_GO_02_01_UO_2000X_0001_Labels.h5'
    t = time.time() + 5; os.utime(lf, (t, t))                                  # touched: same bytes, still fresh
    s = run_postprocessing(cfg, run, progress=False)
    assert (s['written'], s['skipped_fresh']) == (0, 4)
    lab = read_ilastik_h5(lf, axes='yx'); lab[:4, :4] = 3
    mt = lf.stat().st_mtime_ns; lf.unlink(); write_ilastik_h5(lf, lab[..., None], 'yxc')
    os.utime(lf, ns=(mt - 10**10, mt - 10**10))                                # replaced, with an older mtime: redone
    s = run_postprocessing(cfg, run, progress=False)
    assert (s['written'], s['skipped_fresh']) == (1, 3)
    s = run_postprocessing(_cfg(demo/'data', opening_radius=2), run, progress=False)   # settings changed: all redone
    assert s['written'] == 4
    assert run_postprocessing(_cfg(demo/'data', opening_radius=2), run, force=True, progress=False)['written'] == 4
    lf.unlink()                                                                # an input gone: its outputs go too
    s = run_postprocessing(_cfg(demo/'data', opening_radius=2), run, progress=False)
    assert s['removed_stale'] >= 4 and not (run/'dataset'/'masks'/'AC_UT_GO_02_01_UO_2000X_0001.npy').exists()
    assert len(pd.read_csv(run/'dataset'/'qc.csv')) == 3


def test_normalized_image_is_used_when_present(demo):
    stem = 'AC_UT_GO_02_01_UO_2000X_0001'
    norm = np.tile(np.arange(64, dtype=np.uint8)[None] * 4, (64, 1))
    save_png(norm, demo/'run'/'normalized'/'GO_02'/f'{stem}.png')
    run_postprocessing(_cfg(demo/'data'), demo/'run', progress=False)
    qc = pd.read_csv(demo/'run'/'dataset'/'qc.csv').set_index('stem')
    assert qc.loc[stem, 'image_source'] == 'normalized'
    assert (qc.drop(stem)['image_source'] == 'raw').all()
    im = read_tem(demo/'run'/'dataset'/'images'/f'{stem}.png')
    np.testing.assert_allclose(im[0].astype(float), norm[0, ::2].astype(float) + 2, atol=1)   # area: mean of 2 columns
    s = run_postprocessing(_cfg(demo/'data', use_normalized=False), demo/'run', progress=False)
    assert s['written'] == 4


def test_sixteen_bit_raw_image_is_scaled_to_uint8(demo):
    run_postprocessing(_cfg(demo/'data'), demo/'run', progress=False)
    a = read_tem(demo/'run'/'dataset'/'images'/'AC_UT_GO_02_01_UO_2000X_0001.png')
    b = read_tem(demo/'run'/'dataset'/'images'/'AC_UT_GO_02_01_UO_2000X_0002.png')   # same picture, 16-bit x200
    assert b.dtype == np.uint8 and b.max() > 200 and b.min() < a.min()         # stretched to the full range
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99


def test_labels_lost_in_resize_are_a_failure_naming_the_fix(tmp_path):
    make_demo_inputs(tmp_path/'data', size=64, bad=False)
    lab = np.zeros((64, 64), np.uint8); lab[10, 10] = 1                 # one pixel, between the sampled ones at 32x32
    write_ilastik_h5(tmp_path/'data'/'ilastik'/'AC_UT_GO_02_01_UO_2000X_0001_Labels.h5', lab, 'yx')
    s = run_postprocessing(_cfg(tmp_path/'data'), tmp_path/'run', progress=False)
    assert (s['written'], s['failed']) == (3, 1)
    row = FailureLog(tmp_path/'run', 'postprocessing').rows()[0]
    assert row['error'] == 'IlastikFormatError' and 'fill_at: original' in row['reason']
    s = run_postprocessing(_cfg(tmp_path/'data', fill_at='original'), tmp_path/'run', progress=False)
    assert (s['written'], s['failed']) == (4, 0)

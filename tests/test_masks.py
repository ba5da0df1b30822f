"""Stage 02 (masks): naming and pairing rules, thresholds, probability checks, axis order, the batch."""
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile

from accords_tem.core import ClassSpec, ConfigError, FailureLog, IlastikFormatError, load_config
from accords_tem.io import write_ilastik_h5
from accords_tem.masks import (MasksConfig, check_probabilities, export_kind, iou, masks_for_export, pair_exports,
                               run_masks, target_classes, threshold_masks, threshold_table)
from accords_tem.layout import layout_problems

NAMES = ['GFM', 'carbonhole', 'undefined']


@pytest.mark.parametrize('name,kind', [
    ('AC_UT_GO_02_01_UO_2000X_0003_Probabilities.h5', 'probabilities'),
    ('img_Probabilities-1.h5', 'probabilities'),
    ('img_Probabilities_table.h5', 'probabilities'),
    ('img Simple Segmentation.h5', 'segmentation'),
    ('img_Simple Segmentation_2.h5', 'segmentation'),
    ('img_Labels.h5', 'labels'),
    ('img.h5', None),
])
def test_export_kind(name, kind):
    assert export_kind(name) == kind


IMAGES = ['r/GO/AC_UT_GO_02_01_UO_2000X_0003.tif', 'r/GO/AC_UT_GO_02_01_UO_2000X_00031.tif', 'r/G/scan-7.tif',
          'r/G/My Image.tif']


@pytest.mark.parametrize('export,image', [
    ('AC_UT_GO_02_01_UO_2000X_0003_Probabilities.h5', 'AC_UT_GO_02_01_UO_2000X_0003.tif'),
    ('AC_UT_GO_02_01_UO_2000X_00031_Probabilities.h5', 'AC_UT_GO_02_01_UO_2000X_00031.tif'),   # longest stem
    ('AC_UT_GO_02_01_UO_2000X_0003 Simple Segmentation.h5', 'AC_UT_GO_02_01_UO_2000X_0003.tif'),
    ('AC_UT_GO_02_01_UO_2000X_0003_Probabilities-1.h5', 'AC_UT_GO_02_01_UO_2000X_0003.tif'),
    ('AC_UT_GO_02_01_UO_2000X_0003_Probabilities_table.h5', 'AC_UT_GO_02_01_UO_2000X_0003.tif'),
    ('ac_ut_go_02_01_uo_2000x_0003_probabilities.h5', 'AC_UT_GO_02_01_UO_2000X_0003.tif'),     # case
    ('scan_7_Probabilities.h5', 'scan-7.tif'),                                                    # '-' ~ '_'
    ('My_Image_Probabilities.h5', 'My Image.tif'),                                                # ' ' ~ '_'
    ('AC_UT_GO_02_01_UO_2000X_000_Probabilities.h5', None),      # a stem prefix is not a match
    ('unrelated_Probabilities.h5', None),
])
def test_pairing_rules(export, image):
    pairs, missing = pair_exports(['r/ilastik/' + export], IMAGES)
    if image is None:
        assert 'r/ilastik/' + export in missing and not pairs
    else:
        assert Path(pairs['r/ilastik/' + export]).name == image


def test_pairing_refuses_duplicate_stems():
    pairs, missing = pair_exports(['x_Probabilities.h5'], ['a/x.tif', 'b/x.tif'])
    assert not pairs and 'share the stem' in missing['x_Probabilities.h5']


def test_threshold_at_half_of_known_map():
    p = np.array([[0.0, 0.2, 0.5], [0.5001, 0.8, 1.0]], np.float32)[..., None]
    m = threshold_masks(p, [('GFM', 0)], {'GFM': 0.5})['GFM']
    assert m.tolist() == [[False, False, False], [True, True, True]]


@pytest.mark.parametrize('t,n', [(0.0, 5), (0.19, 5), (0.2, 4), (0.7, 3), (0.99, 1), (1.0, 0)])
def test_threshold_counts(t, n):
    p = np.array([0.0, 0.2, 0.5, 0.8, 0.9, 1.0], np.float32).reshape(1, 6, 1)
    assert threshold_masks(p, [('a', 0)], {'a': t})['a'].sum() == n


def test_threshold_lookup_order():
    lk = threshold_table(MasksConfig(default_threshold=0.45, thresholds={'GFM': 0.4},
                                     overrides={'img_1': {'GFM': 0.7}}), NAMES, extra={'img_2.tif': {'carbonhole': 0.9}})
    assert lk('d/img_1.tif', 'GFM') == (0.7, 'image')
    assert lk('d/img_2.tif', 'carbonhole') == (0.9, 'image')
    assert lk('d/img_3.tif', 'GFM') == (0.4, 'class')
    assert lk('d/img_3.tif', 'undefined') == (0.45, 'default')
    with pytest.raises(ConfigError, match='unknown classes'):
        threshold_table(MasksConfig(thresholds={'graphene': 0.3}), NAMES)


def test_target_classes_by_name_follow_label_order():
    cfg = load_config(None).model_copy(update=dict(classes=[ClassSpec(name='hole', label=2), ClassSpec(name='flake', label=1)]))
    assert target_classes(cfg, MasksConfig()) == [('flake', 0), ('hole', 1)]
    assert target_classes(cfg, MasksConfig(classes=['hole'])) == [('hole', 1)]
    with pytest.raises(ConfigError): target_classes(cfg, MasksConfig(classes=['GFM']))


def _probs(h=6, w=7, seed=0):
    return np.random.default_rng(seed).dirichlet([1, 1, 1], size=(h, w)).astype(np.float32)


@pytest.mark.parametrize('bad,match', [
    (lambda p: np.where(np.arange(p.size).reshape(p.shape) == 5, np.nan, p), 'NaN'),
    (lambda p: p * 2, r'outside \[0, 1\]'),
    (lambda p: p - 0.5, r'outside \[0, 1\]'),
    (lambda p: p[..., :2], '2 probability channels'),
    (lambda p: np.concatenate([p, p[..., :1]], -1), '4 probability channels'),
    (lambda p: p[..., 0], 'yxc'),
])
def test_bad_probabilities_rejected(bad, match):
    with pytest.raises(IlastikFormatError, match=match):
        check_probabilities(bad(_probs()), 3, 'x_Probabilities.h5')


def test_integer_probabilities_are_scaled():
    np.testing.assert_allclose(check_probabilities(np.array([[[0, 51, 255]]], np.uint8), 3), [[[0, 0.2, 1]]])


@pytest.mark.parametrize('axes', ['yxc', 'cyx', 'xyc', 'tzyxc', 'zcyx'])
def test_other_axis_orders_read_via_axistags(tmp_path, axes):
    p = _probs()
    arr = p
    src = 'yxc'
    for a in axes:
        if a not in src: arr, src = arr[None], a + src
    arr = np.transpose(arr, [src.index(a) for a in axes])
    f = write_ilastik_h5(tmp_path/'a_Probabilities.h5', arr, axes)
    got, masks = masks_for_export(f, [('GFM', 0), ('undefined', 2)], {'GFM': 0.5, 'undefined': 0.3}, NAMES)
    np.testing.assert_array_equal(got, p)
    np.testing.assert_array_equal(masks['undefined'], p[..., 2] > 0.3)


def test_iou_known():
    a = np.zeros((4, 4), bool); a[:2] = True
    b = np.zeros((4, 4), bool); b[1:3] = True
    assert iou(a, b) == (4 / 12, 4, 4, 4)
    assert np.isnan(iou(np.zeros(3), np.zeros(3))[0])


def _scene(root: Path):
    """Images + ground truth + exports: 0 good, 1 channel-first, 2 NaN, 3 two channels, 4 out of range, + an orphan."""
    rng = np.random.default_rng(0)
    for sub in ['GO_01', 'ilastik', 'ground_truth']: (root/sub).mkdir(parents=True)
    yy, xx = np.mgrid[:40, :50]
    for i, kind in enumerate(['good', 'cyx', 'nan', 'twoch', 'range']):
        cls = np.full((40, 50), 3, np.uint8); cls[yy < 15] = 1; cls[(yy > 25) & (xx > 30 - i)] = 2
        prob = 0.8 * np.stack([cls == c for c in (1, 2, 3)], -1) + 0.2 * rng.dirichlet([1, 1, 1], size=cls.shape)
        prob = prob.astype(np.float32)
        stem = f'AC_UT_GO_01_01_UO_2000X_000{i}'
        tifffile.imwrite(root/'GO_01'/f'{stem}.tif', (100 + 50 * cls).astype(np.uint16))
        cv2.imwrite(str(root/'ground_truth'/f'{stem}_classes.png'), cls)
        f = root/'ilastik'/f'{stem}_Probabilities.h5'
        if kind == 'cyx': write_ilastik_h5(f, prob.transpose(2, 0, 1), 'cyx')
        elif kind == 'nan': prob[3, 3, 1] = np.nan; write_ilastik_h5(f, prob)
        elif kind == 'twoch': write_ilastik_h5(f, prob[..., :2])
        elif kind == 'range': write_ilastik_h5(f, prob * 3)
        else: write_ilastik_h5(f, prob)
    write_ilastik_h5(root/'ilastik'/'orphan_Probabilities.h5', prob)
    write_ilastik_h5(root/'ilastik'/'AC_UT_GO_01_01_UO_2000X_0000_Labels.h5', cls[..., None])   # not ours: ignored
    write_ilastik_h5(root/'ilastik'/'AC_UT_GO_01_01_UO_2000X_0000 Simple Segmentation.h5', cls[..., None])  # ignored too


def test_run_masks_end_to_end(tmp_path):
    _scene(tmp_path/'data')
    cfg = load_config(None, {'data.root': str(tmp_path/'data'), 'masks.classes': ['GFM', 'carbonhole'],
                             'masks.overrides': {'AC_UT_GO_01_01_UO_2000X_0001': {'GFM': 0.9}}})
    s = run_masks(cfg, tmp_path/'run', progress=False)
    assert (s['exports'], s['paired'], s['written'], s['failed']) == (6, 5, 2, 4)
    assert layout_problems(tmp_path/'run') == []
    assert s['classes'] == ['GFM', 'carbonhole'] and not (tmp_path/'run'/'masks'/'undefined').exists()
    fails = {Path(r['file']).name: r for r in FailureLog(tmp_path/'run', 'masks').rows()}
    assert set(fails) == {'AC_UT_GO_01_01_UO_2000X_000{}_Probabilities.h5'.format(i) for i in (2, 3, 4)} | {'orphan_Probabilities.h5'}
    assert fails['orphan_Probabilities.h5']['reason'].startswith('no raw image')
    for n in ['GFM', 'carbonhole']:
        png = cv2.imread(str(tmp_path/'run'/'masks'/n/'AC_UT_GO_01_01_UO_2000X_0000.png'), cv2.IMREAD_UNCHANGED)
        npy = np.load(tmp_path/'run'/'masks'/n/'AC_UT_GO_01_01_UO_2000X_0000.npy')
        assert png.dtype == np.uint8 and set(np.unique(png)) == {0, 255} and npy.dtype == bool
        np.testing.assert_array_equal(png == 255, npy)
        assert len(list((tmp_path/'run'/'masks'/n/'qa').glob('*.png'))) == 2
        assert (tmp_path/'run'/'masks'/n/'contact_sheet.png').exists()
    ious = pd.read_csv(tmp_path/'run'/'masks'/'iou.csv')
    strict = ious.file.str.endswith('0001.tif') & (ious['class'] == 'GFM')   # threshold 0.9 cuts into p = 0.8 + noise
    assert len(ious) == 4 and ious[~strict].iou.min() == 1.0 and ious[strict].iou.iloc[0] < 0.5
    summ = pd.read_csv(tmp_path/'run'/'masks'/'iou_summary.csv').set_index('class')
    assert summ.iou_micro['carbonhole'] == 1.0 and summ.iou_micro['GFM'] < 1 and summ.images.tolist() == summ.scored.tolist() == [2, 2]
    t = pd.read_csv(tmp_path/'run'/'masks'/'masks.csv')
    row = t[(t['class'] == 'GFM') & t.file.str.endswith('0001.tif')].iloc[0]
    assert (row.threshold, row.threshold_from) == (0.9, 'image')
    # resume: nothing redone, nothing duplicated; a changed threshold redoes everything
    s2 = run_masks(cfg, tmp_path/'run', progress=False)
    assert (s2['written'], s2['skipped']) == (0, 2) and len(FailureLog(tmp_path/'run', 'masks').rows()) == 4
    cfg3 = load_config(None, {'data.root': str(tmp_path/'data'), 'masks.classes': ['GFM', 'carbonhole'],
                              'masks.thresholds': {'GFM': 0.95}})
    s3 = run_masks(cfg3, tmp_path/'run', progress=False)
    assert s3['written'] == 2
    assert np.load(tmp_path/'run'/'masks'/'GFM'/'AC_UT_GO_01_01_UO_2000X_0000.npy').sum() < 15 * 50   # stricter threshold


def test_size_mismatch_is_a_failure(tmp_path):
    root = tmp_path/'data'; (root/'G').mkdir(parents=True)
    tifffile.imwrite(root/'G'/'a.tif', np.zeros((30, 30), np.uint8))
    write_ilastik_h5(root/'a_Probabilities.h5', _probs(20, 30))
    s = run_masks(load_config(None, {'data.root': str(root), 'data.ground_truth': None}), tmp_path/'run', progress=False)
    assert s['failed'] == 1
    assert 'was the export made from another image' in FailureLog(tmp_path/'run', 'masks').rows()[0]['reason']
    (tmp_path/'bad.csv').write_text('file,klass,threshold\na,GFM,0.3\n')   # the re-run stops at its settings: no stale rows
    with pytest.raises(ConfigError, match='missing'):
        run_masks(load_config(None, {'data.root': str(root), 'data.ground_truth': None, 'masks.overrides_file': str(tmp_path/'bad.csv')}),
                  tmp_path/'run', progress=False)
    assert FailureLog(tmp_path/'run', 'masks').rows('masks') == []


def test_overrides_file(tmp_path):
    _scene(tmp_path/'data')
    (tmp_path/'thr.csv').write_text('file,class,threshold\nAC_UT_GO_01_01_UO_2000X_0000.tif,GFM,0.99\n')
    cfg = load_config(None, {'data.root': str(tmp_path/'data'), 'masks.overrides_file': str(tmp_path/'thr.csv'),
                             'masks.qa': False})
    run_masks(cfg, tmp_path/'run', progress=False)
    t = pd.read_csv(tmp_path/'run'/'masks'/'masks.csv')
    r = t[(t['class'] == 'GFM') & t.file.str.endswith('0000.tif')].iloc[0]
    assert (r.threshold, r.threshold_from) == (0.99, 'image')
    (tmp_path/'bad.csv').write_text('file,klass,threshold\na,GFM,0.3\n')
    with pytest.raises(ConfigError, match='missing'):
        run_masks(load_config(None, {'data.root': str(tmp_path/'data'), 'masks.overrides_file': str(tmp_path/'bad.csv')}),
                  tmp_path/'run2', progress=False)

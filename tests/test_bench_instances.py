"""bench/bench_instances.py: fold split, ground-truth gaps and the metric reduction on tiny arrays (no Cellpose needed)."""
import importlib.util
from pathlib import Path
import numpy as np
import pytest
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location('bench_instances', ROOT/'bench'/'bench_instances.py')
bi = importlib.util.module_from_spec(spec); spec.loader.exec_module(bi)

def test_folds_and_subset():
    ids = [f'{i:03d}' for i in range(23)]
    folds = bi.kfold(ids, 5, 0)
    assert sorted(i for f in folds for i in f) == ids                  # every image in exactly one fold
    assert sorted(len(f) for f in folds) == [4, 4, 5, 5, 5]
    assert folds == bi.kfold(list(reversed(ids)), 5, 0)                # seeded, independent of input order
    sub = bi.subset_ids(ids, 10, 0)
    assert len(sub) == 10 and sub == sorted(sub) and sub == bi.subset_ids(ids, 10, 0) and set(sub) <= set(ids)
    assert bi.subset_ids(ids, None, 0) == ids

def two_touching():
    gt = np.zeros((40, 60), np.int32)
    gt[10:30, 5:25] = 1; gt[10:30, 25:45] = 2; gt[0:6, 50:60] = 3     # 1 and 2 touch; 3 touches the border
    return gt

def test_gap_mask_separates_touching():
    gt = two_touching(); m = bi.gap_mask(gt)
    assert ndi.label(m, np.ones((3, 3)))[1] == 3                       # 8-connected: the touching pair is split
    assert (gt > 0).sum() - m.sum() == 20                              # a 1-px gap: one column of 20 px erased
    assert m[gt == 3].all()                                            # an object touching nothing keeps every pixel

def test_metrics_known_answers():
    gt = two_touching()
    r = bi.image_metrics(gt, gt)
    assert (r['tp'], r['fp'], r['fn'], r['f1'], r['count_err'], r['pixel_iou']) == (3, 0, 0, 1.0, 0.0, 1.0)
    assert np.allclose(sorted(r['_ecd_gt']), [np.sqrt(4 * 400 / np.pi)] * 2)   # object 3 touches the border: not sized
    merged = (gt > 0).astype(np.int32); merged[gt == 3] = 2                     # 1+2 merged into one object
    r2 = bi.image_metrics(merged, gt)
    assert (r2['n_pred'], r2['tp'], r2['fp'], r2['fn']) == (2, 1, 1, 2) and np.isclose(r2['count_err'], 2 / 3 - 1)
    assert r2['tp_ties'] == 0     # IoU exactly 0.5 with both halves: objects.match_instances pairs strictly above 0.5, so no tie
    p = bi.pool([r, r2])
    assert (p['tp'], p['n_pred'], p['n_gt']) == (4, 5, 6) and np.isclose(p['f1'], 8 / 11)
    assert np.isclose(p['count_err_pooled'], 5 / 6 - 1) and np.isclose(p['count_abs_err_median'], (0 + 1 / 3) / 2)
    assert p['n_sized_pred'] == 3 and np.isclose(p['D50_err'], 0)    # pred sizes 400, 400, 800 px; true 4 x 400 px
    assert p['pixel_iou'] == 1.0

def test_ecd_matches_object_features():
    from accords_tem.objects import object_features
    gt = two_touching(); gt[32:38, 2:9] = 4
    d, b = bi.ecd_border(gt)
    f = object_features(gt)
    assert np.allclose(d, f['equivalent_diameter'].to_numpy()) and (b == f['touches_border'].astype(bool).to_numpy()).all()

def test_gt_methods_on_touching_pair():
    from accords_tem.objects import ObjectsConfig
    oc = ObjectsConfig(min_area_px=80); gt = two_touching()
    v = bi.gt_variants('gt-binary-gaps', gt, oc)
    assert v['gt-binary-gaps:cc'].max() == 2                           # the 60-px border object is below min_area_px (80)
    assert bi.gt_variants('gt-binary', gt, oc)['gt-binary:cc'].max() == 1  # merged without splitting
    assert v['gt-binary-gaps:auto'].max() == 2                         # separated: not split further
    assert bi.gt_variants('gt-instances', gt, oc)['gt-instances'].max() == 2

@pytest.mark.skipif(not bi.DATA.exists(), reason='emps-train data absent')
def test_reads_emps():
    ids = bi.list_ids(bi.DATA)
    assert len(ids) == 366
    im, lab = bi.read_image(bi.DATA, ids[0]), bi.read_instances(bi.DATA, ids[0])
    assert im.ndim == 2 and im.dtype == np.uint8 and lab.shape == im.shape and lab.max() > 0

def test_binary_inputs(tmp_path):
    import cv2
    (tmp_path/'images').mkdir(); (tmp_path/'segmaps').mkdir()
    for i in ('a', 'b'):
        cv2.imwrite(str(tmp_path/'images'/f'{i}.png'), np.full((40, 60), 100, np.uint8))
        cv2.imwrite(str(tmp_path/'segmaps'/f'{i}.png'), two_touching().astype(np.uint16))
    bi.link_inputs(tmp_path/'links', tmp_path, ['a'], ['b'], binary=True)
    m = cv2.imread(str(tmp_path/'links'/'train_masks'/'a.png'), cv2.IMREAD_UNCHANGED)
    assert m.dtype == np.uint8 and set(np.unique(m)) == {0, 255} and ndi.label(m)[1] == 2   # the touching pair is one piece
    assert (tmp_path/'links'/'train_images'/'a.png').is_symlink() and (tmp_path/'links'/'test_images'/'b.png').is_symlink()
    assert not (tmp_path/'links'/'train_masks'/'b.png').exists()
    bi.link_inputs(tmp_path/'links2', tmp_path, ['a'], ['b'])
    assert (tmp_path/'links2'/'train_masks'/'a.png').is_symlink()                              # instance maps: linked as they are

def test_saved_accords_predictions_are_rescored(tmp_path):
    from types import SimpleNamespace
    from accords_tem.unet import save_instances
    args = SimpleNamespace(binary_objects='cut')
    lab = two_touching().astype(np.int32)
    save_instances(lab, ['particle', 'particle'], tmp_path/'fold0'/'accords'/'predict'/'instances'/'a.tif')
    assert bi.saved_accords(tmp_path/'fold0', ['a', 'b'], args) is None     # b was not predicted: train and predict instead
    got = bi.saved_accords(tmp_path/'fold0', ['a'], args)
    assert list(got) == ['a'] and np.array_equal(got['a'], lab)
    assert bi.accords_run(tmp_path/'fold0', args, binary=True).name == 'accords-binary-cut'

"""Objects: features on drawn shapes with known geometry, classifier round trip, COCO RLE, matching, summaries, the stage."""
import json, os
import numpy as np
import pandas as pd
import pytest
from skimage import draw

from accords_tem.core import load_config, AccordsError
from accords_tem.io import read_tem, write_tem_tiff
from accords_tem.objects import (ObjectsConfig, object_features, majority_class, ObjectClassifier, FEATURE_COLUMNS,
                                 size_stats, summarize, match_instances, rle_encode, rle_decode, coco_annotations,
                                 run_objects, _write_png)
from accords_tem.layout import layout_problems

def disk_labels(shape=(256, 256), c=(128, 128), r=50):
    lab = np.zeros(shape, np.int32); rr, cc = draw.disk(c, r, shape=shape); lab[rr, cc] = 1; return lab

@pytest.mark.parametrize('r', [20, 50])
@pytest.mark.parametrize('spacing', [None, 0.5, 3.0])
def test_disk_geometry(r, spacing):
    f = object_features(disk_labels(r=r), spacing=spacing).iloc[0]
    s = spacing or 1.0
    assert f.unit == ('nm' if spacing else 'px')
    assert f.area == pytest.approx(np.pi * (r * s) ** 2, rel=0.02)
    assert f.perimeter == pytest.approx(2 * np.pi * r * s, rel=0.05)
    assert f.circularity == pytest.approx(1.0, abs=0.1)
    assert f.equivalent_diameter == pytest.approx(2 * r * s, rel=0.01)
    assert f.feret_max == pytest.approx(2 * r * s, rel=0.04)
    assert f.feret_min == pytest.approx(2 * r * s, rel=0.04)
    assert f.eccentricity == pytest.approx(0, abs=0.05) and f.solidity > 0.95
    assert f.area_px == pytest.approx(np.pi * r * r, rel=0.02)

@pytest.mark.parametrize('h,w', [(20, 40), (10, 100), (33, 33)])
def test_rectangle_feret(h, w):
    lab = np.zeros((150, 150), np.int32); lab[20:20 + h, 30:30 + w] = 1
    f = object_features(lab, spacing=2.0).iloc[0]
    assert f.feret_min == pytest.approx(2.0 * min(h, w), abs=1e-6)
    assert f.feret_max == pytest.approx(2.0 * np.hypot(h, w), rel=0.03)
    assert f.area == 4.0 * h * w and f.solidity == pytest.approx(1.0)

def test_intensity_ring_texture_border():
    lab = np.zeros((100, 100), np.int32); lab[20:40, 20:40] = 1; lab[0:10, 60:80] = 2
    img = np.full(lab.shape, 0.2); img[lab == 1] = 0.8
    img[0:10, 60:80] = np.where(np.indices((10, 20)).sum(0) % 2, 0.3, 0.9)   # checkerboard: texture
    f = object_features(lab, img, ring_px=3).set_index('label')
    assert f.loc[1, 'ring_contrast'] > 0.5 and f.loc[1, 'glcm_contrast'] == 0 and f.loc[1, 'entropy'] == 0
    assert f.loc[2, 'glcm_contrast'] > 0 and f.loc[2, 'entropy'] == pytest.approx(1.0)
    assert f.loc[2, 'glcm_homogeneity'] < 1 and f.loc[1, 'glcm_homogeneity'] == 1
    assert f.touches_border.tolist() == [False, True]

def test_majority_class():
    lab = np.zeros((10, 10), int); lab[:, :5] = 1; lab[:, 5:] = 2
    cm = np.zeros((10, 10), np.uint8); cm[:, :4] = 1; cm[:, 5:] = 3
    v, f = majority_class(lab, cm)
    assert v.tolist() == [1, 3] and f.tolist() == pytest.approx([0.8, 1.0])

@pytest.mark.parametrize('kind', ['rf', 'knn'])
def test_classifier_round_trip(tmp_path, kind):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({c: rng.normal(size=80) for c in FEATURE_COLUMNS}); df['area_px'] = rng.integers(30, 5000, 80)
    y = np.where(df.circularity + 0.3 * rng.normal(size=80) > 0, 'GFM', 'carbonhole')
    df['circularity'] += np.where(y == 'GFM', 2.0, -2.0)
    clf = ObjectClassifier(kind, n_estimators=30).fit(df, y)
    back = ObjectClassifier.load(clf.save(tmp_path/'c.joblib'))
    assert (back.predict(df)[0] == clf.predict(df)[0]).all()
    assert np.allclose(back.predict_proba(df).to_numpy(), clf.predict_proba(df).to_numpy())
    cv = clf.cross_validate(df, y, 5)
    assert cv['cv_folds'] == 5 and cv['cv_accuracy'] > 0.85
    assert np.isnan(clf.cross_validate(df.iloc[:3], y[:3], 5)['cv_accuracy'])

def test_rle_round_trip():
    rng = np.random.default_rng(0)
    m = rng.random((37, 53)) > 0.6
    assert (rle_decode(rle_encode(m)) == m).all()
    json.dumps(rle_encode(m))     # counts are text
    lab = np.zeros((40, 60), np.int32); lab[5:10, 5:20] = 1; lab[20:35, 30:50] = 2
    anns = coco_annotations(lab, np.array([0, 1, 2]), image_id=3, scores=np.array([0, .9, .8]))
    assert [a['bbox'] for a in anns] == [[5, 5, 15, 5], [30, 20, 20, 15]] and [a['area'] for a in anns] == [75, 300]
    for a in anns: assert (rle_decode(a['segmentation']) == (lab == a['id'])).all()

def test_match_instances():
    gt = np.zeros((60, 60), int); gt[5:25, 5:25] = 1; gt[30:50, 30:50] = 2
    assert match_instances(gt * 3, gt)['f1'] == 1.0
    pr = np.zeros_like(gt); pr[5:25, 6:25] = 4; pr[30:39, 30:50] = 5
    m = match_instances(pr, gt)
    assert (m['tp'], m['fp'], m['fn']) == (1, 1, 1) and m['mean_iou'] == pytest.approx(0.95)
    assert match_instances(pr, gt, iou=0.4)['tp'] == 2

def test_size_stats_and_summary():
    st = size_stats(np.arange(1, 101), nano=50)
    assert st['D50'] == pytest.approx(50.5) and st['frac_le_nano'] == 0.5
    ob = pd.DataFrame(dict(image=['a'] * 3 + ['b'], sample=['s'] * 4, **{'class': ['GFM', 'GFM', 'carbonhole', 'GFM']},
                           area_px=[100, 300, 50, 200], equivalent_diameter=[80., 120., 40., 200.],
                           equivalent_diameter_px=[11., 20., 8., 16.], touches_border=[False, False, False, True],
                           nm_per_px=[2.0] * 4))
    im = pd.DataFrame(dict(image=['a', 'b'], sample=['s', 's'], height=[100, 100], width=[100, 100], nm_per_px=[2.0, 2.0]))
    s = summarize(ob, im, 'sample', ['GFM', 'carbonhole']).iloc[0]
    assert (s.n_GFM, s.n_carbonhole, s.GFM_n_sized, s.GFM_n_border_excluded) == (3, 1, 2, 1)
    assert s.GFM_area_fraction == pytest.approx(600 / 20000) and s.GFM_D50 == pytest.approx(100.)
    assert s['GFM_frac_ecd_le_100nm'] == 0.5 and s.size_unit == 'nm'

def _toy(root, run_dir, seed=0):
    from accords_tem.io import write_tem_tiff
    rng = np.random.default_rng(seed)
    for k, (mat, nm) in enumerate([('GO_01', 2.0), ('rGO_02', None)]):
        H = W = 200
        cls = np.full((H, W), 3, np.uint8); inst = np.zeros((H, W), np.uint16)
        rr, cc = draw.disk((160, 50), 28, shape=cls.shape); cls[rr, cc] = 2
        for i, (c, r) in enumerate([((50, 50), 25), ((50, 98), 25), ((140, 140), 20), ((5, 150), 12)], 1):
            rr, cc = draw.disk(c, r, shape=cls.shape); cls[rr, cc] = 1; inst[rr, cc] = i
        img = np.where(cls == 1, 90, np.where(cls == 2, 200, 140)) + rng.normal(0, 8, (H, W))
        stem = f'AC_UT_{mat}_01_UO_{"2000X_" if nm else ""}{k:04d}'
        write_tem_tiff(root/mat/f'{stem}.tif', np.clip(img, 0, 255).astype(np.uint8), nm_per_px=nm)
        (root/'ground_truth').mkdir(parents=True, exist_ok=True)
        _write_png(cls, root/'ground_truth'/f'{stem}_classes.png'); _write_png(inst, root/'ground_truth'/f'{stem}_instances.png')
        for c, v in [('GFM', 1), ('carbonhole', 2), ('undefined', 3)]:
            (run_dir/'masks'/c).mkdir(parents=True, exist_ok=True)
            np.save(run_dir/'masks'/c/f'{stem}.npy', (cls == v) ^ (rng.random((H, W)) < 0.002))

def test_missing_source_is_an_error(tmp_path):
    "No silent fallback: source unet without U-Net output names what to run and the sources that do have masks."
    _toy(tmp_path/'data', tmp_path/'run')
    cfg = load_config(None, {'data.root': str(tmp_path/'data'), 'objects.source': 'unet'})
    pd.DataFrame([dict(stage='objects', file='old.tif', error='AccordsError', reason='an earlier run', time='t'),
                  dict(stage='io', file='other.tif', error='ImageReadError', reason='kept', time='t')]).to_csv(tmp_path/'run'/'failures.csv', index=False)
    with pytest.raises(AccordsError, match=r"objects.source is 'unet' but no image has its masks.*'ilastik'"): run_objects(cfg, tmp_path/'run')
    left = pd.read_csv(tmp_path/'run'/'failures.csv')   # the earlier run's objects rows are not this run's: gone; other stages' kept
    assert left.stage.tolist() == ['io'], left

def test_model_instances_are_used(tmp_path):
    "A U-Net with centre maps wrote instances/<stem>.tif: touching objects it separated stay separate, the mask is not re-cut."
    from accords_tem.unet import save_instances
    _toy(tmp_path/'data', tmp_path/'run')
    stems = [f.name[:-len('_classes.png')] for f in (tmp_path/'data'/'ground_truth').glob('*_classes.png')]
    from accords_tem.objects import _read_png
    for stem in stems:
        cm = _read_png(tmp_path/'data'/'ground_truth'/f'{stem}_classes.png'); inst = _read_png(tmp_path/'data'/'ground_truth'/f'{stem}_instances.png')
        d = tmp_path/'run'/'unet'/'predict'
        for c, v in [('GFM', 1), ('carbonhole', 2)]:
            (d/'masks').mkdir(parents=True, exist_ok=True); _write_png(((cm == v) * 255).astype(np.uint8), d/'masks'/f'{stem}_{c}.png')
        gfm = np.where(cm == 1, inst, 0)
        ids = np.unique(gfm[gfm > 0]); lab = np.searchsorted(ids, gfm) + 1; lab[gfm == 0] = 0
        save_instances(lab.astype(np.int32), ['GFM'] * len(ids), d/'instances'/f'{stem}.tif', ['GFM'])
    cfg = load_config(None, {'data.root': str(tmp_path/'data'), 'objects.n_estimators': 10, 'objects.max_overlays': 0, 'objects.coco': False,
                             'objects.split_touching': False, 'objects.class_from': 'mask'})   # no cutting at all: the model's objects
    s = run_objects(cfg, tmp_path/'run')
    assert s['source'] == 'unet' and s['evaluation']['f1'] == pytest.approx(1.0) and s['counts']['carbonhole'] == 2

@pytest.mark.parametrize('source', ['ilastik', 'ground_truth'])
def test_run_objects(tmp_path, source):
    _toy(tmp_path/'data', tmp_path/'run')
    cfg = load_config(None, {'data.root': str(tmp_path/'data'), 'objects.source': source, 'objects.n_estimators': 20, 'objects.class_from': 'mask',
                             'objects.max_overlays': 1})
    s = run_objects(cfg, tmp_path/'run')
    assert s['source'] == source
    assert layout_problems(tmp_path/'run') == []
    out = tmp_path/'run'/'objects'
    ob = pd.read_csv(out/'objects.csv')
    assert (ob['class'] == 'GFM').sum() == 8 and (ob['class'] == 'carbonhole').sum() == 2
    assert {'image', 'sample', 'class', 'probability', 'area', 'unit', 'nm_per_px', 'touches_border'} <= set(ob.columns)
    assert set(ob.unit) == {'nm', 'px'}
    ev = pd.read_csv(out/'evaluation.csv')
    assert ev.f1.iloc[-1] == pytest.approx(1.0) and ev.D50_rel_error.iloc[-1] < 0.05
    coco = json.loads((out/'coco.json').read_text())
    assert len(coco['annotations']) == len(ob) and len(coco['images']) == 2
    assert len(list((out/'labels').glob('*.png'))) == 2 and len(list((out/'overlays').glob('*.png'))) == 1
    smp = pd.read_csv(out/'summary_samples.csv')
    assert smp['sample'].tolist() == ['GO_01', 'rGO_02'] and smp.size_unit.tolist() == ['nm', 'px']
    m = json.loads((out/'metrics.json').read_text())
    assert m['classifier']['status'] == 'trained' and m['classifier']['cv_accuracy'] is not None
    t = (out/'per_image').stat().st_mtime_ns, [p.stat().st_mtime_ns for p in sorted((out/'per_image').glob('*.csv'))]
    assert run_objects(cfg, tmp_path/'run')['classifier']['status'] == 'reused'
    assert [p.stat().st_mtime_ns for p in sorted((out/'per_image').glob('*.csv'))] == t[1]
    img = sorted((tmp_path/'data').glob('*/*.tif'))[0]; st = img.stat()   # replaced by other bytes with an older mtime
    write_tem_tiff(img, 255 - read_tem(img)); os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    run_objects(cfg, tmp_path/'run')
    now = {p.stem: p.stat().st_mtime_ns for p in (out/'per_image').glob('*.csv')}
    old = dict(zip(sorted(p.stem for p in (out/'per_image').glob('*.csv')), t[1]))
    assert [s for s in now if now[s] != old[s]] == [img.stem]               # that image redone, the other kept

def test_run_objects_sam_tiny(tmp_path):
    from accords_tem.sam import tiny_sam
    _toy(tmp_path/'data', tmp_path/'run')
    cfg = load_config(None, {'data.root': str(tmp_path/'data'), 'objects.source': 'sam', 'objects.n_estimators': 10,
                             'objects.max_overlays': 0,
                             'objects.sam': dict(points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.0, tile=0)})
    s = run_objects(cfg, tmp_path/'run', sam_model=tiny_sam(img_size=128))
    assert s['source'] == 'sam' and s['n_images'] == 2 and s['n_failed'] == 0
    ob = pd.read_csv(tmp_path/'run'/'objects'/'objects.csv')
    assert len(ob) == s['n_objects']

def test_sam_source_without_checkpoint_says_what_to_download(tmp_path):
    from accords_tem.core import CheckpointMissingError
    _toy(tmp_path/'data', tmp_path/'run')
    cfg = load_config(None, {'data.root': str(tmp_path/'data'), 'objects.source': 'sam',
                             'objects.sam.checkpoint': str(tmp_path/'ckpt'/'sam_vit_b_01ec64.pth')})
    with pytest.raises(CheckpointMissingError, match='sam_vit_b_01ec64.pth'): run_objects(cfg, tmp_path/'run')

def test_config_rejects_unknown_keys():
    with pytest.raises(Exception, match='nope'): ObjectsConfig(nope=1)
    with pytest.raises(Exception): ObjectsConfig(classifier='svm')

def test_unet_mask_layout_is_found(tmp_path):
    "U-Net predictions (unet.predict_images layout: masks/<stem>_<CLASS>.png) are preferred to the ilastik masks."
    _toy(tmp_path/'data', tmp_path/'run')
    for f in (tmp_path/'data'/'ground_truth').glob('*_classes.png'):
        stem = f.name[:-len('_classes.png')]
        from accords_tem.objects import _read_png
        cm = _read_png(f)
        for c, v in [('GFM', 1), ('carbonhole', 2)]:
            (tmp_path/'run'/'unet'/'predictions'/'masks').mkdir(parents=True, exist_ok=True)
            _write_png(((cm == v) * 255).astype(np.uint8), tmp_path/'run'/'unet'/'predictions'/'masks'/f'{stem}_{c}.png')
    cfg = load_config(None, {'data.root': str(tmp_path/'data'), 'objects.n_estimators': 10, 'objects.max_overlays': 0,
                             'objects.coco': False})
    s = run_objects(cfg, tmp_path/'run')
    assert s['source'] == 'unet' and s['evaluation']['f1'] == pytest.approx(1.0)

def test_match_instances_is_one_to_one_at_half():
    "An object that is exactly the union of two equal true objects (IoU 0.5 with each) matches neither, not both."
    gt = np.zeros((10, 20), np.int32); gt[:, :10] = 1; gt[:, 10:] = 2
    r = match_instances((gt > 0).astype(np.int32), gt, 0.5)
    assert (r['tp'], r['fp'], r['fn']) == (0, 1, 2)
    assert match_instances(gt, gt, 0.5)['tp'] == 2

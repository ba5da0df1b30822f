"""Bounded memory on large images (issue 18 item 8): the banded / lazy paths give the whole-image answers.
The peak-RSS figures themselves come from bench/bench_memory.py (one big TIFF through every stage)."""
import json, subprocess, sys
from pathlib import Path

import numpy as np
import pytest

from accords_tem.core import load_config, config_to_yaml
from accords_tem.io import IOConfig, inventory_row, write_tem_tiff

ROOT = Path(__file__).resolve().parents[1]


def test_config_yaml_without_stage_imports():
    "Writing a run's config.yaml (every stage's first command) imports no torch: 0.9 GB of the inventory's peak was that."
    code = ("import sys; from accords_tem.core import load_config, config_to_yaml; "
            "t = config_to_yaml(load_config('default', {'data.root': '/tmp', 'io.thumbnails': 3})); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.stdout.write(t)")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    import accords_tem.unet, accords_tem.classifier, accords_tem.objects   # noqa: F401  (now the models themselves answer)
    assert r.stdout == config_to_yaml(load_config('default', {'data.root': '/tmp', 'io.thumbnails': 3}))


def test_config_yaml_with_changed_sections():
    "A section that differs from its defaults still goes through its model (coercions, validators)."
    cfg = load_config('default', {'postprocessing.size': 64, 'unet.epochs': 3})
    d = cfg.to_dict()
    assert d['postprocessing']['size'] == [64, 64] and d['unet']['epochs'] == 3


@pytest.mark.parametrize('fmt', ['tif', 'png'])
def test_inventory_row_bands(tmp_path, fmt):
    "Statistics in bands of rows (any image larger than one band) equal the whole-image statistics."
    img = np.random.default_rng(0).integers(0, 4000, (90, 70)).astype(np.uint16)
    p = tmp_path/'GO_01'/f'AC_UT_GO_01_01_UO_2000X_0001.{fmt}'
    if fmt == 'tif': write_tem_tiff(p, img)
    else:
        import cv2; p.parent.mkdir(parents=True); cv2.imwrite(str(p), img)
    whole = inventory_row(p, tmp_path, io_cfg=IOConfig(data_bar='none'))
    banded = inventory_row(p, tmp_path, io_cfg=IOConfig(data_bar='none', max_pixels_in_memory=700))   # bands of 2 rows
    for k in ('mean', 'std'): assert banded.pop(k) == pytest.approx(whole.pop(k), abs=1e-3)
    assert banded == whole


def _merge_wide_necks_whole(lab, dist, neck_ratio=0.7):
    "The whole-image version of instances.merge_wide_necks (before bands), as the reference."
    from accords_tem.instances import relabel_sequential
    n = int(lab.max())
    if n < 2: return relabel_sequential(lab)
    a = np.concatenate([lab[1:].ravel(), lab[:, 1:].ravel()]); b = np.concatenate([lab[:-1].ravel(), lab[:, :-1].ravel()])
    v = np.minimum(np.concatenate([dist[1:].ravel(), dist[:, 1:].ravel()]), np.concatenate([dist[:-1].ravel(), dist[:, :-1].ravel()]))
    k = (a != b) & (a > 0) & (b > 0)
    if not k.any(): return relabel_sequential(lab)
    lo, hi = np.minimum(a[k], b[k]).astype(np.int64), np.maximum(a[k], b[k]).astype(np.int64)
    key = lo * (n + 1) + hi
    order = np.argsort(key); key, v = key[order], v[k][order]
    uk, start = np.unique(key, return_index=True)
    saddle = np.maximum.reduceat(v, start)
    r = np.zeros(n + 1, np.float32); np.maximum.at(r, lab.ravel(), dist.ravel().astype(np.float32))
    parent = np.arange(n + 1)
    def root(i):
        while parent[i] != i: parent[i] = parent[parent[i]]; i = parent[i]
        return i
    for kk, s in zip(uk, saddle):
        i, j = int(kk // (n + 1)), int(kk % (n + 1))
        if s >= neck_ratio * min(r[i], r[j]): parent[root(i)] = root(j)
    roots = np.array([root(i) for i in range(n + 1)]); roots[0] = 0
    return relabel_sequential(roots[lab])


@pytest.mark.parametrize('band', [1, 7, 40, 1 << 20])
def test_merge_wide_necks_bands(band):
    "Neighbour pairs collected in bands of rows (down to one row) join the same pieces as the whole-image arrays."
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed
    from accords_tem.instances import merge_wide_necks
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:60, :50]
    mask = np.zeros((60, 50), bool)
    for cy, cx, r in rng.uniform([5, 5, 4], [55, 45, 11], (9, 3)): mask |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    dist = ndi.distance_transform_edt(mask)
    pieces = watershed(-dist, ndi.label((ndi.maximum_filter(dist, 5) == dist) & mask)[0], mask=mask)
    assert pieces.max() > 3
    for d in (dist, dist.astype(np.float32)):
        np.testing.assert_array_equal(merge_wide_necks(pieces, d, 0.7, band=band), _merge_wide_necks_whole(pieces, d, 0.7))


def _fill_object_holes_whole(lab, max_px):
    "The whole-image version of instances.fill_object_holes (before bands), as the reference."
    from scipy import ndimage as ndi
    if max_px <= 0 or not lab.any(): return lab
    bg, n = ndi.label(lab == 0)
    if n == 0: return lab
    small = np.bincount(bg.ravel(), minlength=n + 1) < max_px; small[0] = False
    small[np.unique(np.concatenate([bg[0], bg[-1], bg[:, 0], bg[:, -1]]))] = False
    if not small.any(): return lab
    a = np.concatenate([bg[1:].ravel(), bg[:-1].ravel(), bg[:, 1:].ravel(), bg[:, :-1].ravel()])
    b = np.concatenate([lab[:-1].ravel(), lab[1:].ravel(), lab[:, :-1].ravel(), lab[:, 1:].ravel()])
    k = small[a] & (b > 0)
    owner = np.zeros(n + 1, np.int64); lo = np.full(n + 1, np.iinfo(np.int64).max); hi = np.zeros(n + 1, np.int64)
    np.minimum.at(lo, a[k], b[k]); np.maximum.at(hi, a[k], b[k])
    one = small & (lo == hi); owner[one] = hi[one]
    return np.where(owner[bg] > 0, owner[bg], lab).astype(lab.dtype)


@pytest.mark.parametrize('band', [1, 9, 1 << 20])
def test_fill_object_holes_bands(band):
    "Holes found in bands of rows: the same objects filled, the same pockets (between two objects, at the edge) left open."
    from accords_tem.instances import fill_object_holes
    rng = np.random.default_rng(5)
    lab = np.zeros((40, 33), np.int32)
    lab[2:15, 2:15] = 1; lab[2:15, 15:30] = 2; lab[20:38, 5:25] = 3; lab[0:6, 28:33] = 4
    holes = rng.random(lab.shape) < 0.08; lab[holes] = 0             # pinholes inside objects, and between them
    lab[8, 14:16] = 0; lab[25:28, 10:13] = 0                          # a pocket shared by 1 and 2; a 9-px hole in 3
    filled = fill_object_holes(lab, 16, band=band)
    np.testing.assert_array_equal(filled, _fill_object_holes_whole(lab, 16))
    assert filled.dtype == lab.dtype and (filled[25:28, 10:13] == 3).all() and (filled[8, 14:16] == 0).all()


def test_read_png_past_pil_pixel_limit(tmp_path, monkeypatch):
    "A PNG larger than PIL's decompression-bomb limit (179 Mpx: stage 01's copy of a 20000x20000 micrograph) is read, and the limit is restored."
    import cv2
    from PIL import Image
    from accords_tem.io import read_tem
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 100)   # a 20 x 30 PNG stands for a 400-Mpx one
    img = np.arange(600, dtype=np.uint8).reshape(20, 30)
    cv2.imwrite(str(tmp_path/'big.png'), img)
    np.testing.assert_array_equal(read_tem(tmp_path/'big.png'), img)
    assert Image.MAX_IMAGE_PIXELS == 100


def _traced_peak(fn):
    "Peak of the memory traced (NumPy's arrays included) while `fn()` runs, in bytes."
    import tracemalloc
    tracemalloc.start()
    try: fn(); return tracemalloc.get_traced_memory()[1]
    finally: tracemalloc.stop()


def test_banded_readers_keep_one_band(tmp_path):
    "Thumbnails taken band by band are copies: a view would keep every band, i.e. the whole image, alive (20000 px: +0.8 to 4.8 GB)."
    import h5py  # noqa: F401
    from accords_tem.io import LazyTiff, image_stats, write_ilastik_h5
    from accords_tem.normalization import normalize_banded
    from accords_tem.masks import masks_banded
    img = np.random.default_rng(0).integers(0, 60000, (2000, 2000)).astype(np.uint16)     # 8 MB
    write_tem_tiff(tmp_path/'a.tif', img)
    lazy = LazyTiff(tmp_path/'a.tif')
    assert _traced_peak(lambda: image_stats(lazy, band=20, thumb_step=8)) < 3e6            # bands of 20 rows: 80 kB (+ float64 copies)
    assert _traced_peak(lambda: normalize_banded(lazy, band=40_000)) < 16e6                 # 13 MB (8-bit results 8 MB); views: 19 MB
    p = np.random.default_rng(1).dirichlet([1, 1, 1], size=(1000, 1000)).astype(np.float32)  # 12 MB
    write_ilastik_h5(tmp_path/'a_Probabilities.h5', p, 'yxc', compression=None)
    tg, th = [('GFM', 0), ('carbonhole', 1), ('undefined', 2)], {'GFM': 0.5, 'carbonhole': 0.5, 'undefined': 0.5}
    assert _traced_peak(lambda: masks_banded(tmp_path/'a_Probabilities.h5', tg, th, [n for n, _ in tg], band=30_000)) < 12e6   # 9 MB (masks 3, thinned 3 + its concatenation 3); views: 18 MB


def test_masks_background_png(tmp_path):
    "Stage 02 reads stage 01's 8-bit PNG with OpenCV: the same pixels as `read_tem`; other PNGs go through `read_tem`."
    import cv2
    from accords_tem.io import read_tem
    from accords_tem.masks import _read_png8
    g = np.random.default_rng(2).integers(0, 256, (30, 20)).astype(np.uint8)
    cv2.imwrite(str(tmp_path/'g.png'), g); cv2.imwrite(str(tmp_path/'c.png'), np.dstack([g, g, g])); cv2.imwrite(str(tmp_path/'w.png'), g.astype(np.uint16) * 200)
    np.testing.assert_array_equal(_read_png8(tmp_path/'g.png'), read_tem(tmp_path/'g.png'))
    assert _read_png8(tmp_path/'c.png') is None and _read_png8(tmp_path/'w.png') is None


def test_masks_check_the_picture_first(tmp_path):
    "Stage 02 reads the picture (stage 01's PNG, else the raw image) before it makes the masks; an export of another size fails first."
    import cv2, tifffile
    from accords_tem.core import FailureLog
    from accords_tem.io import write_ilastik_h5
    from accords_tem.masks import _background, run_masks
    root, run = tmp_path/'data', tmp_path/'run'; (root/'G').mkdir(parents=True)
    tifffile.imwrite(root/'G'/'a.tif', np.zeros((30, 40), np.uint16))
    (run/'normalized'/'G').mkdir(parents=True); cv2.imwrite(str(run/'normalized'/'G'/'a.png'), np.zeros((30, 40), np.uint8))
    assert _background(run, root/'G'/'a.tif').shape == (30, 40)
    assert _background(tmp_path/'other', root/'G'/'a.tif').shape == (30, 40)                # no stage 01: the raw image
    p = np.random.default_rng(0).dirichlet([1, 1, 1], size=(20, 40)).astype(np.float32)     # another image's export
    write_ilastik_h5(root/'a_Probabilities.h5', p, 'yxc')
    s = run_masks(load_config(None, {'data.root': str(root), 'data.ground_truth': None}), run, progress=False)
    assert s['failed'] == 1 and 'was the export made from another image' in FailureLog(run, 'masks').rows()[0]['reason']
    assert not list((run/'masks').rglob('a.npy'))                                           # nothing written


def test_fill_unlabelled_bands():
    "Gaps filled band by band (a margin of rows that grows with the gap) give the whole-image nearest-label fill, ties included."
    from accords_tem.postprocessing import fill_unlabelled
    rng = np.random.default_rng(0)
    for _ in range(150):
        H, W = rng.integers(5, 60, 2)
        lab = ((rng.random((H, W)) < rng.uniform(0.002, 0.5)) * rng.integers(1, 5, (H, W))).astype(np.uint8)
        if not lab.any(): continue
        whole = fill_unlabelled(lab)
        for band in (1, W * 3, W * 7 + 1): np.testing.assert_array_equal(fill_unlabelled(lab, band=band), whole)


def _disk_model():
    "A SegModel whose 'network' answers from the pixel's grey level: dark disks = GFM (with a centre map), mid-grey squares = carbonhole."
    import torch
    from torch import nn
    from accords_tem.seg_data import UnetConfig
    from accords_tem.seg_train import SegModel
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Conv2d(2, 3, 9, padding=4))
    with torch.no_grad():
        for p in net.parameters(): p.zero_()
        net[0].weight[:, 0, 0, 0] = torch.tensor([-1., 1.])                 # h1 = darkness, h2 = brightness
        w, b = net[2].weight, net[2].bias
        w[0, 0, 4, 4], b[0] = 20, -10                                        # GFM: dark
        w[1, 0, 4, 4], w[1, 1, 4, 4], b[1] = -20, -20, 10                    # carbonhole: neither dark nor bright
        w[2, 0] = 12 / 81; b[2] = -6                                         # centre map: darkness around the pixel
    u = UnetConfig(target_classes=['GFM', 'carbonhole'], instance_classes=['GFM'], encoder_weights=None, tile_size=64, tile_overlap=16,
                   pred_batch=3, tta='flips', tta_scales=[1.0], min_object_px=16)
    return SegModel(net, u, {'GFM': 0.5, 'carbonhole': 0.5})


def _same_up_to_relabelling(a, b):
    if not np.array_equal(a > 0, b > 0): return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(set(pairs[0].tolist())) == len(set(pairs[1].tolist())) == pairs.shape[1]


def test_predict_big_image_in_bands_and_windows(tmp_path, monkeypatch):
    """An image above the pixel budget (here 51200 px) is predicted in bands and decoded in windows: the same probability and
    uncertainty files byte for byte, the same mask and overlay pictures, the same objects (numbered otherwise), objects on the seams."""
    import tifffile
    from scipy import ndimage as ndi
    from accords_tem import unet
    from accords_tem.unet import predict_images, read_instances_with_classes
    sm = _disk_model()
    monkeypatch.setattr(unet, 'load_predictor', lambda *a, **k: sm)   # where predict_images finds it
    monkeypatch.setattr(unet, 'prediction_key', lambda *a, **k: 'no model files')   # the model is in memory only
    rng = np.random.default_rng(4); H, W = 247, 262
    img = np.full((H, W), 50000.0); yy, xx = np.mgrid[:H, :W]
    for cy in range(8, H - 4, 17):
        for cx in range(8, W - 4, 17):
            y, x = cy + rng.integers(-3, 4), cx + rng.integers(-3, 4)
            if rng.random() < 0.75: img[(yy - y) ** 2 + (xx - x) ** 2 < rng.uniform(16, 36)] = 2000     # disks, a few px apart
            else: img[y - 3:y + 4, x - 3:x + 4] = 26000                                                    # squares
    img = (img + rng.normal(0, 300, img.shape)).clip(0, 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path/'a.tif', img)
    cut = lambda m: ndi.label(m)[0]
    kw = dict(files=[tmp_path/'a.tif'], cut=cut, crop=(5, 7), device='cpu')
    whole = predict_images('m', tmp_path, tmp_path/'whole', **kw)
    calls, real = [], unet._predict_big
    monkeypatch.setattr(unet, '_predict_big', lambda *a, **k: calls.append(1) or real(*a, **k))
    big = predict_images('m', tmp_path, tmp_path/'big', max_pixels=51200, **kw)   # the run's io.max_pixels_in_memory: windows of 80 px
    assert calls == [1]
    for f in ('probabilities/a.npy', 'uncertainty/a.npy'):
        assert (tmp_path/'whole'/f).read_bytes() == (tmp_path/'big'/f).read_bytes(), f
    from PIL import Image
    for f in ('masks/a_GFM.png', 'masks/a_carbonhole.png', 'overlays/a.png'):   # written band by band: the same pixels and mode
        with Image.open(tmp_path/'whole'/f) as a, Image.open(tmp_path/'big'/f) as b:
            assert a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b)), f
    lw, cw, _ = read_instances_with_classes(tmp_path/'whole'/'instances'/'a.tif')
    lb, cb, _ = read_instances_with_classes(tmp_path/'big'/'instances'/'a.tif')
    assert lw.max() > 100 and _same_up_to_relabelling(lb, lw)
    pairs = np.unique(np.stack([lw[lw > 0], lb[lb > 0]]), axis=1)
    assert all(cw[a - 1] == cb[b - 1] for a, b in pairs.T)                  # each object keeps its class
    seams = [y for y in range(48, H, 48)]
    assert sum(len(np.unique(lw[y - 1:y + 1][lw[y - 1:y + 1] > 0])) for y in seams) > 10     # objects across the windows' seams
    np.testing.assert_allclose(big.pop('mean_uncertainty'), whole.pop('mean_uncertainty'), rtol=1e-5, atol=1e-9)
    assert big.equals(whole)
    # a model with an uncertainty level: both paths drop the same objects (the limit set at the median object's uncertainty)
    from accords_tem.instances import object_uncertainty
    import torch
    with torch.no_grad(): sm.model[2].weight[0, 0, 4, 4], sm.model[2].weight[0, 0, 4, 7] = 12, 8   # GFM leans right: flips disagree at edges
    predict_images('m', tmp_path, tmp_path/'lean', **kw); lw, cw, _ = read_instances_with_classes(tmp_path/'lean'/'instances'/'a.tif')
    ou = object_uncertainty(lw, cw, np.load(tmp_path/'lean'/'uncertainty'/'a.npy').astype(np.float32), sm.classes)
    ou = ou[np.array(cw) == 'GFM']; assert np.ptp(ou) > 0
    sm.info['object_uncertainty_q90'] = float(np.median(ou)) / sm.u.uncertain_object_ratio
    predict_images('m', tmp_path, tmp_path/'whole_u', **kw); predict_images('m', tmp_path, tmp_path/'big_u', max_pixels=51200, **kw)
    lwu, cwu, _ = read_instances_with_classes(tmp_path/'whole_u'/'instances'/'a.tif')
    lbu, cbu, _ = read_instances_with_classes(tmp_path/'big_u'/'instances'/'a.tif')
    n_gfm = lambda c: c.count('GFM')
    assert 0 < n_gfm(cwu) < n_gfm(cw) and n_gfm(cwu) == n_gfm(cbu) and _same_up_to_relabelling(lbu, lwu)
    assert cwu.count('carbonhole') == cw.count('carbonhole')   # other classes' objects are not the level's


def test_object_features_banded_from_tiff(tmp_path):
    "Objects measured band by band from a strip-wise instance TIFF (io.LazyTiff): object_features' table of the whole labels."
    import tifffile
    from skimage import draw
    from accords_tem.io import LazyTiff
    from accords_tem.objects import object_features, object_features_banded
    rng = np.random.default_rng(1); lab = np.zeros((157, 133), np.uint16)
    for k in range(1, 120):
        rr, cc = draw.ellipse(rng.integers(0, 157), rng.integers(0, 133), rng.integers(1, 12), rng.integers(1, 12), shape=lab.shape,
                              rotation=rng.uniform(0, 3))
        lab[rr, cc] = k
    lab[:, 3:6] = 120; lab[150:, :] = 121                                  # taller than any band; along the bottom edge
    tifffile.imwrite(tmp_path/'a.tif', lab, compression='zlib', rowsperstrip=9)
    whole = object_features(lab.astype(np.int32), spacing=0.7)
    for budget in (600, 4000, 30000):                                          # bands of 1, 7 and 56 rows
        b = object_features_banded(LazyTiff(tmp_path/'a.tif'), spacing=0.7, max_pixels=budget)
        cen = ['centroid_row', 'centroid_col']
        np.testing.assert_allclose(b[cen].to_numpy(), whole[cen].to_numpy(), rtol=0, atol=1e-9)
        import pandas as pd; pd.testing.assert_frame_equal(b.drop(columns=cen), whole.drop(columns=cen))


def test_dataset_stage_big_image_path(tmp_path):
    """Stage 03 above io.max_pixels_in_memory (final labels opened in place, one-hot mask, previews and image PNG written by bands,
    no one-hot array): the same QC rows and records, mask bytes, ilastik labels and pictures as the whole-image path."""
    import cv2, pandas as pd
    from accords_tem.io import read_ilastik_h5
    from accords_tem.postprocessing import make_demo_inputs, run_postprocessing
    make_demo_inputs(tmp_path/'data', size=96, bad=False)
    ds = {}
    for name, budget in [('whole', 64_000_000), ('big', 700)]:
        cfg = load_config(None, {'data.root': str(tmp_path/'data'), 'postprocessing.opening_radius': 2, 'io.max_pixels_in_memory': budget})
        s = run_postprocessing(cfg, tmp_path/name, progress=False)
        assert (s['written'], s['failed']) == (4, 0)
        ds[name] = tmp_path/name/'dataset'
    w, b = ds['whole'], ds['big']
    pd.testing.assert_frame_equal(pd.read_csv(b/'qc.csv').drop(columns=['label_file', 'image_file']),
                                  pd.read_csv(w/'qc.csv').drop(columns=['label_file', 'image_file']))
    for f in sorted(w.rglob('*')):
        g, rel = b/f.relative_to(w), f.relative_to(w)
        if f.suffix == '.npy': assert f.read_bytes() == g.read_bytes(), rel
        elif f.suffix == '.png' and f.parent.name in ('images', 'masks'):
            a1, a2 = cv2.imread(str(f), cv2.IMREAD_UNCHANGED), cv2.imread(str(g), cv2.IMREAD_UNCHANGED)
            assert a1 is not None and a2 is not None and np.array_equal(a1, a2), rel
        elif f.suffix == '.h5': np.testing.assert_array_equal(read_ilastik_h5(g), read_ilastik_h5(f))
        elif f.suffix == '.json' and f.parent.name == 'qc':
            j1, j2 = json.loads(f.read_text()), json.loads(g.read_text())
            for j in (j1, j2): j['row'].pop('label_file'); j['row'].pop('image_file')
            assert j1 == j2, rel
    assert (w/'examples.png').read_bytes() == (b/'examples.png').read_bytes()   # drawn from the same thinned pictures


def test_predict_objects_big_image(tmp_path, monkeypatch):
    """`accords-tem predict` above io.max_pixels_in_memory: the objects measured from bands of the instance TIFF, and the objects
    overlay drawn from every k-th pixel read by bands, are what the whole-image measurement and drawing give on those instances."""
    import tifffile, pandas as pd
    from PIL import Image
    from accords_tem import unet
    from accords_tem.io import read_tem
    from accords_tem.objects import predict_objects, object_features, overlay_image, _label_colors
    from accords_tem.unet import read_instances_with_classes
    sm = _disk_model()
    monkeypatch.setattr(unet, 'load_predictor', lambda *a, **k: sm)   # where predict_images finds it
    monkeypatch.setattr(unet, 'prediction_key', lambda *a, **k: 'no model files')
    rng = np.random.default_rng(7); H, W = 181, 203
    img = np.full((H, W), 50000.0); yy, xx = np.mgrid[:H, :W]
    for _ in range(70): img[(yy - rng.integers(0, H)) ** 2 + (xx - rng.integers(0, W)) ** 2 < rng.uniform(9, 60)] = 2000
    img[20:170, 100:104] = 2000                                                  # one object taller than the bands
    tifffile.imwrite(tmp_path/'a.tif', (img + rng.normal(0, 300, img.shape)).clip(0, 65535).astype(np.uint16))
    cfg = load_config(None, {'io.max_pixels_in_memory': 20000, 'io.data_bar': 'none'})
    ob = predict_objects('m', tmp_path/'a.tif', tmp_path/'out', nm_per_px=1.5, cfg=cfg, device='cpu', tta='none')
    lab, names, _ = read_instances_with_classes(tmp_path/'out'/'instances'/'a.tif')
    whole = object_features(lab, None, spacing=1.5)
    assert len(ob) == len(whole) > 30 and (whole.bbox_r1 - whole.bbox_r0).max() > 20000 // 4 // W   # taller than a band
    key = ['centroid_row', 'centroid_col']
    pd.testing.assert_frame_equal(ob[list(whole.columns)].drop(columns=key), whole.drop(columns=key))
    np.testing.assert_allclose(ob[key].to_numpy(), whole[key].to_numpy(), atol=1e-9)
    rgb = overlay_image(read_tem(tmp_path/'a.tif'), lab, _label_colors(names, cfg))
    with Image.open(tmp_path/'out'/'objects_overlays'/'a.png') as x: assert np.array_equal(np.asarray(x), rgb)

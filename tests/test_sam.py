"""Segment Anything proposals: missing checkpoint, tiny random SAM end to end, tiles, embedding cache, clean-up rules."""
import numpy as np
import pytest
from skimage import draw

from accords_tem.core import CheckpointMissingError
from accords_tem.sam import (SAM_MODELS, SamParams, Proposal, load_sam, tiny_sam, make_generator, sam_proposals,
                             clean_proposals, paint_labels, tile_windows, stitch_tiles, clean_mask, merge_duplicates,
                             resolve_nested, instances_from_mask, instances_from_classes)

def disk(shape, c, r):
    m = np.zeros(shape, bool); rr, cc = draw.disk(c, r, shape=shape); m[rr, cc] = True; return m

@pytest.fixture(scope='module')
def image():
    img = np.full((160, 160), 60, np.uint8)
    for c, r in [((40, 40), 20), ((110, 100), 30), ((30, 125), 12)]: img[disk(img.shape, c, r)] = 180
    return img

@pytest.fixture(scope='module')
def model(): return tiny_sam(img_size=128)

@pytest.mark.parametrize('model_type', ['vit_h', 'vit_l', 'vit_b', 'vit_t', 'sam2.1_hiera_t'])
def test_missing_checkpoint_names_file_and_url(tmp_path, model_type):
    with pytest.raises(CheckpointMissingError) as e: load_sam(model_type, tmp_path/'nope.pth')
    _, _, fname, url = SAM_MODELS[model_type]
    assert fname in str(e.value) and url in str(e.value) and 'nope.pth' in str(e.value)

def test_checkpoint_round_trip(tmp_path, monkeypatch):
    "The real loader (torch.load + load_state_dict) on a saved state dict; the registry builds the tiny architecture."
    import torch, segment_anything
    monkeypatch.setitem(segment_anything.sam_model_registry, 'vit_b', lambda checkpoint=None: tiny_sam(img_size=128, seed=5))
    src = tiny_sam(img_size=128, seed=3)
    torch.save(src.state_dict(), tmp_path/'sam_vit_b_01ec64.pth')
    m = load_sam('vit_b', tmp_path/'sam_vit_b_01ec64.pth')
    for (k, v), w in zip(src.state_dict().items(), m.state_dict().values()): assert torch.equal(v, w), k
    assert m._accords_key.startswith('vit_b:sam_vit_b_01ec64.pth:')
    (tmp_path/'bad.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointMissingError, match='cannot load'): load_sam('vit_b', tmp_path/'bad.pth')

def test_missing_package_named(tmp_path):
    pytest.importorskip('segment_anything')
    try:
        import mobile_sam  # noqa: F401
        pytest.skip('mobile_sam is installed')
    except ImportError: pass
    (tmp_path/'mobile_sam.pt').write_bytes(b'x')
    with pytest.raises(ModuleNotFoundError, match='MobileSAM'): load_sam('vit_t', tmp_path/'mobile_sam.pt')

@pytest.mark.parametrize('tile,halo', [(0, 0), (96, 16)])
def test_tiny_sam_end_to_end(image, model, tile, halo):
    gen = make_generator(model, SamParams(points_per_side=4, pred_iou_thresh=0, stability_score_thresh=0))
    props = sam_proposals(image, gen, tile=tile, halo=halo, preprocess='clahe')
    for p in props:
        assert isinstance(p, Proposal) and p.mask.dtype == bool and p.mask.ndim == 2
        r0, c0, r1, c1 = p.bbox
        assert 0 <= r0 < r1 <= image.shape[0] and 0 <= c0 < c1 <= image.shape[1]
    clean = clean_proposals(props, image.shape, min_area=10)
    lab, cls = paint_labels(clean, image.shape)
    assert lab.shape == image.shape and lab.dtype == np.int32
    assert len(cls) == lab.max() + 1 and set(np.unique(lab)) <= set(range(lab.max() + 1))

def test_embedding_cache_reused(tmp_path, image, model):
    p = SamParams(points_per_side=3, pred_iou_thresh=0, stability_score_thresh=0)
    g1 = make_generator(model, p, cache_dir=tmp_path)
    a = sam_proposals(image, g1, tile=0)
    g2 = make_generator(model, p, cache_dir=tmp_path)
    b = sam_proposals(image, g2, tile=0)
    assert (g1.predictor.misses, g2.predictor.hits, g2.predictor.misses) == (1, 1, 0)
    assert [q.bbox for q in a] == [q.bbox for q in b]
    other = make_generator(tiny_sam(img_size=128, seed=1), p, cache_dir=tmp_path)   # another model: another key
    sam_proposals(image, other, tile=0)
    assert other.predictor.misses == 1

def test_tiles_cover_and_stitch():
    shape = (300, 250)
    w = tile_windows(shape, 100, 20)
    cover = np.zeros(shape, int)
    for r0, c0, r1, c1 in w: cover[r0:r1, c0:c1] += 1
    assert cover.min() >= 1
    full = disk(shape, (100, 100), 45)    # crosses the corner of four windows
    pieces = []
    for k, (r0, c0, r1, c1) in enumerate(w):
        part = np.zeros(shape, bool); part[r0:r1, c0:c1] = full[r0:r1, c0:c1]
        p = Proposal.from_full(part, window=k)
        if p is not None: pieces.append(p)
    assert len(pieces) == 4
    st = stitch_tiles(pieces, w)
    assert len(st) == 1 and (st[0].full(shape) == full).all()

def test_clean_mask_specks_and_holes():
    m = np.zeros((50, 50), bool); m[10:40, 10:40] = True; m[20:22, 20:22] = False; m[45, 45] = True
    c = clean_mask(m, speck_px=5, hole_px=10)
    assert c.sum() == 900 and not c[45, 45]
    m2 = m.copy(); m2[15:35, 15:35] = False   # a big hole stays
    assert clean_mask(m2, speck_px=5, hole_px=10).sum() == 900 - 400

def test_merge_rules():
    shape = (200, 200)
    a, b = Proposal.from_full(disk(shape, (30, 30), 15)), Proposal.from_full(disk(shape, (30, 31), 15))
    far = Proposal.from_full(disk(shape, (170, 170), 10))
    merged = merge_duplicates([a, b, far], 0.8)
    ab = (disk(shape, (30, 30), 15) | disk(shape, (30, 31), 15)).sum()
    assert sorted(p.area for p in merged) == sorted([far.area, ab])
    outer, inner = Proposal.from_full(disk(shape, (100, 100), 30)), Proposal.from_full(disk(shape, (100, 105), 8))
    assert [p.area for p in resolve_nested([outer, inner], 0.9, 'outer')] == [outer.area]
    assert [p.area for p in resolve_nested([outer, inner], 0.9, 'inner')] == [inner.area]
    speck = Proposal.from_full(disk(shape, (5, 190), 1))
    film = Proposal.from_full(~(disk(shape, (30, 30), 17) | disk(shape, (170, 170), 12) | disk(shape, (100, 100), 32)))
    assert film.area > 0.5 * 200 * 200
    out = clean_proposals([a, b, far, outer, inner, speck, film], shape, min_area=10, speck_px=5, max_area_frac=0.5)
    assert sorted(p.area for p in out) == sorted([far.area, outer.area, ab])
    lab, cls = paint_labels(out, shape)
    assert lab.max() == 3

@pytest.mark.parametrize('noise', [0.0, 0.01])
def test_instances_split_touching(noise):
    m = disk((80, 120), (40, 35), 24) | disk((80, 120), (40, 80), 24)
    m ^= np.random.default_rng(0).random(m.shape) < noise
    assert instances_from_mask(m).max() == 2
    assert instances_from_mask(m, split=False).max() == 1
    bar = np.zeros((60, 200), bool); bar[20:40, 10:190] = True
    assert instances_from_mask(bar).max() == 1

def test_instances_from_classes():
    cm = np.zeros((80, 120), np.uint8); cm[disk(cm.shape, (40, 40), 20)] = 1; cm[5:20, 90:110] = 2; cm[60:75, 90:110] = 3
    lab, cls = instances_from_classes(cm, [1, 2])
    assert cls.tolist() == [0, 1, 2] and lab.max() == 2

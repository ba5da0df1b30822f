"""import-masks: mask formats (binary, instance, RGB, float, COCO RLE), data-bar placement, the config, exit codes."""
import json
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage import draw

from accords_tem.core import ConfigError, load_config
from accords_tem.import_masks import (MaskError, coco_instances, decode_segmentation, import_config, import_masks,
                                      import_masks_main, instance_classes, mask_instances, prepare_pair, read_coco,
                                      read_mask)
from accords_tem.seg_data import load_mask, load_pairs, make_target, read_gray

EMPS = Path(__file__).resolve().parents[2]/'shared'/'data'/'emps-train'


def _two_disks(h=40, w=60, value=255, dtype=np.uint8):
    m = np.zeros((h, w), dtype)
    m[draw.disk((20, 15), 8)] = value; m[draw.disk((20, 40), 8)] = value
    return m


@pytest.mark.parametrize('value', [1, 255])
def test_binary_values(tmp_path, value):
    iio.imwrite(tmp_path/'m.png', _two_disks(value=value))
    m, flags = read_mask(tmp_path/'m.png')
    lab, kind = mask_instances(m)
    assert (kind, lab.max(), flags) == ('binary', 2, [])


def test_rgb_masks(tmp_path):
    grey = _two_disks()
    iio.imwrite(tmp_path/'grey.png', np.repeat(grey[..., None], 3, -1))          # grey saved as RGB: one channel
    m, flags = read_mask(tmp_path/'grey.png')
    assert m.ndim == 2 and flags == [] and np.array_equal(m, grey)
    col = np.zeros((40, 60, 3), np.uint8); col[draw.disk((20, 15), 8)] = (255, 0, 0); col[draw.disk((20, 40), 8)] = (0, 0, 200)
    iio.imwrite(tmp_path/'col.png', col)                                           # coloured: any channel > 0
    m, flags = read_mask(tmp_path/'col.png')
    assert flags == ['rgb_reduced'] and mask_instances(m)[0].max() == 2


def test_float_and_bad_masks(tmp_path):
    tifffile.imwrite(tmp_path/'f.tif', _two_disks(value=1).astype(np.float32))
    assert mask_instances(read_mask(tmp_path/'f.tif')[0])[0].max() == 2
    tifffile.imwrite(tmp_path/'g.tif', np.full((8, 8), 0.5, np.float32))
    with pytest.raises(MaskError, match='fractional'): read_mask(tmp_path/'g.tif')
    (tmp_path/'x.png').write_bytes(b'not a png')
    with pytest.raises(MaskError, match='not a PNG file'): read_mask(tmp_path/'x.png')
    photo = np.random.default_rng(0).integers(0, 256, (200, 200)).astype(np.uint8)  # an image given as a mask
    with pytest.raises(MaskError, match='looks like an image'): mask_instances(photo)


def test_instance_map_uint32(tmp_path):
    "More than 65535 objects: the instance TIFF is uint32."
    h, w = 1400, 1000
    inst = (np.arange(h)[:, None] // 4 * (w // 5) + np.arange(w)[None] // 5 + 1).astype(np.uint32)   # 4x5 blocks
    assert inst.max() == 70000
    tifffile.imwrite(tmp_path/'m.tif', inst); iio.imwrite(tmp_path/'i.png', np.zeros((h, w), np.uint8))
    res = prepare_pair('i', tmp_path/'i.png', tmp_path/'m.tif', ['particle'], tmp_path)
    assert res['instances'].dtype == np.uint32 and res['row']['n_instances'] == 70000


def test_data_bar_on_top(tmp_path):
    rng = np.random.default_rng(0)
    im = rng.integers(50, 200, (60, 48)).astype(np.uint8); im[:12] = 255; im[3:8, 4:30] = 0    # white bar with text on top
    iio.imwrite(tmp_path/'i.png', im); iio.imwrite(tmp_path/'m.png', _two_disks(48, 48))
    res = prepare_pair('i', tmp_path/'i.png', tmp_path/'m.png', ['particle'], tmp_path)
    assert res['row']['mask_rows'] == '12:60' and 'data_bar_top' in res['row']['flags']
    assert res['onehot'][:, :12].sum() == 0 and res['onehot'][:, 12:].sum(0).min() == 1
    assert res['instances'][:12].max() == 0 and res['instances'].max() == 2


def test_coco_rle_uncompressed():
    m = _two_disks(value=1)
    from pycocotools import mask as mu
    rle = mu.encode(np.asfortranarray(m)); counts = []
    flat = m.ravel(order='F'); v, run = 0, 0
    for x in flat:                                         # uncompressed RLE: run lengths, column-major, starting with 0s
        if x == v: run += 1
        else: counts.append(run); v, run = x, 1
    counts.append(run)
    dec = decode_segmentation(dict(counts=counts, size=[40, 60]), 40, 60)
    assert np.array_equal(dec, m.astype(bool))
    assert np.array_equal(decode_segmentation(rle, 40, 60), m.astype(bool))
    entry = dict(file='a.png', height=40, width=60, anns=[('p', dict(counts=counts, size=[40, 60]), 0)])
    inst, cls, crowd = coco_instances(entry, ['p'])
    assert inst.max() == 1 and not crowd.any()             # one annotation = one object, even in two pieces


def test_coco_pairing_and_classes(tmp_path):
    (tmp_path/'im').mkdir()
    for s in ('a', 'b'): iio.imwrite(tmp_path/'im'/f'{s}.jpg', np.full((30, 40), 128, np.uint8))
    coco = dict(images=[dict(id=1, file_name='x/a.png', height=30, width=40), dict(id=2, file_name='c.png', height=30, width=40)],
                categories=[dict(id=3, name='hole'), dict(id=1, name='flake')],
                annotations=[dict(id=1, image_id=1, category_id=1, segmentation=[[2, 2, 20, 2, 20, 20, 2, 20]]),
                             dict(id=2, image_id=1, category_id=3, segmentation=[[25, 5, 35, 5, 35, 15, 25, 15]])])
    (tmp_path/'ann.json').write_text(json.dumps(coco))
    cats, entries = read_coco(tmp_path/'ann.json')
    assert cats == ['flake', 'hole'] and sorted(entries) == ['a', 'c']     # category-id order
    s = import_masks(tmp_path/'im', tmp_path/'ann.json', tmp_path/'run', ['hole', 'flake'], progress=False, figures=False)
    assert (s['images'], s['objects'], s['failed']) == (1, 2, 2)         # b.jpg unlisted, c.png not found
    cfg = load_config(tmp_path/'run'/'config.yaml')
    assert cfg.class_names() == ['hole', 'flake', 'background'] and cfg.data.image_glob == '**/*.jpg'
    oh = np.load(tmp_path/'run'/'dataset'/'masks'/'a.npy'); ti = tifffile.imread(tmp_path/'run'/'dataset'/'instances'/'a.tif')
    k = instance_classes(ti, oh)
    assert k[ti[10, 10]] == 1 and k[ti[10, 30]] == 0                     # flake, hole
    with pytest.raises(ConfigError, match='not categories'): import_masks(tmp_path/'im', tmp_path/'ann.json', tmp_path/'r2', ['GFM'])


def test_config_from_base_names_classes_everywhere(tmp_path):
    base = Path(__file__).resolve().parents[1]/'configs'/'demo.yaml'
    cfg = import_config(['particle'], tmp_path, base=base)
    (tmp_path/'c.yaml').write_text(__import__('accords_tem.core', fromlist=['config_to_yaml']).config_to_yaml(cfg))
    cfg = load_config(tmp_path/'c.yaml')
    d = cfg.to_dict()
    assert [c['name'] for c in d['classes']] == ['particle', 'background']
    assert d['unet']['target_classes'] == ['particle'] and list(d['unet']['losses']) == ['particle']
    assert d['unet']['instance_classes'] == ['particle']
    assert d['masks']['classes'] == ['particle'] and list(d['masks']['thresholds']) == ['particle']
    assert d['objects']['object_classes'] == ['particle'] and d['report']['size_classes'] == ['particle']
    assert d['report']['background_classes'] == ['background'] and d['postprocessing']['background_class'] == 'background'
    assert d['postprocessing']['opening_class'] is None and d['unet']['synthetic_per_material'] == 0
    assert d['data']['ground_truth'] is None and d['pipeline']['stages'] == ['00', '01', '05', '06', '07']
    text = (tmp_path/'c.yaml').read_text()
    for old in ('GFM', 'carbonhole', 'undefined'): assert old not in text, old


def test_exit_codes(tmp_path, capsys):
    (tmp_path/'im').mkdir(); (tmp_path/'m').mkdir()
    iio.imwrite(tmp_path/'im'/'a.png', np.zeros((40, 60), np.uint8)); iio.imwrite(tmp_path/'m'/'a.png', np.zeros((30, 50), np.uint8))
    assert import_masks_main(['--images', str(tmp_path/'im'), '--masks', str(tmp_path/'m'), '--out', str(tmp_path/'run')]) == 1
    err = capsys.readouterr().err
    assert 'failures.csv' in err and 'no image could be imported' in err
    reason = pd.read_csv(tmp_path/'run'/'failures.csv').reason[0]
    assert '30x50' in reason and '40x60' in reason
    assert not (tmp_path/'run'/'config.yaml').exists()
    assert import_masks_main(['--images', str(tmp_path/'im'), '--masks', str(tmp_path/'m'), '--out', str(tmp_path/'run'),
                              '--classes', 'a', 'b']) == 2      # two classes for binary masks


@pytest.mark.skipif(not EMPS.exists(), reason='emps-train not here')
@pytest.mark.slow
def test_emps_train(tmp_path):
    t0 = time.time()
    s = import_masks(EMPS/'images', EMPS/'segmaps', tmp_path/'run', progress=False, figures=False, mask_kind='instances')
    # MANIFEST.md: 8,927 particles. As the README imports them (--mask-kind instances), the 47 maps that hold one particle
    # (values 0 and 1) stay one object each; read as binary masks (the default, auto), the neck cut takes a 424-px bump off
    # one of them (26e5f24689, a long band), 8928 objects.
    assert (s['images'], s['objects'], s['failed']) == (366, 8927, 0)
    qc = pd.read_csv(tmp_path/'run'/'dataset'/'qc.csv')
    assert qc.mask_format.value_counts().to_dict() == {'instance': 366}
    assert qc.set_index('stem').n_instances['26e5f24689'] == 1
    pairs = load_pairs(tmp_path/'run'/'dataset', 2)
    img = read_gray(pairs[0][1]); oh = load_mask(pairs[0][2], 2, img.shape)
    assert make_target(oh, [0]).min() >= 0                                  # fully labelled
    print(f'emps-train: {s} in {time.time() - t0:.1f} s')


def test_normalize_and_16bit(tmp_path):
    "16-bit images: min-max to 8 bits by default (image_source raw), stage 01's method with normalize=True."
    (tmp_path/'im').mkdir(); (tmp_path/'m').mkdir()
    im = np.random.default_rng(0).integers(1000, 5000, (40, 60)).astype(np.uint16)
    tifffile.imwrite(tmp_path/'im'/'a.tif', im); iio.imwrite(tmp_path/'m'/'a_LABEL.png', _two_disks())
    s = import_masks(tmp_path/'im', tmp_path/'m', tmp_path/'r1', mask_suffix='_LABEL', progress=False, figures=False)
    q = pd.read_csv(tmp_path/'r1'/'dataset'/'qc.csv')
    out = iio.imread(tmp_path/'r1'/'dataset'/'images'/'a.png')
    assert (s['images'], q.image_source[0], out.dtype, out.shape, out.min(), out.max()) == (1, 'raw', np.uint8, (40, 60), 0, 255)
    import_masks(tmp_path/'im', tmp_path/'m', tmp_path/'r2', progress=False, figures=False, normalize=True)
    assert pd.read_csv(tmp_path/'r2'/'dataset'/'qc.csv').image_source[0] == 'normalized'    # a_LABEL found without the suffix too
    assert load_config(tmp_path/'r2'/'config.yaml').section('postprocessing').use_normalized is True


def test_binary_objects_flag(tmp_path):
    "A binary mask of two disks drawn touching: the command cuts them (2 objects); --binary-objects components keeps one."
    (tmp_path/'im').mkdir(); (tmp_path/'m').mkdir()
    m = np.zeros((40, 70), np.uint8)
    for ctr in [(20, 20), (20, 48)]: m[draw.disk(ctr, 15, shape=m.shape)] = 255
    iio.imwrite(tmp_path/'im'/'a.png', np.full((40, 70), 90, np.uint8)); iio.imwrite(tmp_path/'m'/'a.png', m)
    n = {}
    for flag in ([], ['--binary-objects', 'components']):
        out = tmp_path/('run' + ''.join(flag))
        assert import_masks_main(['--images', str(tmp_path/'im'), '--masks', str(tmp_path/'m'), '--out', str(out), '--no-figures'] + flag) == 0
        d = json.loads((out/'dataset'/'dataset.json').read_text())
        n[d['binary_mask_objects']] = d['n_instances']
        assert (tifffile.imread(out/'dataset'/'instances'/'a.tif') > 0).sum() == (m > 0).sum()   # every mask pixel, none added
    assert sorted(n.values()) == [1, 2] and n['connected components'] == 1

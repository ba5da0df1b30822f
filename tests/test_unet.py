"""U-Net stage (05, 05a-c): losses, metrics and threshold search on arrays with known answers, tiled == whole-image
prediction, TTA uncertainty, pretrained-weight loading, training for a few steps, save/load, predict CLI, run_unet."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from accords_tem.core import CheckpointMissingError, ConfigError, load_config
from accords_tem.seg_data import (UnetConfig, LossSpec, split_images, read_split, patch_origins, window_starts, make_target,
                                  target_indices, make_patch_dataset, make_augment, AugmentConfig, pixel_counts, subset_counts)
from accords_tem.seg_train import (class_loss, make_loss, seg_stats, scores, ThresholdSearch, TunedIoU, build_model, make_learner, fit,
                                   save_model, load_model, toy_dataset)
from accords_tem.training import convert_lite0_keys
from accords_tem.training import resolve_precision
from timm.models import adapt_input_conv
from accords_tem.seg_eval import predict_tiled, blend_window, tile_starts, binarize, image_stats, metric_tables, error_map
from accords_tem.imaging import overlay_masks
from accords_tem import unet

TINY = dict(encoder='resnet18', encoder_weights=None, decoder_channels=[32, 16, 8], batch_size=2, patch_size=64, stride=64,
            tile_size=64, tile_overlap=32, instance_classes=[], synthetic_per_material=0, train_scale_copies=[], tta_scales=[1.0], threshold_min_images=0,
            threshold_fallback=False)   # the U-Net defaults before they became default.yaml's


# ---- losses -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('alpha,beta', [(0.8, 0.2), (0.5, 0.5), (0.3, 0.7)])
def test_tversky_known_value(alpha, beta):
    "All-positive prediction on a half-positive target: TP = FP = N/2, FN = 0, so TI = 1 / (1 + alpha)."
    y = torch.zeros(2, 1, 8, 8); y[..., :4, :] = 1
    loss = class_loss(LossSpec(kind='tversky', alpha=alpha, beta=beta, bce_weight=0))(torch.full_like(y, 40.), y)
    assert loss.item() == pytest.approx(alpha / (1 + alpha), abs=1e-4)
    # all-negative prediction: TP = 0, loss 1 whatever alpha/beta
    assert class_loss(LossSpec(kind='tversky', alpha=alpha, beta=beta, bce_weight=0))(torch.full_like(y, -40.), y).item() == pytest.approx(1, abs=1e-4)


@pytest.mark.parametrize('kind', ['tversky', 'bce_dice', 'dice', 'bce'])
def test_losses_perfect_and_ignored(kind):
    y = torch.zeros(2, 1, 8, 8); y[..., 2:6, 2:6] = 1
    logits = (y * 2 - 1) * 40
    l = class_loss(LossSpec(kind=kind))
    assert l(logits, y).item() == pytest.approx(0, abs=1e-4)
    yi, li = y.clone(), logits.clone(); yi[..., 0, :] = -1; li[..., 0, :] = 40   # wrong but ignored
    assert l(li, yi).item() == pytest.approx(0, abs=1e-4)


def test_bce_known_value_and_seg_loss_sum():
    y = torch.ones(1, 2, 4, 4)
    assert class_loss(LossSpec(kind='bce'))(torch.zeros(1, 1, 4, 4), y[:, :1]).item() == pytest.approx(np.log(2), abs=1e-6)
    u = UnetConfig(losses={'GFM': LossSpec(kind='bce', weight=2.0), 'carbonhole': LossSpec(kind='bce')})
    assert make_loss(u)(torch.zeros(1, 2, 4, 4), y).item() == pytest.approx(3 * np.log(2), abs=1e-5)


# ---- metrics ------------------------------------------------------------------------------------------------
def test_metrics_known_values():
    t = torch.zeros(1, 1, 4, 4); t[0, 0, :2] = 1                     # 8 positives
    p = torch.zeros(1, 1, 4, 4); p[0, 0, 0] = 1; p[0, 0, 1, :2] = 1; p[0, 0, 2, :2] = 1   # 6 TP, 2 FP
    tp, fp, fn, tn = seg_stats(p, t, threshold=None)
    assert [int(tp), int(fp), int(fn), int(tn)] == [6, 2, 2, 6]
    s = scores(tp, fp, fn, tn, ['GFM']).set_index('cls')
    assert s.loc['GFM', 'iou'] == pytest.approx(0.6) and s.loc['GFM', 'dice'] == pytest.approx(0.75)
    assert s.loc['GFM', 'specificity'] == pytest.approx(0.75) and s.loc['mean', 'iou'] == pytest.approx(0.6)


def test_pooled_vs_per_image():
    t = np.zeros((1, 4, 4), np.int8); t[0, :2] = 1
    half = np.zeros((1, 4, 4), bool); half[0, 0] = True           # image a: IoU 4/8; image b: perfect (IoU 1)
    m, pi = metric_tables({'a': image_stats(half, t), 'b': image_stats(t == 1, t)}, ['GFM'], 'test')
    pooled = m.query("reduction == 'pooled' and cls == 'GFM'").iou.item()
    per_image = m.query("reduction == 'per_image' and cls == 'GFM'").iou.item()
    assert pooled == pytest.approx(12 / 16) and per_image == pytest.approx(0.75)
    assert list(pi.image) == ['a', 'b'] and pi.iou.tolist() == pytest.approx([0.5, 1.0])


# ---- threshold search ---------------------------------------------------------------------------------------
@pytest.mark.parametrize('cut', [0.23, 0.37, 0.61, 0.88])
def test_threshold_search_finds_known_optimum(cut):
    "Positives in [cut, 1), negatives in [0, cut - 0.03): only thresholds in [cut - 0.03, cut] give IoU 1."
    rng = np.random.default_rng(1)
    t = (rng.random((2, 1, 48, 48)) < 0.4).astype(np.int8)
    p = np.where(t == 1, rng.uniform(cut, 0.999, t.shape), rng.uniform(0, cut - 0.03, t.shape)).astype(np.float32)
    ts = ThresholdSearch(1).add(p, t)
    thr, iou = ts.search(0, [0.1 * i for i in range(1, 10)], 0.01)
    assert iou == 1.0 and cut - 0.03 - 1e-9 <= thr <= cut + 1e-9, thr


def test_threshold_search_ignores_ignored_pixels():
    t = np.array([[[1, 0, -1, -1]]], np.int8); p = np.array([[[0.9, 0.1, 0.95, 0.05]]], np.float32)
    ts = ThresholdSearch(1).add(p[None], t[None])
    assert ts.iou(0, 0.5) == 1.0


# ---- tiled prediction and TTA -------------------------------------------------------------------------------
def _small_conv(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(4, 2, 3, padding=1)).eval()


@pytest.mark.parametrize('shape,tile,overlap', [((200, 330), 64, 32), ((129, 97), 64, 48), ((300, 300), 128, 32)])
def test_tiled_equals_whole_image(shape, tile, overlap):
    net = _small_conv()
    img = (np.random.default_rng(0).random(shape) * 255).astype(np.uint8)
    with torch.no_grad():
        whole = torch.sigmoid(net((torch.from_numpy(img.astype(np.float32))[None, None] / 255 - 0.5) / 0.5))[0].numpy()
    prob, unc = predict_tiled(net, img, tile=tile, overlap=overlap, batch=3, tta='none', amp=False)
    assert prob.shape == (2, *shape)
    assert np.abs(prob - whole).max() < 5e-3
    assert unc.max() < 1e-3


def test_tiled_unet_close_to_whole_image():
    "A real (small, random) U-Net: tiles with 50% overlap agree with the whole-image prediction closely."
    m = build_model(UnetConfig(**TINY))[0].eval()
    img = (np.random.default_rng(0).random((128, 192)) * 255).astype(np.uint8)
    with torch.no_grad():
        whole = torch.sigmoid(m((torch.from_numpy(img.astype(np.float32))[None, None] / 255 - 0.5) / 0.5))[0].numpy()
    prob, _ = predict_tiled(m, img, tile=64, overlap=32, tta='none', amp=False)
    assert np.abs(prob - whole).mean() < 0.02


def test_tta_uncertainty_and_memmap(tmp_path):
    img = (np.random.default_rng(0).random((70, 90)) * 255).astype(np.uint8)
    p, u = predict_tiled(nn.Conv2d(1, 1, 1), img, tile=32, overlap=8, tta='d4', amp=False)
    assert u.max() < 1e-4                                    # a 1x1 conv is equivariant: no disagreement
    asym = nn.Conv2d(1, 1, 3, padding=1); torch.manual_seed(0); nn.init.normal_(asym.weight)
    p1, u1 = predict_tiled(asym, img, tile=32, overlap=8, tta='flips', amp=False)
    p2, u2 = predict_tiled(asym, img, tile=32, overlap=8, tta='flips', amp=False, out_dir=tmp_path)
    assert u1.mean() > 1e-3 and np.allclose(p1, p2) and np.allclose(u1, u2)


def test_blend_window_and_tiles():
    w = blend_window(16)
    assert w.min() > 0 and w.shape == (16, 16) and np.allclose(w, w.T)
    assert tile_starts(1000, 512, 128) == [0, 244, 488] and tile_starts(97, 64, 32) == [0, 16, 33] and tile_starts(100, 512, 128) == [0]


# ---- data -----------------------------------------------------------------------------------------------------
def test_split_patches_targets(tmp_path):
    sp = split_images([f'i{k}' for k in range(10)], (0.7, 0.2, 0.1), seed=3)
    assert sp.subset.value_counts().to_dict() == {'train': 7, 'val': 2, 'test': 1}
    f = tmp_path/'split.csv'; sp.to_csv(f, index=False)
    assert read_split(f, list(sp.image)).equals(sp)
    with pytest.raises(ConfigError, match='not in the dataset'): read_split(f, ['i0'])
    assert window_starts(512, 256, 128) == [0, 128, 256]
    t = np.zeros((2, 512, 512), np.int8); t[0, 300:310, 300:310] = 1   # 100 px in windows starting at 128 and 256
    assert patch_origins(t, 256, 128, 10) == [(128, 128), (128, 256), (256, 128), (256, 256)]
    assert patch_origins(t, 256, 128, 100) == []
    oh = np.zeros((3, 4, 4), np.uint8); oh[0, :2] = 1; oh[2, 2] = 1
    tg = make_target(oh, target_indices(['GFM', 'carbonhole', 'undefined'], ['GFM', 'carbonhole']))
    assert (tg[:, 3] == -1).all() and (tg[0, :2] == 1).all() and (tg[1, :3] == 0).all()


def test_stratified_split_covers_groups_and_magnifications():
    "Each material gets 7/2/1 of its 10 images; its held-out images come from low, middle and high magnification."
    mags = [2000, 3000, 5000, 8000, 10000, 15000, 20000, 30000, 50000, 100000]
    stems = [f'{m}_{x}X' for m in ('GO', 'G', 'rGO') for x in mags]
    groups = {s: s.split('_')[0] for s in stems}; order = {s: int(s.split('_')[1][:-1]) for s in stems}
    for seed in range(10):
        sp = split_images(stems, (0.7, 0.2, 0.1), seed, groups, order)
        sp['g'] = sp.image.map(groups); sp['m'] = sp.image.map(order)
        assert (sp.groupby('g').subset.value_counts().unstack()[['train', 'val', 'test']].values == [7, 2, 1]).all()
        for g, d in sp[sp.subset != 'train'].groupby('g'):
            ranks = sorted(mags.index(m) for m in d.m)
            assert ranks[0] <= 3 and 4 <= ranks[1] <= 6 and ranks[2] >= 7, (seed, g, ranks)
    # without groups it is the plain shuffle; a group too small for a held-out image keeps it in training
    assert split_images(stems, seed=1).subset.value_counts().to_dict() == {'train': 21, 'val': 6, 'test': 3}
    sp = split_images(['a1', 'a2', 'a3', 'a4', 'b1'], (0.6, 0.2, 0.2), 0, {'a1': 'a', 'a2': 'a', 'a3': 'a', 'a4': 'a', 'b1': 'b'})
    assert sp.subset.value_counts().to_dict() == {'train': 3, 'val': 1, 'test': 1} and sp.set_index('image').subset['b1'] == 'train'


def test_tuned_iou_metric_known_answer():
    "Positives at probability 0.3, negatives at 0.1: IoU 0 at threshold 0.5 but 1 at the tuned threshold."
    y = torch.zeros(2, 2, 8, 8); y[:, :, :4] = 1
    logit = lambda p: float(np.log(p / (1 - p)))
    pred = torch.where(y == 1, logit(0.3), logit(0.1))
    class L: pass
    learn = L(); learn.pred, learn.y = pred, y
    m = TunedIoU(2); m.reset(); m.accumulate(learn)
    assert m.value == pytest.approx(1.0)
    m.reset(); assert m.value is None
    pred2 = pred.clone(); pred2[:, 1] = logit(0.9)   # class 1 called positive everywhere: best IoU 0.5 at any threshold
    learn.pred = pred2; m.reset(); m.accumulate(learn)
    assert m.value == pytest.approx((1.0 + 0.5) / 2)


def test_scale_augmentation_is_balanced():
    "scale s zooms by 1/(1+s) .. 1+s, as often in as out."
    import albumentations as A
    aff = [t for t in make_augment(AugmentConfig(scale=1.0)).transforms if isinstance(t, A.Affine)][0]
    assert aff.balanced_scale and aff.scale['x'] == pytest.approx((0.5, 2.0))


def test_underrepresented_flag():
    ms = {'a': np.stack([np.ones((4, 4)), np.zeros((4, 4))]).astype(np.uint8), 'b': np.stack([np.ones((4, 4)), np.ones((4, 4))]).astype(np.uint8)}
    sc = subset_counts(pixel_counts(ms, ['GFM', 'carbonhole']), pd.DataFrame({'image': ['a', 'b'], 'subset': ['train', 'val']}), ['GFM', 'carbonhole'])
    assert sc[sc.underrepresented][['subset', 'cls']].values.tolist() == [['train', 'carbonhole']]


def test_augment_keeps_targets_binary():
    ims, tgs = toy_dataset(2, 64)
    tgs[0][:, :5] = -1
    ds = make_patch_dataset(ims, tgs, 64, 64, None, make_augment(AugmentConfig(p=1.0)))
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (1, 64, 64) and set(np.unique(y.numpy())) <= {-1.0, 0.0, 1.0}


# ---- model, weights, training ---------------------------------------------------------------------------------
def test_lite0_weights_all_keys():
    m, rep = build_model(UnetConfig(encoder='tu-tf_efficientnet_lite0', encoder_weights='imagenet'))
    assert rep['missing'] == [] and rep['skipped_shape'] == [] and rep['loaded'] == len(m.encoder.state_dict()) == 288
    assert {k.split('.')[1] for k in rep['unexpected']} == {'conv_head', 'bn2', 'classifier'}   # the classification head only
    assert m.encoder.state_dict()['model.conv_stem.weight'].shape[1] == 1


def test_missing_checkpoint_says_where(tmp_path):
    with pytest.raises(CheckpointMissingError, match='place the file here'):
        build_model(UnetConfig(encoder='resnet18', encoder_weights=str(tmp_path/'resnet18.pth')))


def test_adapt_first_conv_gray_equals_rgb():
    "timm's adapt_input_conv, which load_encoder_weights uses: a grey image through the summed kernel = RGB repeated."
    w = torch.randn(8, 3, 3, 3); x = torch.randn(1, 1, 9, 9)
    a = nn.functional.conv2d(x, adapt_input_conv(1, w)); b = nn.functional.conv2d(x.repeat(1, 3, 1, 1), w)
    assert torch.allclose(a, b, atol=1e-5)


def test_training_runs_a_few_steps(tmp_path):
    ims, tgs = toy_dataset(4, 64)
    u = UnetConfig(**TINY)
    learn = make_learner(build_model(u)[0], make_patch_dataset(ims[:3], tgs[:3], 64, 64, None),
                         make_patch_dataset(ims[3:], tgs[3:], 64, 64, None), u, tmp_path)
    w0 = [p.detach().clone() for p in learn.model.parameters()][-1]
    h = fit(learn, 2, progress=False)
    assert len(h) == 2 and np.isfinite(h.train_loss).all() and {'iou_GFM', 'iou_carbonhole', 'mean_iou', 'mean_iou_tuned', 'lr'} <= set(h.columns)
    assert (tmp_path/'best.pth').exists()
    assert not torch.equal(w0, list(learn.model.parameters())[-1].detach())


def test_one_cycle_runs_every_epoch(tmp_path):
    "one_cycle anneals to the end: no early stop (even with patience 0) and no plateau; the best epoch is kept."
    ims, tgs = toy_dataset(4, 64)
    u = UnetConfig(**TINY, schedule='one_cycle', patience=0, epochs=3)
    learn = make_learner(build_model(u)[0], make_patch_dataset(ims[:3], tgs[:3], 64, 64, None),
                         make_patch_dataset(ims[3:], tgs[3:], 64, 64, None), u, tmp_path)
    h = fit(learn, 3, progress=False)
    assert len(h) == 3 and h.lr.notna().all()


def test_precision_resolution():
    assert resolve_precision('fp32', 'cpu') == 'fp32'
    assert resolve_precision('auto', 'cpu') in ('bf16', 'fp32')


def test_save_load_and_predict_cli(tmp_path):
    u = UnetConfig(**TINY)
    m = build_model(u)[0]
    save_model(tmp_path/'model', m, u, {'GFM': {'threshold': 0.3}, 'carbonhole': {'threshold': 0.7}})
    sm = load_model(tmp_path/'model')
    assert sm.threshold_list() == [0.3, 0.7]
    x = torch.randn(1, 1, 64, 64)
    assert torch.allclose(sm.model(x), m.eval()(x), atol=1e-5)
    from PIL import Image
    (tmp_path/'imgs').mkdir()
    for i, shape in enumerate([(64, 64), (100, 80)]):
        Image.fromarray((np.random.default_rng(i).random(shape) * 255).astype(np.uint8)).save(tmp_path/'imgs'/f'im{i}.png')
    (tmp_path/'imgs'/'broken.png').write_bytes(b'not a png')
    from accords_tem.objects import predict_main
    assert predict_main(['--model', str(tmp_path/'model'), '--images', str(tmp_path/'imgs'), '--out', str(tmp_path/'out'), '--tta', 'flips']) == 0
    df = pd.read_csv(tmp_path/'out'/'predictions.csv')
    assert sorted(df.image.unique()) == ['im0.png', 'im1.png']
    assert np.load(tmp_path/'out'/'probabilities'/'im1.npy').shape == (2, 100, 80)
    assert np.load(tmp_path/'out'/'uncertainty'/'im1.npy').shape == (2, 100, 80)
    assert (tmp_path/'out'/'masks'/'im1_carbonhole.png').exists() and (tmp_path/'out'/'overlays'/'im0.png').exists()
    assert 'broken.png' in (tmp_path/'out'/'failures.csv').read_text()
    ob, sm_ = pd.read_csv(tmp_path/'out'/'objects.csv'), pd.read_csv(tmp_path/'out'/'summary.csv')
    assert set(sm_.image) == {'im0.png', 'im1.png'} and set(ob.unit) <= {'px'}   # PNGs without metadata: sizes in px
    import tifffile
    assert tifffile.imread(tmp_path/'out'/'instances'/'im1.tif').shape == (100, 80)
    assert (tmp_path/'out'/'objects_overlays'/'im1.png').exists()
    assert predict_main(['--model', str(tmp_path/'model'), '--images', str(tmp_path/'imgs'/'im0.png'), '--out', str(tmp_path/'o2'), '--nm-per-px', '2.5']) == 0
    ob2 = pd.read_csv(tmp_path/'o2'/'objects.csv')
    assert len(ob2) == 0 or (set(ob2.unit) == {'nm'} and set(ob2.px_source) == {'given'})


def test_overlay_and_error_colors():
    im = np.full((2, 3), 100, np.uint8)
    mk = np.zeros((2, 2, 3), bool); mk[0, :, 0] = True; mk[1, :, 2] = True; mk[0, :, 1] = mk[1, :, 1] = True
    ov = overlay_masks(im, mk, ['GFM', 'carbonhole'], alpha=1.0)
    assert ov[0, 0].tolist() == [0, 200, 0] and ov[0, 2].tolist() == [230, 0, 0] and ov[0, 1].tolist() == [255, 230, 0]
    em = error_map(im, mk[0], np.array([[1, 0, 1], [1, 0, 1]], np.int8))
    assert em[0, 0].tolist() == [0, 200, 0] and em[0, 1].tolist() == [230, 0, 0] and em[0, 2].tolist() == [40, 80, 255]


def test_unknown_config_key_and_target():
    with pytest.raises(Exception, match='extra'): UnetConfig(epoch=3)
    with pytest.raises(ConfigError, match='not among'): target_indices(['GFM'], ['hole'])


@pytest.mark.slow
def test_run_unet_end_to_end(tmp_path):
    unet.write_toy_dataset(tmp_path, n=6, size=64)
    cfg = load_config(None, {**{f'unet.{k}': v for k, v in TINY.items()}, 'unet.epochs': 2, 'unet.min_steps': 0, 'unet.batch_size': 4, 'unet.max_figures': 1})
    s = unet.run_unet(cfg, tmp_path, progress=False)
    for f in ['split.csv', 'history.csv', 'curves.png', 'metrics.csv', 'per_image.csv', 'pixel_counts.png', 'model/thresholds.json']:
        assert (tmp_path/'unet'/f).exists(), f
    m = pd.read_csv(tmp_path/'unet'/'metrics.csv')
    assert set(m.reduction) == {'pooled', 'per_image'} and set(m.cls) == {'GFM', 'carbonhole', 'mean'}
    j = json.loads((tmp_path/'unet'/'model'/'unet.json').read_text())   # the seed floor: searched on the validation images
    search = j['prediction_search']   # scales and seed floor: chosen on the validation images
    assert j['unet']['seed_threshold'] == s['seed_threshold'] == search['seed']['seed_threshold']
    assert ('as set' in search['seed']['rule']) == (search['seed']['n_true'] < 50) and search['metric'] in ('object F1', 'mean IoU')
    assert j['unet']['tta_scales'] == s['tta_scales'] and [o['tta_scales'] for o in search['options']] == [[1.0], [0.5, 1.0]]
    best = max(o['score'] for o in search['options'])   # the earlier option stays unless a later one wins by more than 0.01
    assert next(o for o in search['options'] if o['score'] >= best - 0.01)['tta_scales'] == s['tta_scales']
    assert unet.run_unet(cfg, tmp_path, progress=False)['skipped']


@pytest.mark.slow
def test_eval_hrtem_tiny(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for d in ('images', 'masks'): (tmp_path/'hr'/d).mkdir(parents=True)
    for i in range(8):
        Image.fromarray((rng.random((64, 64)) * 255).astype(np.uint8)).save(tmp_path/'hr'/'images'/f'a{i}.png')
        m = np.zeros((64, 64), np.uint8); m[10:30, 5:40] = 255
        Image.fromarray(m).save(tmp_path/'hr'/'masks'/f'a{i}.png')
    unet.eval_hrtem_main(['--data', str(tmp_path/'hr'), '--folds', '2', '--out', str(tmp_path/'cv'), '--epochs', '1',
                              '--encoder', 'resnet18', '--encoder-weights', 'none'])
    j = json.loads((tmp_path/'cv'/'hrtem_cv.json').read_text())
    assert len(j['dice_per_fold']) == 2 and {'dice_mean', 'iou_per_fold', 'encoder', 'epochs', 'device', 'seconds'} <= set(j)

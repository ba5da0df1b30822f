"""Benchmark of instance segmentation on real electron micrographs (issue 16, "Measure"): k-fold cross-validation by
image on emps-train, instance precision/recall/F1 at IoU 0.5, count error, D50 error and pixel IoU, per fold and pooled,
for the project's object cutting on ground-truth masks, Cellpose trained from scratch, and (a hook for) our own model.

Data: `../shared/data/emps-train` (366 TEM/SEM figure crops with one instance map each), from B. Yildirim and
J. M. Cole, "Bayesian Particle Instance Segmentation for Electron Microscopy Image Quantification",
J. Chem. Inf. Model. 61 (2021) 1136-1149, doi:10.1021/acs.jcim.0c01455 (repository by256/emps, MIT licence).
Cite it wherever these numbers are shown. Sizes are in pixels (the set has no pixel size).

    python bench/bench_instances.py --methods gt-instances gt-binary gt-binary-gaps      # all 366 images, seconds
    python bench/bench_instances.py --methods cellpose --subset 150 --fold 0 --threads 1 # 120 train / 30 test
    python bench/bench_instances.py --methods accords --subset 150 --reuse --out ALL    # pool folds run apart (ALL/foldK: links to their OUT/foldK)

Methods:
  gt-instances    the true instance map through the project's measurement (stage 06 with exact instances: labels
                  smaller than `objects.min_area_px` dropped). Upper bound / sanity check.
  gt-binary       the true instances as ONE binary mask (touching particles merged), cut into objects by the project's
                  object cutting for class masks (`sam.instances_from_classes` with the default `ObjectsConfig`), once
                  with the default `split_touching: auto` (watershed pieces joined unless they meet at a neck), with
                  `split=True` (plain distance-transform watershed, h = `watershed_h`) and with `split=False` (connected
                  components): rows `gt-binary:auto`, `gt-binary:split` and `gt-binary:cc`.
  gt-binary-gaps  the same, but where two particles touch a 1-px gap is erased first (a mask "whose touching objects
                  are already separated", issue 16 item 3: counts must come back within 2 %): `gt-binary-gaps:auto|split|cc`.
  cellpose        Cellpose 3 (`cellpose>=3.1,<4`, the CPnet res-U-Net) trained FROM SCRATCH on each fold's training
                  images, with the settings of its command line `cellpose --train --pretrained_model None --train_size`
                  (SGD, lr 0.2, weight decay 1e-5, batch 8, diam_mean 30, min_train_masks 5, channels [0,0]) except
                  n_epochs (CPU), then its size model (style -> diameter regression) estimates each test image's
                  diameter as Cellpose does. No weights are downloaded (HF_HUB_OFFLINE=1, pretrained_model=False).
  accords         the project's default path (README): import-masks -> train-unet (U-Net + centre maps, the run's own
                  config.yaml) -> predict; `--accords-epochs` overrides unet.epochs.
  accords-binary  the same path, but the training masks given as BINARY masks (each instance map > 0: touching particles
                  drawn without a gap, as a labeller's 0/255 mask often is); import-masks cuts their touching objects
                  (its default) or, with `--binary-objects components`, keeps each connected component as one object.

Metrics (every method the same way; the convention of `objects.evaluate_image`): predicted and true instances are
matched one-to-one at IoU 0.5 (`objects.match_instances` with the threshold just above 0.5, so that a merge of two equal
halves at IoU exactly 0.5 is not counted twice; `tp_ties` counts the extra pairs that `>= 0.5` would have accepted);
precision, recall, F1 and counts use ALL objects, those touching the image border included; D50 (median equivalent-circle diameter, px, of all objects pooled) leaves out
objects touching the image border (`objects.exclude_border: true`), for predictions and truth alike. Count error per
image = n_pred / n_true - 1 (median of its absolute value), pooled = sum n_pred / sum n_true - 1. Pixel IoU of the
foreground, pooled = sum of intersections / sum of unions. CPU seconds are the process's (torch threads: --threads).
"""
import argparse, json, os, sys, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('MPLBACKEND', 'Agg')
os.environ.setdefault('CELLPOSE_LOCAL_MODELS_PATH', os.path.join(os.environ.get('TMPDIR', '/tmp'), 'cellpose-models-unused'))
from pathlib import Path
import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from accords_tem.objects import ObjectsConfig, match_instances
from accords_tem.sam import instances_from_classes, relabel

DATA = Path(__file__).resolve().parents[1].parent/'shared'/'data'/'emps-train'
if not DATA.exists(): DATA = Path('/work/shared/data/emps-train')
GT_METHODS = ['gt-instances', 'gt-binary', 'gt-binary-gaps']
METHODS = GT_METHODS + ['cellpose', 'accords', 'accords-binary']

# ---------------------------------------------------------------- data, folds
def list_ids(root:Path) -> list[str]:
    "Image ids that have both an image and an instance map."
    return sorted(p.stem for p in (root/'images').glob('*.png') if (root/'segmaps'/p.name).exists())

def subset_ids(ids:list[str], n:int|None, seed:int) -> list[str]:
    "A fixed seeded subset of `n` ids (all when `n` is None or >= len(ids)), sorted."
    if n is None or n >= len(ids): return list(ids)
    return sorted(np.random.default_rng(seed).choice(sorted(ids), n, replace=False).tolist())

def kfold(ids:list[str], k:int, seed:int) -> list[list[str]]:
    "Test ids of each of `k` folds: a seeded permutation cut into k near-equal parts (every id in exactly one fold)."
    perm = np.random.default_rng(seed).permutation(sorted(ids))
    return [sorted(a.tolist()) for a in np.array_split(perm, k)]

def validation_ids(train_ids:list[str], seed:int) -> list[str]:
    "The seeded sixth (at least one) of a fold's training images that validate (the accords methods' split)."
    return np.random.default_rng(seed).permutation(sorted(train_ids))[:max(1, len(train_ids) // 6)].tolist()

def read_image(root:Path, i:str) -> np.ndarray:
    "The grey image (uint8): the PNGs are grey saved as RGB, the first channel is kept."
    import cv2
    im = cv2.imread(str(root/'images'/f'{i}.png'), cv2.IMREAD_UNCHANGED)
    if im is None: raise FileNotFoundError(root/'images'/f'{i}.png')
    return im if im.ndim == 2 else im[..., 0]

def read_instances(root:Path, i:str) -> np.ndarray:
    "The 16-bit instance map (0 background) as int32."
    import cv2
    lab = cv2.imread(str(root/'segmaps'/f'{i}.png'), cv2.IMREAD_UNCHANGED)
    if lab is None: raise FileNotFoundError(root/'segmaps'/f'{i}.png')
    return (lab if lab.ndim == 2 else lab[..., 0]).astype(np.int32)

# ---------------------------------------------------------------- metrics
def ecd_border(lab:np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    "Equivalent-circle diameter (px) of each label 1..max present, and whether it touches the image border."
    lab = np.asarray(lab).astype(np.int64); n = int(lab.max()) if lab.size else 0
    area = np.bincount(lab.ravel(), minlength=n + 1)
    edge = np.zeros(n + 1, bool)
    edge[np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])] = True
    present = np.flatnonzero(area[1:] > 0) + 1
    return np.sqrt(4 * area[present] / np.pi), edge[present]

def image_metrics(pred:np.ndarray, gt:np.ndarray, iou:float=0.5) -> dict:
    "Per-image scores: matching at `iou`, counts, pixel intersection/union, and the ECD lists (non-border) for D50."
    # match_instances keeps every pair with IoU >= iou when iou >= 0.5: at exactly 0.5 one object can match two (a merge of two
    # equal halves counts 2 true positives). Strictly above the threshold the pairs are one-to-one; the tie cases are counted.
    m = match_instances(pred, gt, float(np.nextafter(iou, 1)) if iou >= 0.5 else iou)
    dp, bp = ecd_border(pred); dg, bg = ecd_border(gt)
    fp_, fg_ = pred > 0, gt > 0
    r = {k: m[k] for k in ('n_pred', 'n_gt', 'tp', 'fp', 'fn', 'precision', 'recall', 'f1', 'mean_iou')}
    r['tp_ties'] = match_instances(pred, gt, iou)['tp'] - r['tp'] if iou >= 0.5 else 0
    r['count_err'] = r['n_pred'] / r['n_gt'] - 1 if r['n_gt'] else np.nan
    r['inter'], r['union'] = int((fp_ & fg_).sum()), int((fp_ | fg_).sum())
    r['pixel_iou'] = r['inter'] / r['union'] if r['union'] else np.nan
    r['_ecd_pred'], r['_ecd_gt'] = dp[~bp].tolist(), dg[~bg].tolist()
    r['D50_pred'] = float(np.median(dp[~bp])) if (~bp).any() else np.nan
    r['D50_gt'] = float(np.median(dg[~bg])) if (~bg).any() else np.nan
    return r

def pool(rows:list[dict]) -> dict:
    "Pooled scores over per-image rows: summed matches and pixels, median |count error|, D50 of all non-border objects."
    if not rows: return {}
    s = lambda k: float(sum(r[k] for r in rows))
    tp, n_p, n_g = s('tp'), s('n_pred'), s('n_gt')
    ep = np.concatenate([r['_ecd_pred'] for r in rows] + [[]]); eg = np.concatenate([r['_ecd_gt'] for r in rows] + [[]])
    d50p = float(np.median(ep)) if len(ep) else np.nan; d50g = float(np.median(eg)) if len(eg) else np.nan
    ce = np.array([r['count_err'] for r in rows], float)
    return dict(n_images=len(rows), n_gt=int(n_g), n_pred=int(n_p), tp=int(tp), fp=int(n_p - tp), fn=int(n_g - tp),
                precision=tp / n_p if n_p else np.nan, recall=tp / n_g if n_g else np.nan,
                f1=2 * tp / (n_p + n_g) if n_p + n_g else np.nan,
                f1_image_mean=float(np.nanmean([r['f1'] for r in rows])),
                count_err_pooled=n_p / n_g - 1 if n_g else np.nan,
                count_abs_err_median=float(np.nanmedian(np.abs(ce))) if np.isfinite(ce).any() else np.nan,
                D50_gt=d50g, D50_pred=d50p, D50_err=d50p / d50g - 1 if d50g else np.nan,
                n_sized_gt=len(eg), n_sized_pred=len(ep), tp_ties=int(s('tp_ties')),
                pixel_iou=s('inter') / s('union') if s('union') else np.nan,
                pixel_iou_image_mean=float(np.nanmean([r['pixel_iou'] for r in rows])))

# ---------------------------------------------------------------- methods on ground truth
def gap_mask(gt:np.ndarray) -> np.ndarray:
    "Binary mask of the instances with a 1-px gap where two touch: a pixel is erased when a higher label is among its 8 neighbours."
    gt = np.asarray(gt)
    return (gt > 0) & ~(ndi.maximum_filter(gt, size=3) > gt)

def cut_binary(mask:np.ndarray, oc:ObjectsConfig, split:bool|str) -> np.ndarray:
    "The project's object cutting of a class mask (stage 06 for sources without instances), defaults from `oc`."
    lab, _ = instances_from_classes(mask.astype(np.uint8), [1], split=split, h=oc.watershed_h, min_area=oc.min_area_px,
                                    speck_px=oc.speck_px, hole_px=oc.hole_px, opening=oc.opening_px, neck_ratio=oc.neck_ratio)
    return lab

def gt_variants(method:str, gt:np.ndarray, oc:ObjectsConfig) -> dict[str, np.ndarray]:
    "Predictions of a ground-truth method: {row name: instance labels}."
    if method == 'gt-instances': return {'gt-instances': relabel(gt.astype(np.int32), None, oc.min_area_px)[0]}
    mask = gt > 0 if method == 'gt-binary' else gap_mask(gt)
    return {f'{method}:auto': cut_binary(mask, oc, 'auto'), f'{method}:split': cut_binary(mask, oc, True),
            f'{method}:cc': cut_binary(mask, oc, False)}

# ---------------------------------------------------------------- Cellpose from scratch
CP_SETTINGS = dict(SGD=True, learning_rate=0.2, weight_decay=1e-5, batch_size=8, diam_mean=30.0, min_train_masks=5,
                   channels=[0, 0], bsize=224, rescale=True, normalize=True, size_epochs=10, flow_threshold=0.4,
                   cellprob_threshold=0.0, min_size=15)

def predict_cellpose(train_ids, test_ids, fold_dir:Path, args, root:Path) -> tuple[dict, dict]:
    "Train Cellpose from scratch on `train_ids`, then its size model; predict `test_ids`. Returns (labels, timings/settings)."
    import torch, logging
    from cellpose import models, train as cptrain
    logging.basicConfig(level=logging.WARNING, format='%(asctime)s %(name)s %(message)s', stream=sys.stdout)
    logging.getLogger('cellpose').setLevel(logging.WARNING); logging.getLogger('cellpose.train').setLevel(logging.INFO)  # epoch losses
    st = dict(CP_SETTINGS, n_epochs=args.cp_epochs, size_epochs=args.cp_size_epochs, min_train_masks=args.cp_min_masks)
    dev = torch.device('cpu' if args.device == 'cpu' or not torch.cuda.is_available() else 'cuda')
    torch.manual_seed(args.seed); np.random.seed(args.seed)
    imgs = [read_image(root, i).astype(np.float32) for i in train_ids]; labs = [read_instances(root, i) for i in train_ids]
    fold_dir.mkdir(parents=True, exist_ok=True)
    c0, w0 = time.process_time(), time.perf_counter()
    model = models.CellposeModel(device=dev, pretrained_model=False, model_type=None, diam_mean=st['diam_mean'], nchan=2)
    path = cptrain.train_seg(model.net, train_data=imgs, train_labels=labs, channels=st['channels'], normalize=st['normalize'],
                             learning_rate=st['learning_rate'], weight_decay=st['weight_decay'], SGD=st['SGD'],
                             n_epochs=st['n_epochs'], batch_size=st['batch_size'], min_train_masks=st['min_train_masks'],
                             rescale=st['rescale'], bsize=st['bsize'], save_path=str(fold_dir), save_every=10**9,
                             model_name='cellpose_scratch')[0]
    model.pretrained_model = str(path)
    model.diam_labels = float(model.net.diam_labels.item())   # train_seg sets it on the net only
    t_seg = (time.process_time() - c0, time.perf_counter() - w0)
    sz = models.SizeModel(cp_model=model, device=dev)
    sz.params = cptrain.train_size(model.net, str(path), train_data=imgs, train_labels=labs, channels=st['channels'],
                                   normalize=st['normalize'], min_train_masks=st['min_train_masks'], n_epochs=st['size_epochs'],
                                   batch_size=st['batch_size'])
    t_all = (time.process_time() - c0, time.perf_counter() - w0)
    out, per = {}, []
    for i in test_ids:
        img = read_image(root, i).astype(np.float32)
        c, w = time.process_time(), time.perf_counter()
        if args.cp_diameter == 'size-model': diam = float(sz.eval(img, channels=st['channels'])[0])
        else: diam = model.diam_labels   # the mean diameter of the training objects for every image
        masks = model.eval(img, channels=st['channels'], diameter=diam, flow_threshold=st['flow_threshold'],
                           cellprob_threshold=st['cellprob_threshold'], min_size=st['min_size'])[0]
        per.append((time.process_time() - c, time.perf_counter() - w, diam))
        out[i] = np.asarray(masks).astype(np.int32)
    per = np.array(per)
    np.savez_compressed(fold_dir/'cellpose_predictions.npz', **out)   # kept beside the model, to rescore without retraining
    return out, dict(settings=st, diameter=args.cp_diameter, diam_labels=float(model.diam_labels),
                     train_cpu_s=t_all[0], train_wall_s=t_all[1], train_seg_cpu_s=t_seg[0], train_size_cpu_s=t_all[0] - t_seg[0],
                     predict_cpu_s_per_image=float(per[:, 0].mean()), predict_wall_s_per_image=float(per[:, 1].mean()),
                     test_diameters=per[:, 2].tolist())

# ---------------------------------------------------------------- the project's own model (hook)
def link_inputs(links:Path, data:Path, train_ids:list[str], test_ids:list[str], binary:bool=False):
    "links/train_images, train_masks, test_images: links to the data's files; `binary`: the masks as 0/255 PNGs of the instance maps."
    import cv2
    for name, ids, sub in (('train_images', train_ids, 'images'), ('train_masks', train_ids, 'segmaps'), ('test_images', test_ids, 'images')):
        d = links/name; d.mkdir(parents=True, exist_ok=True)
        for i in ids:
            if (d/f'{i}.png').exists(): continue
            if binary and sub == 'segmaps':   # touching particles become one piece, as in a labeller's binary mask
                cv2.imwrite(str(d/f'{i}.png'), np.where(read_instances(data, i) > 0, 255, 0).astype(np.uint8))
            else: os.symlink(Path(data).resolve()/sub/f'{i}.png', d/f'{i}.png')

def accords_run(fold_dir:Path, args, binary:bool=False) -> Path:
    "The run folder of the accords method (binary: accords-binary) on one fold."
    return Path(fold_dir)/('accords' if not binary else f'accords-binary-{args.binary_objects}')

def saved_accords(fold_dir:Path, test_ids:list[str], args, binary:bool=False) -> dict|None:
    "The test images' instance maps a finished `predict` of this fold left (RUN/predict/instances), or None when one is missing."
    from accords_tem.unet import read_instances_with_classes
    files = [accords_run(fold_dir, args, binary)/'predict'/'instances'/f'{i}.tif' for i in test_ids]
    return {i: read_instances_with_classes(f)[0] for i, f in zip(test_ids, files)} if all(f.exists() for f in files) else None

def predict_accords(train_ids:list[str], test_ids:list[str], fold_dir:Path, args, binary:bool=False) -> tuple[dict, dict]:
    """The project's README path on one fold, with its defaults: `import-masks` (the training images and their instance maps)
    -> `train-unet` on the run's config.yaml (U-Net with a centre map per object class; a seeded 1/6 of the training images
    validate) -> `predict` on the test images. A finished training in OUT/foldK/accords is resumed, not repeated."""
    import torch
    from accords_tem.core import load_config
    from accords_tem.import_masks import import_masks
    from accords_tem.unet import run_unet
    from accords_tem.objects import predict_objects
    if args.threads: torch.set_num_threads(args.threads)
    run = accords_run(fold_dir, args, binary)
    link_inputs(run/'links', args.data, train_ids, test_ids, binary)
    if not (run/'config.yaml').exists():   # imported once: a re-run keeps the dataset (and so the trained model) as it is
        import_masks(run/'links'/'train_images', run/'links'/'train_masks', run, ['particle'], figures=False, progress=False,
                     binary_objects=args.binary_objects if binary else 'cut', mask_kind='binary' if binary else 'instances')
    cfg = load_config(run/'config.yaml', {'unet.epochs': args.accords_epochs} if args.accords_epochs else None)
    val = set(validation_ids(train_ids, args.seed))
    split = pd.DataFrame(dict(image=sorted(train_ids), subset=['val' if i in val else 'train' for i in sorted(train_ids)]))
    c0 = time.process_time()
    s = run_unet(cfg, run, progress=False, split=split)
    c1 = time.process_time()
    predict_objects(run/'unet'/'model', run/'links'/'test_images', run/'predict', cfg=cfg, figures=False, progress=False)
    c2 = time.process_time()
    out = saved_accords(fold_dir, test_ids, args, binary)
    return out, dict(train_cpu_s=np.nan if s.get('skipped') else c1 - c0, train_wall_s=s.get('seconds'), epochs=s.get('epochs_run'),
                     val_mean_iou=s.get('val_mean_iou'), predict_cpu_s_per_image=(c2 - c1) / len(test_ids), device=s.get('device'))

# ---------------------------------------------------------------- driver
def strict(o):
    "NaN -> None and numpy scalars -> Python, recursively (strict JSON)."
    if isinstance(o, dict): return {str(k): strict(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)): return [strict(v) for v in o]
    if isinstance(o, np.generic): o = o.item()
    if isinstance(o, float) and not np.isfinite(o): return None
    return o

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', type=Path, default=DATA, help='emps-train folder (images/, segmaps/)')
    ap.add_argument('--methods', nargs='+', default=GT_METHODS, choices=METHODS)
    ap.add_argument('--folds', type=int, default=5)
    ap.add_argument('--fold', type=int, nargs='+', help='run only these folds (0-based); default all')
    ap.add_argument('--subset', type=int, help='a fixed seeded subset of N images (CPU time)')
    ap.add_argument('--max-train', type=int, help='at most N training images per fold (the first of a seeded permutation)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--iou', type=float, default=0.5)
    ap.add_argument('--threads', type=int, default=1, help='torch.set_num_threads')
    ap.add_argument('--device', default='cpu', choices=['cpu', 'auto'])
    ap.add_argument('--cp-epochs', type=int, default=100, help='Cellpose n_epochs (its CLI default, 500, is for a GPU)')
    ap.add_argument('--cp-size-epochs', type=int, default=10, help='passes over the training images for the size model')
    ap.add_argument('--cp-min-masks', type=int, default=5, help="Cellpose min_train_masks (its default 5)")
    ap.add_argument('--cp-diameter', choices=['size-model', 'train-mean'], default='size-model')
    ap.add_argument('--reuse', action='store_true', help='rescore the predictions a finished run left (cellpose: OUT/foldK/cellpose_predictions.npz; accords: '
                    'OUT/foldK/accords*/predict/instances) when present, without training or predicting (timings: see that run)')
    ap.add_argument('--min-area', type=int, help='override objects.min_area_px for the gt-* methods (default: the config default)')
    ap.add_argument('--accords-epochs', type=int, default=None, help="accords: unet.epochs (default: the config's)")
    ap.add_argument('--binary-objects', choices=['cut', 'components'], default='cut',
                    help="accords-binary: import-masks cuts touching objects (default) or keeps connected components")
    ap.add_argument('--out', type=Path, default=Path('/tmp/bench_instances'))
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)
    oc = ObjectsConfig() if a.min_area is None else ObjectsConfig(min_area_px=a.min_area)
    ids = subset_ids(list_ids(a.data), a.subset, a.seed)
    if not ids: sys.exit(f'no images with instance maps under {a.data}')
    folds = kfold(ids, a.folds, a.seed)
    run_folds = a.fold if a.fold is not None else list(range(a.folds))
    a.out.mkdir(parents=True, exist_ok=True)
    conv = (f'matching/counts: all objects (border included); D50: objects touching the image border excluded (evaluate_image '
            f'convention); one-to-one at IoU > {a.iou} (tp_ties: extra pairs at exactly {a.iou}); GT-cut defaults: split h={oc.watershed_h}, min_area_px={oc.min_area_px}, '
            f'speck_px={oc.speck_px}, hole_px={oc.hole_px}, opening_px={oc.opening_px}')
    print(f'{len(ids)} images from {a.data}, {a.folds} folds (seed {a.seed}), running folds {run_folds}; threads {a.threads}\n{conv}', flush=True)
    per_image, info = [], {}
    gt_cache = {}
    for k in run_folds:
        test = folds[k]; trn = [i for j, f in enumerate(folds) if j != k for i in f]
        if a.max_train and len(trn) > a.max_train: trn = sorted(np.random.default_rng(a.seed + k).permutation(trn)[:a.max_train].tolist())
        for meth in a.methods:
            c0 = time.process_time()
            if meth in GT_METHODS:
                preds = {}
                for i in test:
                    gt = gt_cache.setdefault(i, read_instances(a.data, i)); c = time.process_time()
                    for name, lab in gt_variants(meth, gt, oc).items(): preds.setdefault(name, {})[i] = lab
                t = dict(train_cpu_s=0.0, predict_cpu_s_per_image=(time.process_time() - c0) / max(len(test), 1))
                tinfo = {name: t for name in preds}
            else:
                try:
                    saved = a.out/f'fold{k}'/'cellpose_predictions.npz'
                    if meth == 'cellpose' and a.reuse and saved.exists():   # rescore a finished run without retraining
                        p = dict(np.load(saved)); t = dict(train_cpu_s=np.nan, predict_cpu_s_per_image=np.nan, reused=str(saved))
                    elif meth != 'cellpose' and a.reuse and (p := saved_accords(a.out/f'fold{k}', test, a, meth == 'accords-binary')):
                        t = dict(train_cpu_s=np.nan, predict_cpu_s_per_image=np.nan, reused=str(accords_run(a.out/f'fold{k}', a, meth == 'accords-binary')))
                    elif meth == 'cellpose': p, t = predict_cellpose(trn, test, a.out/f'fold{k}', a, a.data)
                    else:
                        p, t = predict_accords(trn, test, a.out/f'fold{k}', a, binary=meth == 'accords-binary')
                except NotImplementedError as e:
                    print(f'[{meth}] skipped: {e}', flush=True); continue
                name = f'{meth}:{a.binary_objects}' if meth == 'accords-binary' else meth
                preds, tinfo = {name: p}, {name: t}
            for name, pr in preds.items():
                for i in test:
                    gt = gt_cache.setdefault(i, read_instances(a.data, i))
                    r = image_metrics(pr[i], gt, a.iou); r.update(method=name, fold=k, image=i, n_train=len(trn))
                    per_image.append(r)
                info.setdefault(name, {})[k] = tinfo[name]
            print(f'fold {k} {meth}: {len(test)} test images, {len(trn)} train, {time.process_time() - c0:.1f} CPU s', flush=True)
    # tables
    df = pd.DataFrame(per_image)
    summary = []
    for name in dict.fromkeys(df['method']) if len(df) else []:
        d = df[df.method == name]
        for k, g in list(d.groupby('fold')) + [('all', d)]:
            row = dict(method=name, fold=k, n_train=int(g.n_train.iloc[0]) if k != 'all' else int(g.groupby('fold').n_train.first().mean()), **pool(g.to_dict('records')))
            ts = [info[name][k]] if k != 'all' else list(info[name].values())
            row['train_cpu_s'] = float(np.mean([t['train_cpu_s'] for t in ts]))
            row['predict_cpu_s_per_image'] = float(np.mean([t['predict_cpu_s_per_image'] for t in ts]))
            summary.append(row)
    sm = pd.DataFrame(summary)
    cols = ['method', 'fold', 'n_images', 'n_train', 'n_gt', 'n_pred', 'precision', 'recall', 'f1', 'count_err_pooled',
            'count_abs_err_median', 'D50_gt', 'D50_pred', 'D50_err', 'pixel_iou', 'tp_ties', 'train_cpu_s', 'predict_cpu_s_per_image']
    with pd.option_context('display.width', 250, 'display.max_columns', 40, 'display.float_format', '{:.3f}'.format):
        for name, g in sm.groupby('method', sort=False): print(f'\n== {name}\n' + g[cols].to_string(index=False))
    print(f'\n{conv}\nData: emps-train, Yildirim & Cole, J. Chem. Inf. Model. 2021, doi:10.1021/acs.jcim.0c01455')
    tag = '_'.join(m.replace(':', '-') for m in a.methods) + (f'_minarea{a.min_area}' if a.min_area is not None else '')
    if a.fold is not None: tag += '_fold' + '-'.join(map(str, run_folds))   # runs of other folds into the same --out keep theirs
    sm.to_csv(a.out/f'summary_{tag}.csv', index=False)
    df.drop(columns=['_ecd_pred', '_ecd_gt']).to_csv(a.out/f'per_image_{tag}.csv', index=False)
    meta = dict(data=str(a.data), n_images=len(ids), folds=a.folds, run_folds=run_folds, subset=a.subset, max_train=a.max_train,
                seed=a.seed, threads=a.threads, iou=a.iou, convention=conv, objects_config=oc.model_dump(mode='json'),
                timings={n: {str(k): v for k, v in d.items()} for n, d in info.items()},
                fold_test_ids={str(k): folds[k] for k in run_folds},
                citation='B. Yildirim, J. M. Cole, J. Chem. Inf. Model. 2021, doi:10.1021/acs.jcim.0c01455',
                summary=json.loads(sm.to_json(orient='records')))
    (a.out/f'summary_{tag}.json').write_text(json.dumps(strict(meta), indent=1))
    print(f'wrote {a.out}/summary_{tag}.csv, per_image_{tag}.csv, summary_{tag}.json')
    return sm

if __name__ == '__main__': main()

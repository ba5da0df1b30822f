"""Fold ensemble vs its single fold models: pixel IoU on images no fold has seen, and prediction time.

`accords-tem cv-unet` trains k fold models on a run's dataset; `predict --model RUN/unet_cv` averages them (05e_export). Here
the dataset is seg_train's toy images (a bright disk = GFM, a dark square = carbonhole, on noise), the models are small
(ResNet-18 encoder, random initial weights, decoder 32-16-8), and the test images are new toy images from another seed, so
that every fold model and the ensemble are scored on the same unseen images. IoU is pooled over the pixels of all test images
(smp 'micro'), each class at its model's thresholds (the ensemble: the folds' mean). A toy: it shows the mechanism and the
time cost (k forward passes), not the gain on micrographs.

    .venv/bin/python bench/bench_ensemble.py                  # 3 folds, 12 training images, 8 test images

With `--cv RUN/unet_cv` (fold models that `accords-tem cv-unet` trained, e.g. on the synthetic sample with configs/demo.yaml),
the test images are a new synthetic sample from another seed (`--unseen-seed`; same generator settings as data_sample/, exact
ground truth), predicted with the run's own settings by each fold model and by the ensemble. Scored: pixel IoU per class
pooled over the test images, and GFM flakes as objects (matched one to one at IoU > 0.5, pooled; count error; D50 of the
equivalent diameters of objects not touching the border, pooled), with bench_instances' scorer.

    .venv/bin/python bench/bench_ensemble.py --cv RUN/unet_cv --unseen-seed 7 --out bench/results/ensemble_synthetic.json
"""
from __future__ import annotations
import argparse, json, os, tempfile, time
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--folds', type=int, default=3); ap.add_argument('--n', type=int, default=12)
    ap.add_argument('--test', type=int, default=8); ap.add_argument('--size', type=int, default=96)
    ap.add_argument('--epochs', type=int, default=6); ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--out', default=None, help='write the results as JSON here')
    ap.add_argument('--cv', default=None, help="a run's unet_cv folder: score its folds and their ensemble on unseen synthetic images")
    ap.add_argument('--unseen-seed', type=int, default=7, help='seed of the unseen synthetic sample (data_sample/ used 42)')
    a = ap.parse_args(argv)
    if a.cv: return bench_cv(a)
    import numpy as np, torch
    from PIL import Image
    torch.set_num_threads(a.threads)
    from accords_tem.core import load_config
    from accords_tem.seg_train import toy_dataset
    from accords_tem import unet
    tmp = Path(tempfile.mkdtemp(prefix='bench_ensemble_'))
    unet.write_toy_dataset(tmp, n=a.n, size=a.size, seed=0)
    tiny = dict(encoder='resnet18', encoder_weights=None, decoder_channels=[32, 16, 8], batch_size=4, patch_size=64, stride=32,
                tile_size=64, tile_overlap=32, instance_classes=[], synthetic_per_material=0, train_scale_copies=[], tta_scales=[1.0],
                threshold_min_images=0, threshold_fallback=False, epochs=a.epochs, min_steps=0, max_figures=0, predict_run_images=False)
    cfg = load_config(None, {f'unet.{k}': v for k, v in tiny.items()})
    t = time.perf_counter(); cv = unet.cross_validate_unet(cfg, tmp, folds=a.folds); t_train = time.perf_counter() - t
    ims, tgs = toy_dataset(a.test, a.size, seed=99)
    (tmp/'test').mkdir()
    for i, im in enumerate(ims): Image.fromarray(im).save(tmp/'test'/f't{i:02d}.png')
    models = {f'fold {f}': tmp/'unet_cv'/f'fold_{f}'/'model' for f in range(a.folds)} | {f'ensemble of {a.folds}': tmp/'unet_cv'}
    rows = []
    for name, m in models.items():
        out = tmp/'pred'/name.replace(' ', '_')
        t = time.perf_counter(); unet.predict_images(m, tmp/'test', out, figures=False, progress=False, device='cpu'); sec = time.perf_counter() - t
        r = dict(model=name, seconds=round(sec, 2))
        for k, c in enumerate(['GFM', 'carbonhole']):
            tp = fp = fn = 0
            for i in range(a.test):
                p = np.asarray(Image.open(out/'masks'/f't{i:02d}_{c}.png')) > 0; g = tgs[i][k] == 1
                tp += int((p & g).sum()); fp += int((p & ~g).sum()); fn += int((~p & g).sum())
            r[f'iou_{c}'] = round(tp / max(tp + fp + fn, 1), 4)
        r['iou_mean'] = round((r['iou_GFM'] + r['iou_carbonhole']) / 2, 4)
        rows.append(r); print(r, flush=True)
    singles = [r for r in rows if r['model'].startswith('fold')]; ens = rows[-1]
    summary = dict(rows=rows, single_mean_iou=round(float(np.mean([r['iou_mean'] for r in singles])), 4), ensemble_mean_iou=ens['iou_mean'],
                   time_ratio=round(ens['seconds'] / float(np.mean([r['seconds'] for r in singles])), 2), train_seconds=round(t_train, 1),
                   cv_test_mean_iou_fold_mean=cv.get('test_mean_iou_fold_mean'), settings=vars(a))
    print(json.dumps({k: v for k, v in summary.items() if k != 'rows'}))
    if a.out: Path(a.out).write_text(json.dumps(summary, indent=1))
    return summary


def score_synthetic(pred:Path, data:Path, stems:list[str]) -> dict:
    "Pixel IoU per class (pooled) and GFM objects (bench_instances' scorer, pooled) of a predict folder against the exact truth."
    import numpy as np, sys
    from PIL import Image
    from accords_tem.unet import read_instances_with_classes
    sys.path.insert(0, str(Path(__file__).parent)); import bench_instances as B
    pix = {c: [0, 0] for c in ('GFM', 'carbonhole')}; rows = []
    for st in stems:
        cls = np.asarray(Image.open(data/'ground_truth'/f'{st}_classes.png'))
        for k, c in enumerate(pix, 1):
            p = np.asarray(Image.open(pred/'masks'/f'{st}_{c}.png')) > 0; g = cls == k
            pix[c][0] += int((p & g).sum()); pix[c][1] += int((p | g).sum())
        lab, names, _ = read_instances_with_classes(pred/'instances'/f'{st}.tif')
        keep = np.array([0] + [n == 'GFM' for n in names], bool)
        rows.append(B.image_metrics(np.where(keep[lab], lab, 0), np.asarray(Image.open(data/'ground_truth'/f'{st}_instances.png'))))
    o = B.pool(rows)
    r = {f'iou_{c}': round(i / u, 4) if u else None for c, (i, u) in pix.items()}
    r.update({k: (round(float(o[k]), 4) if isinstance(o[k], float) else o[k]) for k in
              ('n_gt', 'n_pred', 'tp', 'precision', 'recall', 'f1', 'count_err_pooled', 'count_abs_err_median', 'D50_gt', 'D50_pred', 'D50_err')})
    return r

def bench_cv(a) -> dict:
    "Each fold model of `a.cv` and their ensemble on a new synthetic sample (seed `a.unseen_seed`)."
    import numpy as np, pandas as pd, torch
    from accords_tem.synthetic import synthesize
    from accords_tem import unet
    torch.set_num_threads(a.threads)
    cv = Path(a.cv); tmp = Path(tempfile.mkdtemp(prefix='bench_ensemble_cv_'))
    scenes = synthesize(tmp/'unseen', seed=a.unseen_seed, progress=False)
    files = [tmp/'unseen'/f for f in scenes.file]
    folds = sorted(p.parent for p in cv.glob('fold_*/model/unet.json'))
    models = {p.parent.name: p for p in folds} | {f'ensemble of {len(folds)}': cv}
    rows = []
    for name, m in models.items():
        out = tmp/'pred'/name.replace(' ', '_')
        t = time.process_time()
        unet.predict_images(m, tmp/'unseen', out, figures=False, progress=False, device='cpu', files=files)
        r = dict(model=name, cpu_seconds=round(time.process_time() - t, 1), **score_synthetic(out, tmp/'unseen', list(scenes.stem)))
        rows.append(r); print(json.dumps(r), flush=True)
    singles = pd.DataFrame(rows[:-1]); ens = rows[-1]
    summary = dict(rows=rows, test_images=len(files), unseen_seed=a.unseen_seed, cv=str(cv),
                   single_mean={k: round(float(singles[k].mean()), 4) for k in ('iou_GFM', 'iou_carbonhole', 'f1', 'count_err_pooled', 'D50_err', 'cpu_seconds')},
                   ensemble={k: ens[k] for k in ('iou_GFM', 'iou_carbonhole', 'f1', 'count_err_pooled', 'D50_err', 'cpu_seconds')},
                   time_ratio=round(ens['cpu_seconds'] / float(singles.cpu_seconds.mean()), 2))
    print(json.dumps({k: v for k, v in summary.items() if k != 'rows'}))
    if a.out: Path(a.out).write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == '__main__':
    main()

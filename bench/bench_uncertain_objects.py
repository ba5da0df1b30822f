"""Replay of the uncertain-object drop (how `unet.uncertain_object_ratio` was chosen, docs/experiments.md): each fold model of
a `bench_instances.py --methods accords` run predicts its validation images with `predict` (every default; kept under
OUT/foldK/val), its level is taken from them as stage 05 takes it (`instances.uncertainty_level`), then the validation
and the test predictions (the run's RUN/predict, made with the drop off: `uncertain_object_ratio: 0` or a model without
a level) lose the objects `unet.drop_uncertain_objects` drops at each ratio; scored as bench_instances.py scores
(`image_metrics`, `pool`). Choose on `val`; look at `test` once.

    python bench/bench_uncertain_objects.py --runs ALL --ratios 0 3 4 5 --out /tmp/bench_uncertain
"""
import argparse, os, shutil, sys
os.environ.setdefault('HF_HUB_OFFLINE', '1')
from pathlib import Path
import numpy as np, pandas as pd, torch
sys.path.insert(0, str(Path(__file__).parent))
from bench_instances import DATA, list_ids, subset_ids, kfold, read_instances, validation_ids, image_metrics, pool

from accords_tem.core import load_config
from accords_tem.export import load_predictor
from accords_tem.instances import uncertainty_level
from accords_tem.objects import predict_objects
from accords_tem.unet import read_instances_with_classes, drop_uncertain_objects

def predictions(pred_dir:Path, ids:list[str]) -> list[tuple]:
    "(id, labels, their classes, uncertainty, true labels) of the images `predict` wrote into `pred_dir`."
    out = []
    for i in ids:
        lab, names, _ = read_instances_with_classes(pred_dir/'instances'/f'{i}.tif')
        out.append((i, lab, names, np.load(pred_dir/'uncertainty'/f'{i}.npy').astype(np.float32), read_instances(DATA, i)))
    return out

def validation_predictions(run:Path, ids:list[str], out:Path) -> Path:
    "`predict` of the fold's validation images with its model (once; kept in `out`)."
    if not (out/'instances').exists() or len(list((out/'instances').glob('*.tif'))) < len(ids):
        src = out.parent/f'{out.name}_images'; shutil.rmtree(src, ignore_errors=True); src.mkdir(parents=True)
        for i in ids: os.symlink(DATA/'images'/f'{i}.png', src/f'{i}.png')
        predict_objects(run/'unet'/'model', src, out, cfg=load_config(run/'config.yaml'), figures=False, progress=False)
    return out

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--runs', type=Path, nargs='+', required=True, help='bench_instances --out folders holding foldK/accords (links allowed)')
    ap.add_argument('--ratios', type=float, nargs='+', default=[0, 3, 4, 5])
    ap.add_argument('--subset', type=int, default=150); ap.add_argument('--folds', type=int, default=5); ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--out', type=Path, default=Path('/tmp/bench_uncertain'))
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args(argv); torch.set_num_threads(a.threads)
    runs = {int(d.name[4:]): d/'accords' for r in a.runs for d in sorted(r.glob('fold*')) if (d/'accords'/'predict').exists()}
    fs = kfold(subset_ids(list_ids(DATA), a.subset, a.seed), a.folds, a.seed)
    rows = []
    for k, run in sorted(runs.items()):
        sm = load_predictor(run/'unet'/'model', 'cpu')
        val = validation_ids([i for j, f in enumerate(fs) if j != k for i in f], a.seed)
        sub = dict(val=predictions(validation_predictions(run, val, a.out/f'fold{k}'/'val'), val), test=predictions(run/'predict', fs[k]))
        inst = sm.u.instance_classes
        level = uncertainty_level((np.where(np.isin(lab, 1 + np.flatnonzero(np.isin(names, inst))), lab, 0), unc[sm.classes.index(inst[0])], gt)
                                  for _, lab, names, unc, gt in sub['val'])
        print(f'fold {k}: level {level}', flush=True)
        for r in a.ratios:
            sm.u = sm.u.model_copy(update=dict(uncertain_object_ratio=r)); sm.info['object_uncertainty_q90'] = level
            for s, items in sub.items():
                for i, lab, names, unc, gt in items:
                    m = image_metrics(drop_uncertain_objects(sm, lab, names, unc)[0], gt)
                    rows.append(dict(m, fold=k, subset=s, ratio=r, image=i, level=level))
    df = pd.DataFrame(rows)
    for s in ('val', 'test'):
        print(f'{s}: {df[(df.subset == s) & (df.ratio == a.ratios[0])].shape[0]} images, folds {sorted(runs)}')
        for r in a.ratios:
            d = df[(df.subset == s) & (df.ratio == r)]; p = pool(d.to_dict('records'))
            print(f'  ratio {r:g}: F1 {p["f1"]:.3f}  count {p["count_err_pooled"]:+.1%}  D50 {p["D50_err"]:+.1%}  pixel IoU {p["pixel_iou"]:.3f}  '
                  'per fold F1 ' + ' / '.join(f'{pool(g.to_dict("records"))["f1"]:.3f}' for _, g in d.groupby('fold')))
    a.out.mkdir(parents=True, exist_ok=True)
    df.drop(columns=[c for c in df if c.startswith('_')]).to_csv(a.out/'per_image.csv', index=False)

if __name__ == '__main__': main()

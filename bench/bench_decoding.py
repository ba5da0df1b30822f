"""Replay of the centre-map decoding on saved maps (how `unet.seed_dynamic` was chosen, docs/experiments.md): each fold
model of a `bench_instances.py --methods accords` run predicts its validation and test images once (first pass, the
model's scales and flips; maps kept under OUT/maps), then `instances_from_centres` decodes them with the default settings
but one setting varied; scored as bench_instances.py scores (`image_metrics`: one to one at IoU > 0.5; `pool`: count, D50
of the objects not touching the border), pooled per subset and per fold (F1). Choose on `val`; look at `test` once.

    python bench/bench_decoding.py --runs /tmp/acc0 /tmp/acc1 ... --setting seed_dynamic --values 0 0.05 0.1 0.15 0.2
"""
import argparse, os, sys
os.environ.setdefault('HF_HUB_OFFLINE', '1')
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, str(Path(__file__).parent))
from bench_instances import DATA, list_ids, subset_ids, kfold, read_instances, validation_ids, image_metrics, pool

from accords_tem.export import load_predictor, predict_members
from accords_tem.unet import _predict_kw
from accords_tem.io import read_tem
from accords_tem.imaging import minmax_uint8
from accords_tem.instances import instances_from_centres

def fold_split(fs:list[list[str]], k:int, seed:int) -> dict:
    "The validation and test ids of fold k of the folds `fs`, as bench_instances.py splits them."
    return dict(val=validation_ids([i for j, f in enumerate(fs) if j != k for i in f], seed), test=fs[k])

def saved_maps(sm, ids:list[str], out:Path) -> dict:
    "id -> (probability, centre map) of the predictor's first pass, predicted once and kept in `out`."
    out.mkdir(parents=True, exist_ok=True); maps = {}
    for i in ids:
        f = out/f'{i}.npz'
        if not f.exists():
            prob, _ = predict_members(sm, minmax_uint8(read_tem(DATA/'images'/f'{i}.png')), sm.u.tta_scales, **_predict_kw(sm.u, torch.device('cpu')))
            np.savez_compressed(f, prob=prob[0].astype(np.float16), centre=prob[1].astype(np.float16))
        z = np.load(f); maps[i] = (z['prob'].astype(np.float32), z['centre'].astype(np.float32))
    return maps

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--runs', type=Path, nargs='+', required=True, help='bench_instances --out folders holding foldK/accords/unet/model')
    ap.add_argument('--setting', default='seed_dynamic', help='an instances_from_centres setting')
    ap.add_argument('--values', type=float, nargs='+', required=True)
    ap.add_argument('--subset', type=int, default=150); ap.add_argument('--folds', type=int, default=5); ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--out', type=Path, default=Path('/tmp/bench_decoding'))
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args(argv); torch.set_num_threads(a.threads)
    models = {int(d.name[4:]): d/'accords'/'unet'/'model' for r in a.runs for d in sorted(r.glob('fold*')) if (d/'accords'/'unet'/'model').exists()}
    predictors = {k: load_predictor(m, 'cpu') for k, m in models.items()}
    fs = kfold(subset_ids(list_ids(DATA), a.subset, a.seed), a.folds, a.seed)
    for sub in ('val', 'test'):
        rows = {v: {} for v in a.values}   # value -> fold -> per-image scores
        for k, sm in sorted(predictors.items()):
            maps = saved_maps(sm, fold_split(fs, k, a.seed)[sub], a.out/'maps'/f'fold{k}'); u = sm.u
            for i, (prob, centre) in maps.items():
                gt = read_instances(DATA, i)
                for v in a.values:
                    lab = instances_from_centres(prob >= 0.5, centre, seed_threshold=u.seed_threshold, prob=prob,
                                                 **{**u.decode_kwargs(), a.setting: v})
                    rows[v].setdefault(k, []).append(image_metrics(lab, gt))
        print(f'{sub}: {sum(len(r) for r in rows[a.values[0]].values())} images, folds {sorted(models)}')
        for v, by_fold in rows.items():
            p = pool([r for rs in by_fold.values() for r in rs])
            print(f'  {a.setting} {v:g}: F1 {p["f1"]:.3f}  count {p["count_err_pooled"]:+.1%}  D50 {p["D50_err"]:+.1%}  per fold ' +
                  ' / '.join(f'{pool(rs)["f1"]:.3f}' for _, rs in sorted(by_fold.items())))

if __name__ == '__main__': main()

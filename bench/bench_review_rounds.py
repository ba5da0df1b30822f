"""Simulated rounds of the correction loop (issue 20, "Measure the loop"): the ground truth plays the corrector.

Start from a few labelled images, train (round 0, once: both strategies start from the same model); then, each round,
choose `--per-round` images of the unlabelled pool either worst first (the review queue of `accords_tem.review`:
`run_signals` + `rank_images` on the model's predictions of the pool) or at random (seeded), "correct" them by copying
their ground-truth masks into the dataset (the same files a corrected ilastik export gives after
`review.import_corrections`; the import itself is tested in tests/test_review.py), and fine-tune from the previous
round's model (`unet.init`, the split kept: the same validation and test images in every round).

Scored on the held-out test images after every round, where users act (DESIGN.md section 4):
- pixels: IoU of the target class pooled over the test pixels (`test_iou`, from stage 05's metrics.csv) and stage 05's
  `test_mean_iou`;
- objects: the test masks that were scored are cut into objects by stage 06's decoding (`sam.instances_from_mask` with
  `objects.cut_options`, what `predict_images(cut=...)` does for a class without a centre map) and matched to the true
  instances by stage 06's `objects.evaluate_image` (one-to-one at IoU 0.5): object F1 pooled over the test images
  (2 TP / (predicted + true)), the count error (total predicted / total true - 1, signed; and the mean per-image
  |relative error|), and the D50 error (median equivalent diameter of all non-border predicted objects vs true ones,
  signed relative error), in px.

    python bench/bench_review_rounds.py --dataset runs/emps/dataset --config runs/emps/config.yaml --tag emps --seed 0 \
        --initial 6 --per-round 6 --rounds 3 --test 20 --val 6 --pool 40 --epochs 4 --finetune-epochs 2 --set ...
    python bench/bench_review_rounds.py --summarize bench/results/review_rounds_*_s?.csv --tag all

Measured 2026-12-07 (3 seeds each on emps-train and a seed-7 synthetic sample; the settings above with --pool 40 and no
centre maps; `--summarize ... --tag rounds`): worst-first did not need fewer corrections than random, nor did
`--strategies mixed` (half from the top of the queue, half random), nor `oracle` / `oracle-pixels` (the images whose
prediction is truly worst, by 1 - IoU or by wrong pixels: the bound of any queue); the queue's score ranks the pool by
true error with Spearman's rho 0.20 (emps) and 0.12 (synthetic) (bench/results/review_rounds.md; `--queue` prints that table
from the review_queue_*.csv files every ranking writes).

`--dataset` is a RUN/dataset folder (images/<stem>.png, masks/<stem>.npy, instances/<stem>.tif), e.g. made by
`accords-tem import-masks` from ../shared/data/emps-train or from a synthetic sample's micrographs and its
ground_truth/*_instances.png. Writes bench/results/review_rounds_<tag>_s<seed>.csv (one row per strategy and round, the
picked images included) and .png; `--summarize` joins such files into review_rounds_<tag>.csv/.png and prints the
tables. Time per round is wall time on this machine's CPU (training, scoring validation and test, predicting the pool:
`train_s`; cutting and matching the test objects: `objects_s`).
"""
import argparse, json, os, shutil, sys, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('MPLBACKEND', 'Agg')
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from accords_tem.core import load_config
from accords_tem import review
from accords_tem.unet import run_unet

TINY = {'unet.encoder': 'resnet18', 'unet.encoder_weights': None, 'unet.decoder_channels': [16, 8, 8], 'unet.batch_size': 4,
        'unet.patch_size': 32, 'unet.stride': 32, 'unet.tile_size': 64, 'unet.tile_overlap': 0, 'unet.max_figures': 0,
        'unet.tta': 'flips', 'unet.tta_scales': [1.0], 'unet.tta_scale_candidates': [], 'unet.instance_classes': [], 'unet.synthetic_per_material': 0,
        'unet.train_scale_copies': [], 'unet.threshold_min_images': 1000, 'unet.min_steps': 0}


def link(src:Path, dst:Path):
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists(): shutil.copy2(src, dst)


def score_objects(run:Path, c, test:list[str]) -> dict:
    """Object scores of the test images: stage 06's decoding of a class mask (`sam.instances_from_mask` with the objects section's
    `cut_options`, what `predict_images(cut=...)` does for a class without a centre map) on the masks run_unet scored the pixels of,
    matched to the true instances by stage 06's `evaluate_image` (one-to-one at IoU 0.5)."""
    from PIL import Image
    from accords_tem.objects import cut_options, evaluate_image
    from accords_tem.sam import instances_from_mask
    from accords_tem.seg_data import read_instances
    oc, size_class = c.section('objects'), c.section('unet').target_classes[0]
    ev = []
    for s in test:
        mask = np.asarray(Image.open(run/'unet'/'predictions'/f'{s}_{size_class}.png')) > 0
        lab = instances_from_mask(mask, **cut_options(oc)).astype(np.int32)
        gt = read_instances(run/'dataset'/'instances'/f'{s}.tif', lab.shape)
        ev.append(evaluate_image(lab, [size_class] * int(lab.max()), gt, None, size_class))
    ev = pd.DataFrame(ev)
    tp, n_p, n_g = ev.tp.sum(), ev.n_pred.sum(), ev.n_gt.sum()
    ep, eg = np.concatenate(ev._ecd_pred.to_list() + [[]]), np.concatenate(ev._ecd_gt.to_list() + [[]])
    d50p, d50g = (np.median(ep) if len(ep) else np.nan), (np.median(eg) if len(eg) else np.nan)
    has = ev.n_gt > 0
    return dict(object_f1=round(float(2 * tp / max(n_p + n_g, 1)), 4),   # pooled over the test images (stage 06's reduction)
                object_f1_image_mean=round(float(ev.f1[has].mean()), 4),
                n_pred=int(n_p), n_true=int(n_g),
                count_error=round(float((n_p - n_g) / max(n_g, 1)), 4),   # pooled: total predicted / total true - 1 (signed)
                count_error_image_mean=round(float(((ev.n_pred - ev.n_gt).abs() / ev.n_gt)[has].mean()), 4),   # mean |relative error| per image
                d50_pred_px=round(float(d50p), 2), d50_true_px=round(float(d50g), 2),
                d50_error=round(float((d50p - d50g) / d50g), 4))   # pooled non-border objects' median ECD, signed relative error


def image_errors(run:Path, c, pool_ds:Path, stems:list[str]) -> pd.DataFrame:
    """The true error of the model's prediction of each image in `stems` (what the queue tries to rank without ground truth):
    1 - pixel IoU of the target class (predicted mask of `unet/predict/masks` vs the image's true mask) and 1 - object F1
    (the mask cut into objects as in `score_objects`, matched to the true instances one to one at IoU 0.5)."""
    from PIL import Image
    from accords_tem.objects import cut_options, evaluate_image
    from accords_tem.sam import instances_from_mask
    from accords_tem.seg_data import read_instances, load_mask, target_indices
    oc, cls = c.section('objects'), c.section('unet').target_classes[0]
    ch = target_indices(c.class_names(), [cls])[0]
    rows = []
    for s in stems:
        pred = np.asarray(Image.open(run/'unet'/'predict'/'masks'/f'{s}_{cls}.png')) > 0
        true = load_mask(pool_ds/'masks'/f'{s}.npy')[ch] > 0
        union = (pred | true).sum()
        lab = instances_from_mask(pred, **cut_options(oc)).astype(np.int32)
        ev = evaluate_image(lab, [cls] * int(lab.max()), read_instances(pool_ds/'instances'/f'{s}.tif', pred.shape), None, cls)
        rows.append(dict(image=s, pixel_error=1 - (pred & true).sum() / union if union else 0.0, wrong_pixels=int((pred ^ true).sum()),
                         object_error=1 - 2 * ev['tp'] / max(ev['n_pred'] + ev['n_gt'], 1)))
    return pd.DataFrame(rows)


def queue_quality(q:pd.DataFrame, err:pd.DataFrame, k:int) -> dict:
    """How well the queue (`rank_images`) orders images by their true error: Spearman's rho of the score and of each signal
    with each error, and the mean true error of the queue's first `k` images against the pool's mean and the best possible
    first `k` (the truly worst)."""
    from scipy.stats import spearmanr
    d = q.merge(err, on='image')
    out = dict(pool=len(d), k=k)
    for e in ('pixel_error', 'object_error'):
        for s in ['score', *[x for x in review.SIGNALS if x in d and d[x].notna().sum() > 2 and d[x].nunique() > 1]]:
            out[f'rho_{s}_{e}'] = round(float(spearmanr(d[s], d[e]).statistic), 3)
        out[f'{e}_top{k}'] = round(float(d.sort_values('rank')[e].head(k).mean()), 4)
        out[f'{e}_pool'] = round(float(d[e].mean()), 4)
        out[f'{e}_worst{k}'] = round(float(d[e].nlargest(k).mean()), 4)
    return out


def train_round(run:Path, cfg, pool_ds:Path, stems:dict, labelled:list[str], init, epochs:int, predict_pool:bool, a) -> dict:
    "One training round in `run` on `labelled` (+ the fixed val and test images): run_unet, then the test images' objects."
    for s in labelled + stems['val'] + stems['test']:
        for sub, ext in (('images', '.png'), ('masks', '.npy'), ('instances', '.tif')):
            if (pool_ds/sub/f'{s}{ext}').exists(): link(pool_ds/sub/f'{s}{ext}', run/'dataset'/sub/f'{s}{ext}')
    split = pd.DataFrame(dict(image=labelled + stems['val'] + stems['test'],
                              subset=['train'] * len(labelled) + ['val'] * len(stems['val']) + ['test'] * len(stems['test'])))
    split.to_csv(run/'split.csv', index=False)
    c = cfg.model_copy(deep=True)
    c.data.root, c.data.image_glob, c.data.ground_truth = str(run/'pool'), '**/*.png', None   # the unlabelled images, which the model predicts
    c.sections['unet'] = {**c.sections.get('unet', {}), 'split_file': str(run/'split.csv'), 'init': init, 'epochs': epochs,
                          'threads': a.threads, 'predict_run_images': predict_pool}
    t0 = time.time()
    s = run_unet(c, run, force=True, progress=False)
    t1 = time.time()
    m = pd.read_csv(run/'unet'/'metrics.csv')
    cls = c.section('unet').target_classes[0]
    q = m.query(f"subset == 'test' and reduction == 'pooled' and cls == '{cls}'")
    row = dict(labelled=len(labelled), test_mean_iou=s.get('test_mean_iou'), test_iou=round(float(q.iou.iloc[0]), 4) if len(q) else None,
               val_mean_iou=s.get('val_mean_iou'))
    row.update(score_objects(run, c, stems['test']))
    row.update(train_s=round(t1 - t0, 1), objects_s=round(time.time() - t1, 1), seconds=round(time.time() - t0, 1))
    return row, c


def rounds(pool_ds:Path, work:Path, cfg, stems:dict, a, out_csv:Path) -> list[dict]:
    "Round 0 once (the same start for both strategies), then `a.rounds` rounds per strategy, each fine-tuned from its last model."
    start = work/'start'; shutil.rmtree(start, ignore_errors=True)
    for s in stems['pool']:
        if s not in stems['initial']: link(pool_ds/'images'/f'{s}.png', start/'pool'/f'{s}.png')   # data.root: the unlabelled images
    ranked = {'worst-first', 'mixed', 'oracle', 'oracle-pixels'}          # strategies that read the pool's predictions: the pool is predicted for them
    r0, c0 = train_round(start, cfg, pool_ds, stems, list(stems['initial']), None, a.epochs, bool(ranked & set(a.strategies)), a)
    rows, quality = [], []
    def rank(run, c, strategy, r):
        "The review queue of the pool's unlabelled images, its quality against their true errors recorded."
        q = review.rank_images(review.run_signals(run, c, novelty=a.novelty))
        quality.append(dict(dataset=a.tag, seed=a.seed, strategy=strategy, round=r,
                            **queue_quality(q, image_errors(run, c, pool_ds, list(q.image)), a.per_round)))
        pd.DataFrame(quality).to_csv(out_csv.with_name(out_csv.name.replace('review_rounds_', 'review_queue_')), index=False)
        return q
    if ranked & set(a.strategies): rank(start, c0, 'round 0', 0)
    def add(st, r, row):
        rows.append(dict(dataset=a.tag, seed=a.seed, strategy=st, round=r, corrected=row['labelled'] - len(stems['initial']), **row))
        print(json.dumps(rows[-1]), flush=True); pd.DataFrame(rows).to_csv(out_csv, index=False)   # a cut-off run keeps what it did
    for st in a.strategies:
        add(st, 0, r0)
        run = work/st; shutil.rmtree(run, ignore_errors=True); shutil.copytree(start, run)
        labelled, rng, c = list(stems['initial']), np.random.default_rng(a.seed), c0
        for r in range(1, a.rounds + 1):
            shutil.rmtree(run/'model_prev', ignore_errors=True); shutil.copytree(run/'unet'/'model', run/'model_prev')
            left = [x for x in stems['pool'] if x not in labelled]
            top = []
            if st.startswith('oracle'):                   # the truly worst predictions first: what a perfect queue picks
                err = image_errors(run, c, pool_ds, left)   # oracle: by 1 - pixel IoU; oracle-pixels: by the number of wrong pixels
                by = 'wrong_pixels' if st == 'oracle-pixels' else 'pixel_error'
                top = err.sort_values([by, 'image'], ascending=[False, True]).image.head(a.per_round).tolist()
            elif st in ranked:                            # mixed: half from the top of the queue, half at random from the rest
                q = rank(run, c, st, r - 1) if r > 1 else review.rank_images(review.run_signals(run, c, novelty=a.novelty))
                top = [x for x in q.image if x in left][:a.per_round if st == 'worst-first' else a.per_round // 2]
            rest = [x for x in left if x not in top]
            pick = top + list(rng.choice(rest, size=min(a.per_round - len(top), len(rest)), replace=False))
            labelled += pick                              # the corrector: the ground truth of the picked images
            for x in pick: (run/'pool'/f'{x}.png').unlink()   # labelled now: out of the pool the model predicts
            last = r == a.rounds                          # the pool is predicted only where a ranking follows
            row, c = train_round(run, cfg, pool_ds, stems, labelled, str(run/'model_prev'), a.finetune_epochs,
                                 st in ranked and not last, a)
            add(st, r, dict(row, picked=';'.join(pick)))
    return rows


METRICS = [('test_iou', 'pixel IoU of the class (pooled)', 1), ('object_f1', 'object F1 @ IoU 0.5 (pooled)', 1),
           ('count_error', 'absolute count error (pooled, relative)', -1), ('d50_error', 'absolute D50 error (relative)', -1)]
SHORT = dict(test_iou='IoU', object_f1='F1', count_error='count err', d50_error='D50 err')


def plot(df:pd.DataFrame, path:Path, title:str):
    "Accuracy against images corrected, per strategy (one row of panels per dataset): the mean over seeds, each seed's curve (thin), the seed range (band)."
    import matplotlib.pyplot as plt
    sets = list(dict.fromkeys(df.dataset)) if 'dataset' in df else ['']
    fig, axs = plt.subplots(len(sets), len(METRICS), figsize=(4.2 * len(METRICS), 3.4 * len(sets) + 0.4), squeeze=False)
    colors = {'worst-first': '#d62728', 'mixed': '#2ca02c', 'oracle': '#9467bd', 'oracle-pixels': '#8c564b', 'random': '#1f77b4'}
    for row, ds in zip(axs, sets):
        dd = df[df.dataset == ds] if ds else df
        for ax, (m, label, _) in zip(row, METRICS):
            d = dd.assign(v=dd[m].abs() if 'error' in m else dd[m])
            for st, g in d.groupby('strategy'):
                for _, gs in g.groupby('seed'): ax.plot(gs.corrected, gs.v, '-', color=colors.get(st), alpha=0.3, lw=0.8)
                mean = g.groupby('corrected').v.agg(['mean', 'min', 'max'])
                ax.fill_between(mean.index, mean['min'], mean['max'], color=colors.get(st), alpha=0.1)
                ax.plot(mean.index, mean['mean'], 'o-', color=colors.get(st), label=f'{st} (mean of {g.seed.nunique()} seeds)')
            ax.set_xlabel('images corrected'); ax.set_title(f'{ds}: {label}' if ds else label, fontsize=9)
            ax.set_xticks(sorted(dd.corrected.unique()))
        row[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9); fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)


def strategies(df:pd.DataFrame) -> list[str]:
    "The strategies of `df`, random last."
    return [s for s in ('worst-first', 'mixed', 'oracle', 'oracle-pixels', 'random') if s in set(df.strategy)]

def table(df:pd.DataFrame) -> str:
    "Markdown: per images corrected, each strategy's mean and seed range of every metric."
    sts = strategies(df)
    lines = ['| images corrected | ' + ' | '.join(f'{SHORT[m]}: {st}' for m, lab, _ in METRICS for st in sts) + ' |',
             '|---' * (1 + len(sts) * len(METRICS)) + '|']
    for n, g in df.groupby('corrected'):
        cells = []
        for m, _, _ in METRICS:
            for st in sts:
                v = g[g.strategy == st][m]; v = v.abs() if 'error' in m else v
                cells.append(f'{v.mean():.3f} ({v.min():.3f}-{v.max():.3f})' if len(v) else '')
        lines.append(f'| {n} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def corrections_to_reach(g:pd.DataFrame, m:str, level:float, better:int) -> float:
    "Images corrected at which the seeds' mean curve of `m` first reaches `level` (linear between rounds; NaN: never)."
    c = g.assign(v=g[m].abs() if better < 0 else g[m]).groupby('corrected').v.mean()
    x, y = c.index.to_numpy(float), better * c.to_numpy(float)
    for i in range(len(x)):
        if y[i] >= better * level - 1e-12:
            if i == 0: return float(x[0])
            return float(x[i - 1] + (x[i] - x[i - 1]) * (better * level - y[i - 1]) / (y[i] - y[i - 1]))
    return float('nan')


def comparison(df:pd.DataFrame) -> str:
    "Markdown: per metric, the corrections each strategy needs to reach what random reaches at its last round, and the seed-by-seed wins."
    sts = strategies(df); others = [s for s in sts if s != 'random']
    lines = ['| metric | random at its last round | ' + ' | '.join(f'images corrected to reach it: {st}' for st in sts) + ' | '
             + ' | '.join(f'{st} better / worse / tied than random (seed x round)' for st in others) + ' |',
             '|---|---' + '|---' * (len(sts) + len(others)) + '|']
    last = df.corrected.max()
    for m, lab, better in METRICS:
        g = {st: df[df.strategy == st] for st in sts}
        lev = (g['random'][g['random'].corrected == last][m].abs() if better < 0 else g['random'][g['random'].corrected == last][m]).mean()
        r = g['random'][g['random']['round'] > 0].set_index(['seed', 'round'])[m]
        wins = []
        for st in others:
            w = g[st][g[st]['round'] > 0].set_index(['seed', 'round'])[m]
            d = better * ((w.abs() - r.abs()) if better < 0 else (w - r)).dropna()
            wins.append(f'{(d > 0).sum()} / {(d < 0).sum()} / {(d == 0).sum()}')
        need = [corrections_to_reach(g[st], m, lev, better) for st in sts]
        lines.append(f'| {lab} | {lev:.3f} | ' + ' | '.join('not reached' if np.isnan(v) else f'{v:.1f}' for v in need)
                     + ' | ' + ' | '.join(wins) + ' |')
    return '\n'.join(lines)


def timing(df:pd.DataFrame) -> str:
    "Markdown: seconds per round (training incl. scoring and pool prediction; object scoring), median and range per strategy and kind of round."
    lines = ['| rounds | n | training round (s): median (range) | object scoring of the test images (s) |', '|---|---|---|---|']
    d = df.drop_duplicates(['seed', 'round', 'strategy'])
    for name, q in (('round 0 (first training, pool predicted)', d[(d['round'] == 0) & (d.strategy == d.strategy.iloc[0])]),
                    ('worst-first fine-tunes (pool predicted, except the last)', d[(d['round'] > 0) & (d.strategy == 'worst-first')]),
                    ('mixed fine-tunes (pool predicted, except the last)', d[(d['round'] > 0) & (d.strategy == 'mixed')]),
                    ('oracle fine-tunes (pool predicted, except the last)', d[(d['round'] > 0) & (d.strategy == 'oracle')]),
                    ('oracle-pixels fine-tunes (pool predicted, except the last)', d[(d['round'] > 0) & (d.strategy == 'oracle-pixels')]),
                    ('random fine-tunes (no pool prediction)', d[(d['round'] > 0) & (d.strategy == 'random')])):
        if len(q): lines.append(f'| {name} | {len(q)} | {q.train_s.median():.0f} ({q.train_s.min():.0f}-{q.train_s.max():.0f}) | '
                                f'{q.objects_s.median():.0f} ({q.objects_s.min():.0f}-{q.objects_s.max():.0f}) |')
    return '\n'.join(lines)


def picked_table(df:pd.DataFrame, datasets:dict) -> str:
    "Markdown: what each strategy picked, per dataset: images, their true objects (dataset/instances), and the share without any."
    from accords_tem.seg_data import read_instances
    from PIL import Image
    lines = ['| dataset | strategy | images picked | true objects in them: mean per image | images with no object |', '|---|---|---|---|---|']
    for (ds, st), g in df[df['round'] > 0].groupby(['dataset', 'strategy'], sort=False):
        if ds not in datasets: continue
        root = Path(datasets[ds]); n = []
        for s in ';'.join(g.picked.dropna()).split(';'):
            shape = Image.open(root/'images'/f'{s}.png').size[::-1]
            lab = read_instances(root/'instances'/f'{s}.tif', shape); n.append(len(np.unique(lab[lab > 0])))
        lines.append(f'| {ds} | {st} | {len(n)} | {np.mean(n):.1f} | {sum(x == 0 for x in n)} |')
    return '\n'.join(lines)


def queue_table(csvs:list[str]) -> str:
    "Markdown: how well the round-0 queue orders the pool by true error, per dataset: Spearman's rho (mean and range over seeds) of the score and of each signal, and the mean true error of the queue's first k images, of the pool, and of the truly worst k."
    d = pd.concat([pd.read_csv(f) for f in csvs], ignore_index=True)
    d = d[d['round'] == 0]
    lines = ['| dataset | error | seeds | rho: score | ' + ' | '.join(f'rho: {s}' for s in review.SIGNALS if f'rho_{s}_pixel_error' in d) +
             ' | queue\'s first k | pool mean | truly worst k |', '|---' * (7 + sum(f'rho_{s}_pixel_error' in d for s in review.SIGNALS)) + '|']
    f = lambda v: f'{v.mean():.2f} ({v.min():.2f} to {v.max():.2f})' if v.notna().any() else ''
    for (ds, g), e in ((x, e) for x in d.groupby('dataset', sort=False) for e in ('pixel_error', 'object_error')):
        cells = [f(g[f'rho_score_{e}'])] + [f(g[f'rho_{s}_{e}']) for s in review.SIGNALS if f'rho_{s}_pixel_error' in d]
        k = int(g.k.iloc[0])
        lines.append(f'| {ds} | 1 - {"pixel IoU" if e == "pixel_error" else "object F1"} | {len(g)} | ' + ' | '.join(cells) +
                     f' | {g[f"{e}_top{k}"].mean():.3f} | {g[f"{e}_pool"].mean():.3f} | {g[f"{e}_worst{k}"].mean():.3f} |')
    return '\n'.join(lines)


def summarize(csvs:list[str], tag:str, datasets:dict|None=None):
    "Tables and one figure from the csv files of several seeds (and datasets): bench/results/review_rounds_<tag>.csv/.png, the tables printed."
    df = pd.concat([pd.read_csv(f) for f in csvs], ignore_index=True)
    out = ROOT/'bench'/'results'; df.to_csv(out/f'review_rounds_{tag}.csv', index=False)
    plot(df, out/f'review_rounds_{tag}.png', 'simulated correction rounds: thin lines one seed each, bands the range over seeds, thick lines the mean')
    for ds, d in df.groupby('dataset', sort=False):
        print(f'## {ds}: seeds {", ".join(map(str, sorted(d.seed.unique())))}\n'); print(table(d)); print(); print(comparison(d)); print(); print(timing(d)); print()
    if datasets: print(picked_table(df, datasets))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--dataset', help='a RUN/dataset folder with ground truth (images/, masks/)')
    ap.add_argument('--config', help='that run\'s configuration (default: the defaults)')
    ap.add_argument('--initial', type=int, default=4); ap.add_argument('--per-round', type=int, default=4)
    ap.add_argument('--rounds', type=int, default=4); ap.add_argument('--test', type=int, default=10); ap.add_argument('--val', type=int, default=4)
    ap.add_argument('--epochs', type=int, default=4, help='epochs of the first training'); ap.add_argument('--finetune-epochs', type=int, default=2)
    ap.add_argument('--tiny', action='store_true', help='the tiny U-Net and toy sizes (a smoke run)')
    ap.add_argument('--no-novelty', dest='novelty', action='store_false'); ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--seed', type=int, default=0); ap.add_argument('--work', default='/tmp/bench_review_rounds')
    ap.add_argument('--tag', default=None)
    ap.add_argument('--pool', type=int, default=None, help='at most this many unlabelled images to choose from (default: all the others)')
    ap.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', help='override a config key, e.g. unet.patch_size=128')
    ap.add_argument('--strategies', nargs='+', default=['worst-first', 'random'], choices=['worst-first', 'mixed', 'oracle', 'oracle-pixels', 'random'],
                    help='oracle: the images whose prediction is truly worst (1 - pixel IoU against the ground truth), the upper '
                         'bound of any queue; oracle-pixels: those with the most wrong pixels')
    ap.add_argument('--picked-from', action='append', default=[], metavar='TAG=DIR',
                    help='with --summarize: count the true objects in the images each strategy picked (DIR: that dataset folder)')
    ap.add_argument('--queue', nargs='+', metavar='CSV', help='only print how well the queue ranked the pool by true error (review_queue_*.csv)')
    ap.add_argument('--summarize', nargs='+', metavar='CSV', help='only write the table and figure of these per-seed csv files (with --tag)')
    a = ap.parse_args(argv)
    if a.queue: return print(queue_table(a.queue))
    if a.summarize: return summarize(a.summarize, a.tag or 'summary', dict(x.split('=', 1) for x in a.picked_from))
    import torch; torch.set_num_threads(a.threads)
    work = Path(a.work); work.mkdir(parents=True, exist_ok=True)
    if not a.dataset: ap.error('give --dataset DIR (with instances/: the objects are scored)')
    ds = Path(a.dataset)
    from accords_tem.core import parse_overrides
    cfg = load_config(a.config, {**(TINY if a.tiny else {}), **parse_overrides(a.set)})
    all_stems = sorted(p.stem for p in (ds/'masks').glob('*.npy'))
    order = list(np.random.default_rng(a.seed).permutation(all_stems))
    need = a.test + a.val + a.initial + a.per_round * a.rounds
    if len(order) < need: ap.error(f'{len(order)} images, need at least {need}')
    stems = dict(test=order[:a.test], val=order[a.test:a.test + a.val], initial=order[a.test + a.val:a.test + a.val + a.initial])
    stems['pool'] = order[a.test + a.val:]               # the initial images and the unlabelled ones
    if a.pool: stems['pool'] = stems['pool'][:a.initial + a.pool]
    a.tag = a.tag or Path(a.dataset).resolve().parent.name
    out = ROOT/'bench'/'results'; out.mkdir(parents=True, exist_ok=True)
    csv = out/f'review_rounds_{a.tag}_s{a.seed}.csv'
    df = pd.DataFrame(rounds(ds, work, cfg, stems, a, csv))
    plot(df, out/f'review_rounds_{a.tag}_s{a.seed}.png', f'{a.tag}, seed {a.seed}: {a.initial} labelled + {a.per_round} per round, {len(stems["test"])} test images')
    print(df.drop(columns=['picked'], errors='ignore').to_string(index=False))


if __name__ == '__main__':
    main()

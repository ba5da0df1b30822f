"""Simulated rounds of the correction loop (issue 20, "Measure the loop"): the ground truth plays the corrector.

Start from a few labelled images, train; then, each round, choose `--per-round` images of the unlabelled pool either
worst first (the review queue of `accords_tem.review`: `run_signals` + `rank_images` on the model's predictions of the
pool) or at random (seeded), "correct" them by copying their ground-truth masks into the dataset (the same files a
corrected ilastik export gives after `review.import_corrections`; the import itself is tested in tests/test_review.py),
and fine-tune from the previous round's model (`unet.init`, the split kept: the same validation and test images in
every round). Accuracy is scored on held-out test images after every round: pixel mean IoU over the target classes,
pooled over the test pixels (stage 05's `test_mean_iou`). Object F1 is not measured here yet.

    python bench/bench_review_rounds.py --source toy --tiny                     # seconds: shows it runs, measures nothing
    python bench/bench_review_rounds.py --dataset runs/emps/dataset --config runs/emps/config.yaml \
        --initial 10 --per-round 10 --rounds 5 --test 40 --val 10 --epochs 5    # emps-train after `accords-tem import-masks`

`--dataset` is a RUN/dataset folder (images/<stem>.png, masks/<stem>.npy, optional instances/<stem>.tif), e.g. made by
`accords-tem import-masks` from ../shared/data/emps-train, with its run's configuration; `--source toy` draws the
toy dataset of 05_unet. Writes bench/results/review_rounds_<tag>.csv (one row per strategy and round) and .png
(accuracy against images corrected for both strategies). Time per round (training + predicting the pool) is the
wall time on this machine's CPU.
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
from accords_tem.unet import run_unet, write_toy_dataset

TINY = {'unet.encoder': 'resnet18', 'unet.encoder_weights': None, 'unet.decoder_channels': [16, 8, 8], 'unet.batch_size': 4,
        'unet.patch_size': 32, 'unet.stride': 32, 'unet.tile_size': 64, 'unet.tile_overlap': 0, 'unet.max_figures': 0,
        'unet.tta': 'flips', 'unet.tta_scales': [1.0], 'unet.tta_scale_candidates': [], 'unet.instance_classes': [], 'unet.synthetic_per_material': 0,
        'unet.train_scale_copies': [], 'unet.threshold_min_images': 1000, 'unet.min_steps': 0}


def link(src:Path, dst:Path):
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists(): shutil.copy2(src, dst)


def one_strategy(strategy:str, pool_ds:Path, work:Path, cfg, stems:dict, a) -> list[dict]:
    "Rounds for one strategy; each round trains (from the last model after round 0) and scores the test images."
    run = work/strategy; shutil.rmtree(run, ignore_errors=True)
    data = run/'pool'                                    # data.root: the unlabelled pool's images, which the model predicts
    for s in stems['pool']: link(pool_ds/'images'/f'{s}.png', data/f'{s}.png')
    labelled = list(stems['initial'])
    rng = np.random.default_rng(a.seed)
    rows, init = [], None
    for r in range(a.rounds + 1):
        for s in labelled + stems['val'] + stems['test']:
            for sub, ext in (('images', '.png'), ('masks', '.npy'), ('instances', '.tif')):
                if (pool_ds/sub/f'{s}{ext}').exists(): link(pool_ds/sub/f'{s}{ext}', run/'dataset'/sub/f'{s}{ext}')
        split = pd.DataFrame(dict(image=labelled + stems['val'] + stems['test'],
                                  subset=['train'] * len(labelled) + ['val'] * len(stems['val']) + ['test'] * len(stems['test'])))
        split.to_csv(run/'split.csv', index=False)
        c = cfg.model_copy(deep=True)
        c.data.root, c.data.image_glob, c.data.ground_truth = str(data), '**/*.png', None
        c.sections['unet'] = {**c.sections.get('unet', {}), 'split_file': str(run/'split.csv'), 'init': init,
                              'epochs': a.epochs if r == 0 else a.finetune_epochs, 'threads': a.threads}
        t0 = time.time()
        s = run_unet(c, run, force=True, progress=False)
        dt = time.time() - t0
        rows.append(dict(strategy=strategy, round=r, labelled=len(labelled), corrected=len(labelled) - len(stems['initial']),
                         test_mean_iou=s.get('test_mean_iou'), val_mean_iou=s.get('val_mean_iou'), seconds=round(dt, 1)))
        print(json.dumps(rows[-1]), flush=True)
        if r == a.rounds: break
        shutil.rmtree(run/'model_prev', ignore_errors=True); shutil.copytree(run/'unet'/'model', run/'model_prev')
        init = str(run/'model_prev')
        left = [x for x in stems['pool'] if x not in labelled]
        if strategy == 'worst-first':
            q = review.rank_images(review.run_signals(run, c, novelty=a.novelty))
            pick = [x for x in q.image if x in left][:a.per_round]
        else: pick = list(rng.choice(left, size=min(a.per_round, len(left)), replace=False))
        labelled += pick                                  # the corrector: the ground truth of the picked images
    return rows


def plot(df:pd.DataFrame, path:Path, title:str):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for st, g in df.groupby('strategy'): ax.plot(g.corrected, g.test_mean_iou, 'o-', label=st)
    ax.set_xlabel('images corrected'); ax.set_ylabel('test mean IoU (pooled pixels)'); ax.set_title(title, fontsize=9); ax.legend()
    fig.tight_layout(); fig.savefig(path, dpi=110); plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--source', choices=['toy'], help='draw the toy dataset of 05_unet (instead of --dataset)')
    ap.add_argument('--dataset', help='a RUN/dataset folder with ground truth (images/, masks/)')
    ap.add_argument('--config', help='that run\'s configuration (default: the defaults)')
    ap.add_argument('--n', type=int, default=40, help='toy images (with --source toy)')
    ap.add_argument('--initial', type=int, default=4); ap.add_argument('--per-round', type=int, default=4)
    ap.add_argument('--rounds', type=int, default=4); ap.add_argument('--test', type=int, default=10); ap.add_argument('--val', type=int, default=4)
    ap.add_argument('--epochs', type=int, default=4, help='epochs of the first training'); ap.add_argument('--finetune-epochs', type=int, default=2)
    ap.add_argument('--tiny', action='store_true', help='the tiny U-Net and toy sizes (a smoke run)')
    ap.add_argument('--no-novelty', dest='novelty', action='store_false'); ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--seed', type=int, default=0); ap.add_argument('--work', default='/tmp/bench_review_rounds')
    ap.add_argument('--tag', default=None)
    ap.add_argument('--pool', type=int, default=None, help='at most this many unlabelled images to choose from (default: all the others)')
    ap.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', help='override a config key, e.g. unet.patch_size=128')
    ap.add_argument('--strategies', nargs='+', default=['worst-first', 'random'])
    a = ap.parse_args(argv)
    import torch; torch.set_num_threads(a.threads)
    work = Path(a.work); work.mkdir(parents=True, exist_ok=True)
    if a.source == 'toy': ds = write_toy_dataset(work/'toy', n=a.n, size=64, seed=a.seed)
    elif a.dataset: ds = Path(a.dataset)
    else: ap.error('give --source toy or --dataset DIR')
    from accords_tem.core import parse_overrides
    cfg = load_config(a.config, {**(TINY if a.tiny or a.source == 'toy' else {}), **parse_overrides(a.set)})
    all_stems = sorted(p.stem for p in (ds/'masks').glob('*.npy'))
    order = list(np.random.default_rng(a.seed).permutation(all_stems))
    need = a.test + a.val + a.initial + a.per_round * a.rounds
    if len(order) < need: ap.error(f'{len(order)} images, need at least {need}')
    stems = dict(test=order[:a.test], val=order[a.test:a.test + a.val], initial=order[a.test + a.val:a.test + a.val + a.initial])
    stems['pool'] = order[a.test + a.val:]               # the initial images and the unlabelled ones
    if a.pool: stems['pool'] = stems['pool'][:a.initial + a.pool]
    tag = a.tag or ('toy' if a.source == 'toy' else Path(a.dataset).resolve().parent.name)
    out = ROOT/'bench'/'results'; out.mkdir(parents=True, exist_ok=True)
    rows = []
    for st in a.strategies:
        rows += one_strategy(st, ds, work, cfg, stems, a)
        pd.DataFrame(rows).to_csv(out/f'review_rounds_{tag}.csv', index=False)   # after each strategy: a cut-off run keeps what it did
    df = pd.DataFrame(rows)
    plot(df, out/f'review_rounds_{tag}.png', f'{tag}: {a.initial} labelled + {a.per_round} per round, {len(stems["test"])} test images')
    print(df.to_string(index=False))


if __name__ == '__main__':
    main()

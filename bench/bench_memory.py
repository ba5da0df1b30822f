"""Peak memory of each stage on one big micrograph (issue: every stage streams large images in bounded memory).

One SIZE x SIZE uint16 TIFF (default 20000: 800 MB) with its ilastik exports (probabilities, labels), then each stage as
its own `accords-tem` command in a fresh process: inventory, normalize, masks, dataset, and `predict` with a small
untrained, seeded U-Net (its masks decide how much decoding there is; no TTA, one scale). Peak RSS of each process comes from
`/usr/bin/time -f %M` (GNU time: maximum resident set size, kB). Goal: 2 GB or less each.

    python bench/bench_memory.py --size 20000 --work /tmp/bench_memory      # about 20-40 minutes on 2 CPU cores

Writes WORK/memory.json and prints a table. The input files are written in bands (the bench itself stays small).

Measured 2026-12-07 (2-core CPU; details and causes in bench/results/memory.md), peak MB, round 3 (round 2, main):
    8000x8000   inventory 476 (477, 2000), normalize 978 (979, 950), masks 454 (522, 1370), dataset 1018 (1198, 4700),
                predict 4824 (4850, 7406; whole-image path: 64 Mpx is not above io.max_pixels_in_memory; 1975 with it just below)
    20000x20000 inventory 520 (523, 2100), normalize 1592 (1592, 6500), masks 1440 (2140), dataset 1754 (5561),
                predict 1808 (5699, 12900): every stage within 2 GB
"""
from __future__ import annotations
import argparse, json, os, subprocess, sys, time
from pathlib import Path

import numpy as np

CLI = [sys.executable, '-c', 'import sys; from accords_tem.cli import main; sys.exit(main())']   # the accords-tem command


def write_inputs(root:Path, size:int, band:int=1024) -> Path:
    "A SIZE x SIZE uint16 TIFF (dark disks on a noisy film) and its ilastik probability / label exports, written in bands."
    import tifffile, h5py
    stem = 'AC_UT_GO_01_01_UO_20000X_0001'
    img_path = root/'GO_01'/f'{stem}.tif'; (root/'GO_01').mkdir(parents=True, exist_ok=True); (root/'ilastik').mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:band, 0:size]
    def rows(y0, y1):
        "uint16 image rows and class labels (1 = GFM disks, 2 = carbonhole stripes, 3 = film) of rows y0..y1."
        y = yy[:y1 - y0] + y0; x = xx[:y1 - y0]
        disk = ((y % 400 - 200) ** 2 + (x % 400 - 200) ** 2) < 90 ** 2
        hole = (x // 2500) % 4 == 3
        img = (30000 + rng.normal(0, 2000, y.shape)).clip(0, 65535)
        img[disk] -= 12000; img[hole] += 20000
        lab = np.where(disk, 1, np.where(hole, 2, 3)).astype(np.uint8)
        return img.astype(np.uint16), lab
    mm = tifffile.memmap(img_path, shape=(size, size), dtype=np.uint16, photometric='minisblack')
    with h5py.File(root/'ilastik'/f'{stem}_Probabilities.h5', 'w') as hp, h5py.File(root/'ilastik'/f'{stem}_Labels.h5', 'w') as hl:
        dp = hp.create_dataset('exported_data', (size, size, 3), np.float32, chunks=(256, 256, 3), compression='gzip', compression_opts=1)
        dl = hl.create_dataset('exported_data', (size, size, 1), np.uint8, chunks=(256, 256, 1), compression='gzip', compression_opts=1)
        for y0 in range(0, size, band):
            y1 = min(y0 + band, size); img, lab = rows(y0, y1)
            mm[y0:y1] = img
            dp[y0:y1] = np.eye(3, dtype=np.float32)[lab - 1] * 0.9 + 0.1 / 3
            sparse = lab.copy(); sparse[(np.arange(y0, y1) % 7 != 0)] = 0   # ilastik labels are sparse strokes
            dl[y0:y1] = sparse[..., None]
    mm.flush(); del mm
    return img_path


def small_model(out:Path) -> Path:
    "An untrained U-Net (resnet18, light decoder) saved as a model folder that `predict` reads."
    from accords_tem.seg_data import UnetConfig
    from accords_tem.seg_train import build_model, save_model
    u = UnetConfig(encoder='resnet18', encoder_weights=None, decoder_channels=[64, 32, 16, 8, 8], tta='none', tta_scales=[1.0],
                   tile_size=512, tile_overlap=64, pred_batch=4)
    import torch; torch.manual_seed(0)   # the same untrained model every run (its masks decide how much decoding there is)
    model, _ = build_model(u, weights=False)
    return save_model(out, model, u)


def peak(cmd:list[str], log:Path) -> dict:
    "Run `cmd` under GNU time; its peak RSS (MB), wall seconds and exit status."
    t = time.time()
    with open(log, 'w') as f: r = subprocess.run(['/usr/bin/time', '-f', 'PEAK_KB %M'] + cmd, stdout=f, stderr=subprocess.STDOUT)
    kb = next((int(l.split()[1]) for l in log.read_text().splitlines()[::-1] if l.startswith('PEAK_KB')), None)
    return dict(peak_mb=round(kb / 1024) if kb else None, seconds=round(time.time() - t, 1), rc=r.returncode, log=str(log))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--size', type=int, default=20000)
    ap.add_argument('--work', type=Path, default=Path('/tmp/bench_memory'))
    ap.add_argument('--stages', nargs='+', default=['inventory', 'normalize', 'masks', 'dataset', 'predict'])
    ap.add_argument('--goal-mb', type=int, default=2048)
    a = ap.parse_args(argv)
    data, run = a.work/'data', a.work/'run'; a.work.mkdir(parents=True, exist_ok=True)
    if not (data/'ilastik').exists(): t = time.time(); img = write_inputs(data, a.size); print(f'inputs written in {time.time() - t:.0f} s')
    img = next((data/'GO_01').glob('*.tif'))
    res = {}
    for st in a.stages:
        if st == 'predict':
            model = small_model(a.work/'model')
            cmd = CLI + ['predict', '--model', str(model), '--images', str(img), '--out', str(a.work/'pred'), '--no-figures',
                         '--tta', 'none', '--tta-scales', '1', '--nm-per-px', '1.0']
        else:
            cmd = CLI + [st, '--out', str(run), '--data', str(data), '--force']
        res[st] = peak(cmd, a.work/f'{st}.log')
        print(f"{st:10s} peak {res[st]['peak_mb']} MB  {res[st]['seconds']} s  rc {res[st]['rc']}", flush=True)
    out = dict(size=a.size, image_mb=round(a.size * a.size * 2 / 2**20), goal_mb=a.goal_mb, stages=res,
               within_goal=[s for s, r in res.items() if r['peak_mb'] and r['peak_mb'] <= a.goal_mb])
    (a.work/'memory.json').write_text(json.dumps(out, indent=1))
    print(f"\n{a.size}x{a.size} uint16 ({out['image_mb']} MB); goal <= {a.goal_mb} MB per stage")
    for s, r in res.items(): print(f"  {s:10s} {r['peak_mb']!s:>7} MB  {'ok' if r['peak_mb'] and r['peak_mb'] <= a.goal_mb else 'OVER'}  ({r['seconds']} s, rc {r['rc']})")


if __name__ == '__main__': main()

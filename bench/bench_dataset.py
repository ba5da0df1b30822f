"""Benchmark of stage 03 (ilastik labels -> U-Net dataset) on generated 2048x2048 label/image pairs.

Prints images per second, peak memory and the ratio to a bare baseline that calls the same library functions
once per image in a plain loop (h5py read, tifffile read, nearest resize, SciPy EDT fill, scikit-image opening,
one-hot, np.save, OpenCV INTER_AREA + PNG write), without checks, QC, atomic writes, previews or ilastik files.
Each measurement runs in a fresh process so that its peak RSS is its own (the best time of --repeat runs is kept);
"memory flat in the number of images" is checked by running the stage on N and on 2N images. The stage includes
its fixed per-run cost (the dataset figures, dataset.json); the "marginal" rate (2N - N images over the time
difference) is the per-image throughput without it. "stage-minimal" turns off the colour previews and the
ilastik re-export (both extra outputs the baseline does not write).

    .venv/bin/python bench/bench_dataset.py            # N = 6 and 12 images of 2048x2048
    .venv/bin/python bench/bench_dataset.py --n 4 --size 1024
"""
from __future__ import annotations
import argparse, json, os, platform, subprocess, sys, tempfile, time
from pathlib import Path

os.environ.setdefault('MPLBACKEND', 'Agg')
os.environ.setdefault('HF_HUB_OFFLINE', '1')


def _rss_mb(field: str = 'VmRSS') -> float:
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'): return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(root: Path, n: int, size: int, seed: int = 0):
    "n pairs: a 16-bit micrograph-like image and labels 1..3 with unlabelled bands and specks."
    import cv2, numpy as np
    from accords_tem.io import write_ilastik_h5, write_tem_tiff
    rng = np.random.default_rng(seed)
    for i in range(n):
        f = cv2.resize(rng.standard_normal((size // 64, size // 64)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
        lab = np.where(f < -0.4, 2, np.where(f > 0.5, 3, 1)).astype(np.uint8)            # holes, film, flakes
        img = np.where(lab == 2, 52000, np.where(lab == 3, 20000, 33000)).astype(np.float32)
        img = np.clip(img + rng.normal(0, 3000, img.shape), 0, 65535).astype(np.uint16)
        gaps = lab.copy()
        for _ in range(40):                                                                # unlabelled bands ...
            y, x = rng.integers(0, size, 2); gaps[y:y + size // 40, x:x + size // 8] = 0
        ys, xs = rng.integers(0, size, (2, 200)); gaps[ys, xs] = 2                         # ... and specks of hole
        stem = f'AC_UT_GO_02_01_UO_2000X_{i:04d}'
        write_tem_tiff(root / 'GO_02' / f'{stem}.tif', img, compression=None)
        write_ilastik_h5(root / 'ilastik' / f'{stem}_Labels.h5', gaps[..., None], 'yxc')


def baseline(root: Path, out: Path, target: int = 512, radius: int = 2):
    "The same library calls, once per image, in a plain loop."
    import cv2, h5py, numpy as np, tifffile
    from scipy import ndimage as ndi
    from skimage import morphology
    (out / 'images').mkdir(parents=True, exist_ok=True); (out / 'masks').mkdir(parents=True, exist_ok=True)
    fp = morphology.disk(radius)
    for lf in sorted((root / 'ilastik').glob('*_Labels.h5')):
        stem = lf.name[:-len('_Labels.h5')]
        with h5py.File(lf, 'r') as f: lab = f['exported_data'][()][..., 0]
        img = tifffile.imread(root / 'GO_02' / f'{stem}.tif')
        iy = ((np.arange(target) + 0.5) * lab.shape[0] / target).astype(int)
        ix = ((np.arange(target) + 0.5) * lab.shape[1] / target).astype(int)
        small = lab[iy[:, None], ix[None, :]]
        idx = ndi.distance_transform_edt(small == 0, return_distances=False, return_indices=True)
        filled = small[tuple(idx)]
        m = filled == 2
        filled[m & ~morphology.opening(m, fp, mode='ignore')] = 3
        onehot = (filled[None] == np.array([1, 2, 3]).reshape(-1, 1, 1)).astype(np.uint8)
        np.save(out / 'masks' / f'{stem}.npy', onehot)
        im = cv2.resize(img, (target, target), interpolation=cv2.INTER_AREA).astype(np.float32)
        im = (im - im.min()) / max(float(im.max() - im.min()), 1) * 255
        cv2.imwrite(str(out / 'images' / f'{stem}.png'), np.rint(im).astype(np.uint8))


def child(mode: str, root: Path, out: Path) -> dict:
    "One measurement, in this (fresh) process."
    import cv2, h5py, numpy as np, pandas, scipy.ndimage, skimage.morphology, tifffile, matplotlib.pyplot  # noqa: F401
    from accords_tem.core import load_config
    from accords_tem import postprocessing as pp, io, masks, normalization  # noqa: F401 (imports are not timed)
    rss0 = _rss_mb()
    n = len(list((root / 'ilastik').glob('*_Labels.h5')))
    t, c = time.perf_counter(), time.process_time()
    if mode == 'baseline': baseline(root, out)
    else:
        ov = {'data.root': str(root), 'data.ground_truth': None, 'postprocessing.examples': 0}
        if mode == 'stage-minimal': ov.update({'postprocessing.preview': False, 'postprocessing.ilastik_export': False})
        s = pp.run_postprocessing(load_config(overrides=ov), out, force=True, progress=False)
        assert s['written'] == n and s['failed'] == 0, s
    dt, dc = time.perf_counter() - t, time.process_time() - c
    return dict(mode=mode, images=n, seconds=dt, cpu_seconds=dc, images_per_s=n / dt, rss_after_imports_mb=rss0,
                peak_rss_mb=_rss_mb('VmHWM'), peak_over_imports_mb=_rss_mb('VmHWM') - rss0)


def run_child(mode: str, root: Path, out: Path) -> dict:
    r = subprocess.run([sys.executable, __file__, '--child', mode, '--root', str(root), '--out', str(out)],
                       capture_output=True, text=True, check=False)
    if r.returncode: raise SystemExit(f'{mode} failed:\n{r.stderr[-3000:]}')
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=6, help='images in the small batch (the large one has 2n)')
    ap.add_argument('--size', type=int, default=2048, help='side of the generated images and labels')
    ap.add_argument('--repeat', type=int, default=3, help='runs per measurement; the fastest is kept (shared machines are noisy)')
    ap.add_argument('--child'); ap.add_argument('--root'); ap.add_argument('--out')
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, Path(a.root), Path(a.out)))); return
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        t = time.perf_counter()
        generate(d / 'big', 2 * a.n, a.size)
        small = d / 'small'; (small / 'GO_02').mkdir(parents=True); (small / 'ilastik').mkdir()
        for p in sorted((d / 'big' / 'ilastik').glob('*.h5'))[:a.n]:                       # the first n of the same pairs
            stem = p.name[:-len('_Labels.h5')]
            os.link(p, small / 'ilastik' / p.name); os.link(d / 'big' / 'GO_02' / f'{stem}.tif', small / 'GO_02' / f'{stem}.tif')
        print(f'generated {2 * a.n} pairs of {a.size}x{a.size} (uint16 TIFF + uint8 ilastik labels) in {time.perf_counter() - t:.1f} s')
        res = []
        for mode, root in [('baseline', small), ('baseline', d / 'big'), ('stage', small), ('stage', d / 'big'),
                           ('stage-minimal', small), ('stage-minimal', d / 'big')]:
            runs = [run_child(mode, root, d / f'out_{mode}_{root.name}_{k}') for k in range(a.repeat)]
            best = min(runs, key=lambda r: r['seconds'])
            best['cpu_seconds'] = min(r['cpu_seconds'] for r in runs)
            best.update(peak_rss_mb=max(r['peak_rss_mb'] for r in runs), peak_over_imports_mb=max(r['peak_over_imports_mb'] for r in runs))
            res.append(best)
    base = {r['images']: r['seconds'] for r in res if r['mode'] == 'baseline'}
    basec = {r['images']: r['cpu_seconds'] for r in res if r['mode'] == 'baseline'}
    print(f"\nstage 03 on {a.size}x{a.size} -> 512x512, {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"best of {a.repeat} runs, each in a fresh process (peak: the largest)")
    print(f"{'mode':14s} {'images':>6s} {'wall s':>7s} {'cpu s':>7s} {'img/s':>7s} {'peak RSS MB':>12s} {'peak-imports':>13s} "
          f"{'x base wall':>12s} {'x base cpu':>11s}")
    for r in res:
        print(f"{r['mode']:14s} {r['images']:6d} {r['seconds']:7.2f} {r['cpu_seconds']:7.2f} {r['images_per_s']:7.2f} {r['peak_rss_mb']:12.0f} "
              f"{r['peak_over_imports_mb']:13.0f} {r['seconds'] / base[r['images']]:12.2f} {r['cpu_seconds'] / basec[r['images']]:11.2f}")
    for mode in ('baseline', 'stage', 'stage-minimal'):
        a1, a2 = [r for r in res if r['mode'] == mode]
        marg = (a2['images'] - a1['images']) / max(a2['seconds'] - a1['seconds'], 1e-9)
        cpu_img = (a2['cpu_seconds'] - a1['cpu_seconds']) / (a2['images'] - a1['images'])
        print(f"{mode:14s}: marginal {marg:.2f} img/s, {cpu_img:.3f} cpu s/img; peak memory {a1['images']} -> {a2['images']} images: "
              f"{a1['peak_over_imports_mb']:.0f} -> {a2['peak_over_imports_mb']:.0f} MB over imports "
              f"({'flat' if a2['peak_over_imports_mb'] < 1.25 * a1['peak_over_imports_mb'] + 20 else 'GROWS'})")


if __name__ == '__main__':
    main()

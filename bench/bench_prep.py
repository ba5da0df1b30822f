"""Benchmark of the dataset-preparation stages on generated 2048x2048 micrographs (not a test).

    .venv/bin/python bench/bench_prep.py                   # stages 01 and 02, 4 and 8 images, 2048 px
    .venv/bin/python bench/bench_prep.py --stages 01 --n 4 8 16 --size 1024 --figures

For each stage and batch size it prints images per second of the stage function (`run_<stage>`, figures and
QA off unless --figures), the same for a *baseline*: a bare loop over the same library calls with the same
reads and writes and nothing else (01: tifffile.imread -> NumPy min-max -> cv2 CLAHE -> cv2.imencode PNG;
02: h5py read -> `p > t` per class -> PNG + .npy), their ratio (stage time / baseline time: the cost of
pairing, checks, bookkeeping and atomic writes), and peak memory: the peak of traced Python/NumPy allocations
(tracemalloc) and the process's peak resident size (ru_maxrss, imports included). Each measurement runs in
a fresh process so that peaks do not carry over. Memory that does not grow from n to 2n images shows that
the stage streams.

The inputs are made once (`make_pool`: 16-bit micrographs from accords_tem.synthetic.generate with their
ilastik-style probabilities and class maps; a simple generator when synthetic is not installed) and shared by
all stages. Stages are registered in STAGES: each entry names the stage function (`stage`, called with
figures on or off) and its baseline (`baseline`). Stage 03 (postprocessing) can add its entry here.
"""
from __future__ import annotations
import argparse, json, multiprocessing as mp, os, platform, sys, tempfile, time
from pathlib import Path

os.environ.setdefault('MPLBACKEND', 'Agg')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import numpy as np

CLASSES = ['GFM', 'carbonhole', 'undefined']


# ---------------------------------------------------------------- generated inputs
def scene(size:int, seed:int) -> tuple[np.ndarray, np.ndarray]:
    "A 16-bit micrograph-like image and its class map (1 GFM flakes, 2 holes, 3 film): smooth film, dark flakes, bright holes, noise."
    import cv2
    rng = np.random.default_rng(seed)
    cls = np.full((size, size), 3, np.uint8)
    for _ in range(4):  # holes in the carbon film
        c = rng.integers(0, size, 2); r = int(rng.integers(size // 16, size // 7))
        cv2.circle(cls, (int(c[0]), int(c[1])), r, 2, -1)
    for _ in range(10):  # flakes: random polygons
        c = rng.integers(0, size, 2); r = rng.integers(size // 30, size // 9)
        ang = np.sort(rng.uniform(0, 2 * np.pi, 7))
        pts = np.stack([c[0] + r * np.cos(ang) * rng.uniform(0.6, 1, 7), c[1] + r * np.sin(ang) * rng.uniform(0.6, 1, 7)], -1)
        cv2.fillPoly(cls, [pts.astype(np.int32)], 1)
    level = np.array([0, 9000, 30000, 18000], np.float32)[cls]
    yy = np.linspace(0, 1, size, dtype=np.float32)
    img = level + 3000 * yy[:, None] + rng.normal(0, 1200, (size, size)).astype(np.float32)
    return np.clip(img, 0, 65535).astype(np.uint16), cls


def probabilities(cls:np.ndarray, seed:int) -> np.ndarray:
    "ilastik-like probabilities (yxc, float32, sum 1): a blurred one-hot map with noise."
    import cv2
    rng = np.random.default_rng(seed)
    p = np.stack([cv2.GaussianBlur((cls == k).astype(np.float32), (0, 0), 4) for k in (1, 2, 3)], -1)
    p += rng.uniform(0, 0.15, p.shape).astype(np.float32)
    p /= p.sum(-1, keepdims=True)
    return p


def _generated(i:int, size:int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    "Image, class map, probabilities and generator name of image i: accords_tem.synthetic when installed, else `scene`."
    try:
        from accords_tem import synthetic
        m = synthetic.generate(i, size=size, magnification=5000, dtype='uint16')
        return m.image, m.classes, synthetic.fake_probabilities(m, np.random.default_rng(i)), 'accords_tem.synthetic.generate'
    except ImportError:
        img, cls = scene(size, i)
        return img, cls, probabilities(cls, i), 'bench_prep.scene'


def make_pool(pool:Path, n:int, size:int) -> str:
    "n images in pool/GO_01/, their probabilities in pool/ilastik/ and class maps in pool/ground_truth/ (made once)."
    import cv2, tifffile
    from accords_tem.io import write_ilastik_h5
    for sub in ['GO_01', 'ilastik', 'ground_truth']: (pool/sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        stem = f'AC_UT_GO_01_01_UO_5000X_{i:04d}'
        img, cls, p, how = _generated(i, size)
        tifffile.imwrite(pool/'GO_01'/f'{stem}.tif', img)
        cv2.imwrite(str(pool/'ground_truth'/f'{stem}_classes.png'), cls)
        write_ilastik_h5(pool/'ilastik'/f'{stem}_Probabilities.h5', p, 'yxc', compression=None)
    return how


def make_data(root:Path, pool:Path, n:int):
    "A data root with the first n images of the pool (hard links: no copies)."
    for sub in ['GO_01', 'ilastik', 'ground_truth']:
        (root/sub).mkdir(parents=True, exist_ok=True)
        for f in sorted((pool/sub).iterdir())[:n]: os.link(f, root/sub/f.name)


# ---------------------------------------------------------------- stage 01
def stage_01(root:Path, out:Path, figures:bool):
    from accords_tem.core import load_config
    from accords_tem.normalization import run_normalization
    cfg = load_config(None, {'data.root': str(root), 'normalization.figures': figures})
    s = run_normalization(cfg, out, force=True, progress=False)
    assert s['failed'] == 0, s
    return s['images']


def baseline_01(root:Path, out:Path):
    import cv2, tifffile
    files = sorted((root/'GO_01').glob('*.tif'))
    cl = cv2.createCLAHE(clipLimit=0.01 * 256, tileGridSize=(8, 8))
    (out/'base').mkdir(parents=True, exist_ok=True)
    for f in files:
        x = tifffile.imread(f).astype(np.float32)
        lo, hi = x.min(), x.max()
        u8 = np.clip(np.rint((x - lo) * (255 / (hi - lo))), 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode('.png', cl.apply(u8), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        (out/'base'/f'{f.stem}.png').write_bytes(buf.tobytes())
    return len(files)


def stage_01_skimage(root:Path, out:Path, figures:bool):
    from accords_tem.core import load_config
    from accords_tem.normalization import run_normalization
    cfg = load_config(None, {'data.root': str(root), 'normalization.figures': figures, 'normalization.backend': 'skimage'})
    return run_normalization(cfg, out, force=True, progress=False)['images']


def baseline_01_skimage(root:Path, out:Path):
    "The single library call per image: skimage.exposure.equalize_adapthist in a bare loop (read, call, write)."
    import cv2, tifffile
    from skimage.exposure import equalize_adapthist
    files = sorted((root/'GO_01').glob('*.tif'))
    (out/'base').mkdir(parents=True, exist_ok=True)
    for f in files:
        y = (equalize_adapthist(tifffile.imread(f), clip_limit=0.01) * 255).astype(np.uint8)
        ok, buf = cv2.imencode('.png', y, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        (out/'base'/f'{f.stem}.png').write_bytes(buf.tobytes())
    return len(files)


# ---------------------------------------------------------------- stage 02
def stage_02(root:Path, out:Path, figures:bool):
    from accords_tem.core import load_config
    from accords_tem.masks import run_masks
    cfg = load_config(None, {'data.root': str(root), 'masks.qa': figures, 'masks.contact_sheet_max': 48})
    s = run_masks(cfg, out, force=True, progress=False)
    assert s['failed'] == 0, s
    return s['paired']


def baseline_02(root:Path, out:Path):
    import cv2, h5py
    files = sorted((root/'ilastik').glob('*_Probabilities.h5'))
    for f in files:
        with h5py.File(f, 'r') as h: p = h['exported_data'][()]
        stem = f.name[:-len('_Probabilities.h5')]
        for c, name in enumerate(CLASSES):
            m = p[..., c] > 0.5
            (out/name).mkdir(parents=True, exist_ok=True)
            ok, buf = cv2.imencode('.png', m.astype(np.uint8) * 255, [cv2.IMWRITE_PNG_COMPRESSION, 1])
            (out/name/f'{stem}.png').write_bytes(buf.tobytes())
            np.save(out/name/f'{stem}.npy', m)
    return len(files)


STAGES = {
    '01': dict(name='normalization (CLAHE opencv)', stage=stage_01, baseline=baseline_01),
    '01sk': dict(name='normalization (CLAHE skimage)', stage=stage_01_skimage, baseline=baseline_01_skimage),
    '02': dict(name='masks', stage=stage_02, baseline=baseline_02),
}


# ---------------------------------------------------------------- measurement (one fresh process each)
def _peak_rss_mb() -> float:
    "Peak resident size of this process (VmHWM: reset at exec, unlike ru_maxrss, which a spawned child inherits)."
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('VmHWM:'): return int(line.split()[1]) / 1024
    except OSError: pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(kind:str, key:str, root:str, out:str, figures:bool, trace:bool, q):
    try: _measure_here(kind, key, root, out, figures, trace, q)
    except BaseException as e:
        import traceback; q.put(dict(error=traceback.format_exc())); raise


def _measure_here(kind:str, key:str, root:str, out:str, figures:bool, trace:bool, q):
    import resource, tracemalloc
    import cv2, h5py, tifffile, pandas, matplotlib.pyplot, skimage.exposure  # noqa: F401  (imports outside the timing)
    import accords_tem.normalization, accords_tem.masks  # noqa: F401
    fn = STAGES[key][kind]
    args = (Path(root), Path(out)) + ((figures,) if kind == 'stage' else ())
    rss0 = _peak_rss_mb()
    if trace: tracemalloc.start()
    t0 = time.perf_counter()
    n = fn(*args)
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    q.put(dict(n=n, seconds=dt, traced_peak_mb=None if peak is None else peak / 2**20,
               rss_peak_mb=_peak_rss_mb(), rss_after_imports_mb=rss0))


def measure(kind:str, key:str, root:Path, out:Path, figures:bool=False, trace:bool=False) -> dict:
    ctx = mp.get_context('spawn')
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(kind, key, str(root), str(out), figures, trace, q))
    p.start(); r = q.get(); p.join()
    if 'error' in r: raise RuntimeError(f'{kind} {key} failed in the child process:\n{r["error"]}')
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--stages', nargs='+', default=['01', '02'], choices=list(STAGES))
    ap.add_argument('--n', nargs='+', type=int, default=[4, 8], help='batch sizes (memory should not grow with them)')
    ap.add_argument('--size', type=int, default=2048)
    ap.add_argument('--figures', action='store_true', help='also time the stages with their figures (comparison/QA)')
    ap.add_argument('--json', type=Path, default=None, help='write the results here')
    a = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix='bench_prep_') as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        how = make_pool(tmp/'pool', max(a.n), a.size)
        print(f'# bench_prep: {a.size}x{a.size} px 16-bit images from {how} ({time.perf_counter() - t0:.0f} s to make), '
              f'batches {a.n}; {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, '
              f'Python {platform.python_version()}', flush=True)
        for key in a.stages:
            st = STAGES[key]
            print(f'\n## {key} {st["name"]}')
            print(f'{"n":>3} {"variant":<22} {"s":>7} {"img/s":>7} {"ratio":>6} {"traced MB":>10} {"RSS MB":>8}')
            for n in a.n:
                root = tmp/f'data_{n}'
                if not root.exists(): make_data(root, tmp/'pool', n)
                variants = [('baseline', 'baseline', False), ('stage', 'stage', False)]
                if a.figures: variants.append(('stage + figures', 'stage', True))
                base_s = None
                for label, kind, fig in variants:
                    out = tmp/f'out_{key}_{n}_{kind}_{fig}'
                    t = measure(kind, key, root, out, fig)
                    m = measure(kind, key, root, tmp/(out.name + '_mem'), fig, trace=True)
                    if kind == 'baseline': base_s = t['seconds']
                    row = dict(stage=key, n=n, variant=label, seconds=round(t['seconds'], 3),
                               images_per_s=round(t['n'] / t['seconds'], 3), ratio=round(t['seconds'] / base_s, 2),
                               traced_peak_mb=round(m['traced_peak_mb'], 1), rss_peak_mb=round(t['rss_peak_mb'], 1),
                               rss_after_imports_mb=round(t['rss_after_imports_mb'], 1))
                    results.append(row)
                    print(f'{n:>3} {label:<22} {row["seconds"]:>7.2f} {row["images_per_s"]:>7.2f} {row["ratio"]:>6.2f} '
                          f'{row["traced_peak_mb"]:>10.1f} {row["rss_peak_mb"]:>8.0f}', flush=True)
    print('\nratio = stage seconds / baseline seconds (same images). traced MB = tracemalloc peak (NumPy and Python);'
          ' RSS MB = peak resident size of the process, imports included.')
    if a.json: a.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()

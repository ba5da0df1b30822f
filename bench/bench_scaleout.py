"""Scale-out of `accords-tem predict`: images/s of the plain loop and of the Dask path (core.map_images) with 1 and 2
local workers on the same folder, the Dask path's overhead at one worker, and the peak memory of each worker.

The model is the default U-Net of configs/default.yaml with random weights (speed does not depend on them); the images are
synthetic 512x512 8-bit micrographs (noise and bright disks); prediction is `unet.predict_images` as `accords-tem predict`
runs it (tiles 512, overlap 128, no TTA, no figures), each run into a fresh folder (no done markers to skip). Every timed
run includes loading the model (once per worker and job) and writing the outputs; before it, the same process or cluster
predicts 2 other images (imports, first-call set-up), and starting the cluster, that warm-up and closing it are timed
apart (`startup_s`): a one-off cost per job, not per image. Each configuration runs --repeat times, interleaved, and the
best time counts (the machine may be shared). Runs: the plain loop with 1 and with all torch threads; a LocalCluster of 1 worker with all threads (what
`--workers 1` would give if it did not take the plain loop: the Dask overhead), 1 worker with 1 thread, and N workers
with cores // N threads each (what `--workers N` gives), all started as `core.dask_client` starts them (without the nanny's MALLOC_TRIM_THRESHOLD_).
The load average is printed: on a shared machine the ratios
are only as good as the cores that were free.

    .venv/bin/python bench/bench_scaleout.py --images 12 --out bench/results/scaleout.json
    .venv/bin/python bench/bench_scaleout.py --images 36 --one-thread --out bench/results/scaleout_36.json
"""
from __future__ import annotations
import argparse, json, os, platform, resource, shutil, tempfile, time
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')

def _peak_rss_mb(dask_worker=None) -> float:
    "Peak resident memory of this process (VmHWM: ru_maxrss would carry the parent's peak over into a spawned worker)."
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'): return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def _cpu_s(dask_worker=None) -> float:
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--images', type=int, default=12); ap.add_argument('--size', type=int, default=512)
    ap.add_argument('--workers', type=int, default=2); ap.add_argument('--repeat', type=int, default=2)
    ap.add_argument('--one-thread', action='store_true', help='only the 1-thread runs: plain loop, 1 worker, N workers (cores // N threads)')
    ap.add_argument('--out', default=None, help='write the results as JSON here')
    a = ap.parse_args(argv)
    import numpy as np, torch
    from PIL import Image
    from distributed import Client, LocalCluster
    from dask import config as dask_config
    from accords_tem.core import load_config, _set_threads, TRIM_KEY
    from accords_tem.seg_train import build_model, save_model
    from accords_tem.unet import predict_images
    cores = os.cpu_count()
    u = load_config(None).section('unet').model_copy(update=dict(encoder_weights=None))
    tmp = Path(tempfile.mkdtemp(prefix='bench_scaleout_'))
    torch.manual_seed(0); save_model(tmp/'model', build_model(u, weights=False)[0], u)
    rng = np.random.default_rng(0); (tmp/'imgs').mkdir()
    yy, xx = np.mgrid[:a.size, :a.size]
    (tmp/'warm').mkdir()
    for i in range(a.images + 2):
        im = rng.normal(90, 20, (a.size, a.size))
        for _ in range(6):
            cy, cx, r = rng.integers(0, a.size, 2).tolist() + [int(rng.integers(10, 50))]
            im[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] += 80
        Image.fromarray(np.clip(im, 0, 255).astype(np.uint8)).save(tmp/('imgs' if i < a.images else 'warm')/f'im{i:03d}.png')
    kw = dict(tta='none', figures=False, device='cpu')
    rows, k = [], [0]
    def record(name, workers, threads, secs, start=None, peak=None, cpu=None):
        r = dict(run=name, workers=workers, torch_threads=threads, seconds=round(secs, 2), images_per_s=round(a.images / secs, 3),
                 startup_s=None if start is None else round(start, 2), peak_rss_mb_per_process=peak, cpu_s=cpu,
                 load_avg=round(os.getloadavg()[0], 2))
        rows.append(r); print(json.dumps(r), flush=True)
    def fresh(): k[0] += 1; return tmp/f'out{k[0]}'
    def plain(threads):
        torch.set_num_threads(threads)
        predict_images(tmp/'model', tmp/'warm', fresh(), **kw)
        c0 = _cpu_s(); t = time.perf_counter(); o = fresh()
        predict_images(tmp/'model', tmp/'imgs', o, **kw)
        record(f'plain loop, {threads} thread(s)', 1, threads, time.perf_counter() - t, peak=[round(_peak_rss_mb())], cpu=round(_cpu_s() - c0, 1))
        return o
    def dask(workers, threads):
        t0 = time.perf_counter()
        with dask_config.set({TRIM_KEY: None}):   # as core.dask_client starts its workers (no MALLOC_TRIM_THRESHOLD_)
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        client.run(_set_threads, {w: threads for w in client.nthreads()})
        predict_images(tmp/'model', tmp/'warm', fresh(), client=client, **kw)
        t_up = time.perf_counter() - t0; c0 = sum(client.run(_cpu_s).values()); t = time.perf_counter(); o = fresh()
        predict_images(tmp/'model', tmp/'imgs', o, client=client, **kw)
        secs = time.perf_counter() - t
        peak = sorted(round(v) for v in client.run(_peak_rss_mb).values()); cpu = round(sum(client.run(_cpu_s).values()) - c0, 1)
        t1 = time.perf_counter(); client.close(); cluster.close(); t_up += time.perf_counter() - t1
        record(f'dask, {workers} worker(s) x {threads} thread(s)', workers, threads, secs, t_up, peak, cpu)
        return o
    print(f'{a.images} images {a.size}x{a.size}, U-Net {u.encoder} decoder {u.decoder_channels}, {cores} cores, torch {torch.__version__}, '
          f'load average {os.getloadavg()[0]:.2f} at start', flush=True)
    outs = []
    for _ in range(a.repeat):
        outs += [plain(1), dask(1, 1), dask(a.workers, max(1, cores // a.workers))] + ([] if a.one_thread else [plain(cores), dask(1, cores)])
    # the same outputs from every run (masks byte-equal)
    ref = sorted((outs[0]/'masks').iterdir())
    same = all((o/'masks'/p.name).read_bytes() == p.read_bytes() for o in outs[1:] for p in ref)
    by = {}
    for r in rows:   # the best of the repeats
        if r['run'] not in by or r['seconds'] < by[r['run']]['seconds']: by[r['run']] = r
    g = lambda k: by[k]['images_per_s']
    res = dict(images=a.images, size=a.size, cores=cores, encoder=u.encoder, platform=platform.platform(), torch=torch.__version__,
               runs=rows, best=list(by.values()), masks_identical=same,
               ratio_workers_vs_1_worker_1_thread=round(g(f'dask, {a.workers} worker(s) x {max(1, cores // a.workers)} thread(s)') / g('dask, 1 worker(s) x 1 thread(s)'), 2),
               **({} if a.one_thread else dict(
               ratio_workers_vs_plain_all_threads=round(g(f'dask, {a.workers} worker(s) x {max(1, cores // a.workers)} thread(s)') / g(f'plain loop, {cores} thread(s)'), 2),
               dask_overhead_1_worker=round(by[f'dask, 1 worker(s) x {cores} thread(s)']['seconds'] / by[f'plain loop, {cores} thread(s)']['seconds'], 3))),
               dask_overhead_1_worker_1_thread=round(by['dask, 1 worker(s) x 1 thread(s)']['seconds'] / by['plain loop, 1 thread(s)']['seconds'], 3))
    print(json.dumps({k: v for k, v in res.items() if k not in ('runs', 'best')}, indent=1))
    if a.out: Path(a.out).write_text(json.dumps(res, indent=1) + '\n')
    shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__':
    main()

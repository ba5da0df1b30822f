"""Benchmark of U-Net prediction (stage 05): images/s on 512x512 images at batch 1 and larger batches, with and
without TTA, next to a bare `model(x)` forward pass of the same model in the same run (the ratio is our overhead),
and the peak memory of predicting one 8192x8192 image by tiles (measured in a fresh subprocess).

    .venv/bin/python bench/bench_unet.py [--model RUN/unet/model] [--threads 2] [--big 8192] [--train] [--device cuda] [--json out.json]

`--train` adds training images/s (512x512 patches, AdamW steps with the precision `unet.precision: auto` picks on that
device), the bare steps next to fastai's loop being out of scope: it is the model's own cost. On CUDA the big-image run also
reports the peak GPU memory (torch.cuda.max_memory_allocated).

Not a test: numbers depend on the machine (and on what else runs on it)."""
import argparse, json, os, resource, subprocess, sys, time
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
import numpy as np
import torch


def _model(model_dir, device):
    from accords_tem.seg_data import UnetConfig
    from accords_tem.seg_train import build_model, load_model
    if model_dir:
        sm = load_model(model_dir, device); return sm.model, sm.u
    u = UnetConfig(encoder='tu-tf_efficientnet_lite0', encoder_weights=None)   # the default architecture; weights do not matter here
    return build_model(u, weights=False)[0].to(device).eval(), u


def _rate(fn, n_images, min_time=3.0, min_reps=2):
    "images/s of fn() (which handles n_images), after one warm-up call."
    fn(); reps, t0 = 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - t0 < min_time:
        fn(); reps += 1
    return n_images * reps / (time.perf_counter() - t0)


def throughput(model, u, device, batches=(1, 2, 4, 8), size=512, amp=None):
    from accords_tem.seg_eval import predict_batch, predict_tiled, predict_scales
    from accords_tem.training import cpu_has_bf16
    if amp is None: amp = device.type == 'cuda' or (device.type == 'cpu' and cpu_has_bf16())
    rng = np.random.default_rng(0)
    rows = []
    for bs in batches:
        imgs = [(rng.random((size, size)) * 255).astype(np.uint8) for _ in range(bs)]
        x = ((torch.from_numpy(np.stack(imgs).astype(np.float32))[:, None] / 255 - u.norm_mean) / u.norm_std).to(device)

        @torch.no_grad()
        def bare():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                y = torch.sigmoid(model(x).float())
            if device.type == 'cuda': torch.cuda.synchronize()
            return y
        r = dict(batch=bs, bare_model_ips=_rate(bare, bs))
        for tta in ('none', 'flips', 'd4'):
            if bs == 1:   # one image: the tiled path (what `accords-tem predict` runs on a file)
                f = lambda: predict_tiled(model, imgs[0], tile=u.tile_size, overlap=u.tile_overlap, batch=u.pred_batch, tta=tta,
                                          mean=u.norm_mean, std=u.norm_std, device=device, amp=amp)
            else:
                f = lambda: predict_batch(model, imgs, tta=tta, mean=u.norm_mean, std=u.norm_std, device=device, amp=amp)
            r[f'ours_{tta}_ips'] = _rate(f, bs)
        if bs == 1:   # multi-scale (tta_scales [0.5, 1.0]) with flips: the default configuration's prediction
            r['ours_flips_scales_ips'] = _rate(lambda: predict_scales(model, imgs[0], [0.5, 1.0], tile=u.tile_size, overlap=u.tile_overlap,
                                                                      batch=u.pred_batch, tta='flips', mean=u.norm_mean, std=u.norm_std,
                                                                      device=device, amp=amp), 1)
        r['ratio_no_tta'] = r['bare_model_ips'] / r['ours_none_ips']
        rows.append(r)
        ms = f" | flips + scales 0.5, 1 {r['ours_flips_scales_ips']:.2f}" if 'ours_flips_scales_ips' in r else ''
        print(f"batch {bs}: bare model {r['bare_model_ips']:.2f} img/s | ours no TTA {r['ours_none_ips']:.2f} "
              f"(bare/ours {r['ratio_no_tta']:.2f}x) | flips TTA {r['ours_flips_ips']:.2f} | d4 TTA {r['ours_d4_ips']:.2f}{ms}", flush=True)
    return rows


def train_rate(model, u, device, batch=8, size=512, steps=5):
    "Training images/s: forward + backward + AdamW step on random 512x512 batches, in the precision `auto` picks on this device."
    from accords_tem.training import resolve_precision
    prec = resolve_precision('auto', device)
    dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(prec)
    model = model.train(); opt = torch.optim.AdamW(model.parameters(), 1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=prec == 'fp16')
    x = torch.randn(batch, 1, size, size, device=device); y = (torch.rand(batch, model.segmentation_head[0].out_channels, size, size, device=device) > 0.5).float()
    def step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).float(), y)
        opt.zero_grad(); scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
        if device.type == 'cuda': torch.cuda.synchronize()
        return loss
    r = _rate(step, batch, min_time=3.0, min_reps=steps)
    model.eval()
    print(f"training: {r:.2f} img/s at batch {batch}, {size}x{size}, precision {prec}", flush=True)
    return dict(train_ips=r, batch=batch, size=size, precision=prec)


def big_image_child(args):
    "Run in a subprocess: predict one big image by tiles and report peak RSS."
    torch.set_num_threads(args.threads)
    from accords_tem.seg_eval import predict_scales
    device = torch.device(args.device)
    model, u = _model(args.model, device)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    img = np.random.default_rng(0).integers(0, 255, (args.big, args.big), dtype=np.uint8)
    t0 = time.perf_counter()
    prob, unc = predict_scales(model, img, args.scales, tile=u.tile_size, overlap=u.tile_overlap, batch=u.pred_batch, tta='none',
                               device=device, out_dir=args.memmap_dir)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = round(torch.cuda.max_memory_allocated() / 2**20) if device.type == 'cuda' else None
    print(json.dumps(dict(size=args.big, seconds=round(dt, 1), peak_rss_mb=round(peak), rss_before_mb=round(rss0), peak_gpu_mb=gpu,
                          tile=u.tile_size, overlap=u.tile_overlap, memmap=bool(args.memmap_dir), scales=args.scales, out_shape=list(prob.shape))))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', default=None, help='a trained model folder (default: the default architecture, random weights)')
    p.add_argument('--threads', type=int, default=2); p.add_argument('--device', default='cpu')
    p.add_argument('--batches', type=int, nargs='+', default=[1, 2, 4, 8])
    p.add_argument('--big', type=int, default=8192); p.add_argument('--memmap-dir', default=None)
    p.add_argument('--scales', type=float, nargs='+', default=[1.0], help='tta_scales of the big-image prediction (e.g. 0.5 1)')
    p.add_argument('--skip-big', action='store_true'); p.add_argument('--skip-throughput', action='store_true')
    p.add_argument('--train', action='store_true', help='also training images/s (512x512)')
    p.add_argument('--train-batch', type=int, default=8)
    p.add_argument('--child', action='store_true', help=argparse.SUPPRESS); p.add_argument('--json', default=None)
    a = p.parse_args(argv)
    if a.child: return big_image_child(a)
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    from accords_tem.core import device_description
    out = dict(device=device_description(device), threads=torch.get_num_threads(), torch=torch.__version__)
    print(f"device: {out['device']}, threads {out['threads']}", flush=True)
    if not a.skip_throughput:
        model, u = _model(a.model, device)
        out['encoder'] = u.encoder
        out['throughput_512'] = throughput(model, u, device, a.batches)
        best = max(out['throughput_512'], key=lambda r: r['ours_none_ips'])
        out['best_batch'] = best['batch']
        if a.train: out['train'] = train_rate(model, u, device, batch=a.train_batch)
    if not a.skip_big:
        cmd = [sys.executable, __file__, '--child', '--big', str(a.big), '--threads', str(a.threads), '--device', a.device]
        if a.model: cmd += ['--model', a.model]
        if a.memmap_dir: cmd += ['--memmap-dir', a.memmap_dir]
        cmd += ['--scales'] + [str(v) for v in a.scales]
        r = subprocess.run(cmd, capture_output=True, text=True)
        line = [l for l in r.stdout.splitlines() if l.startswith('{')]
        if r.returncode or not line: print(r.stdout, r.stderr[-3000:]); sys.exit('big-image run failed')
        out['big_image'] = json.loads(line[-1])
        b = out['big_image']
        print(f"{b['size']}x{b['size']} by {b['tile']}-px tiles (overlap {b['overlap']}, scales {b['scales']}): {b['seconds']} s, peak RSS {b['peak_rss_mb']} MB "
              f"(model loaded: {b['rss_before_mb']} MB){' [memmap]' if b['memmap'] else ''} -> {'OK' if b['peak_rss_mb'] < 3072 else 'OVER'} the 3 GB limit"
              + (f", peak GPU memory {b['peak_gpu_mb']} MB" if b.get('peak_gpu_mb') is not None else ''))
    if a.json: Path(a.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == '__main__':
    main()

"""PyTorch vs ONNX Runtime: images per second of the U-Net's tiled prediction (seg_eval.predict_tiled, the path that
`accords-tem predict` runs) at 512x512 and 2048x2048, one image at a time, with and without test-time augmentation,
side by side in one process on the CPU.

The model is the default U-Net of configs/default.yaml (encoder, decoder channels, 3 outputs) with random weights: speed does
not depend on them. Tiles, overlap and tile batch are the config's (512, 128, 4). Runtimes: PyTorch float32, PyTorch with
the bf16 autocast that prediction uses by default on a CPU that has bf16, and ONNX Runtime (float32, CPU provider) through
`export.OnnxForward`. Each cell is the best of --repeat timed runs (the runtimes interleaved) after one warm-up run; both runtimes get the same number
of threads (--threads). The largest probability difference to PyTorch float32 is printed beside each time. Then the best
batch: whole 512x512 images, several a batch, one forward pass each (seg_eval.predict_batch), no TTA.

    .venv/bin/python bench/bench_runtime.py                       # 1 thread, 512 and 2048, TTA none and flips
    .venv/bin/python bench/bench_runtime.py --threads 2 --sizes 512 --repeat 5
    .venv/bin/python bench/bench_runtime.py --sizes --batches 1 2 4 8    # batch throughput only
"""
from __future__ import annotations
import argparse, json, os, platform, tempfile, time
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--sizes', type=int, nargs='*', default=[512, 2048])
    ap.add_argument('--batches', type=int, nargs='*', default=[1, 2, 4, 8], help='512x512 images a batch (seg_eval.predict_batch, no TTA)')
    ap.add_argument('--tta', nargs='+', default=['none', 'flips'])
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--out', default=None, help='write the results as JSON here')
    a = ap.parse_args(argv)
    import numpy as np, torch
    torch.set_num_threads(a.threads)
    from accords_tem.core import load_config
    from accords_tem.seg_train import build_model, save_model, load_model
    from accords_tem.training import cpu_has_bf16
    from accords_tem.seg_eval import predict_tiled, predict_batch
    from accords_tem import export
    u = load_config(None).section('unet').model_copy(update=dict(encoder_weights=None))
    tmp = Path(tempfile.mkdtemp(prefix='bench_runtime_'))
    torch.manual_seed(0); save_model(tmp/'model', build_model(u, weights=False)[0], u)
    sm = load_model(tmp/'model')
    t0 = time.perf_counter(); export.export_onnx(tmp/'model', tmp/'model'/'model.onnx'); t_export = time.perf_counter() - t0
    runtimes = {'torch fp32': (sm.model, False), 'onnxruntime fp32': (export.runtime_model(tmp/'model', sm, 'onnx'), False)}
    if cpu_has_bf16(): runtimes['torch bf16 autocast'] = (sm.model, True)
    rng = np.random.default_rng(0); rows = []
    print(f"U-Net {u.encoder} decoder {u.decoder_channels}, tiles {u.tile_size} overlap {u.tile_overlap} batch {u.pred_batch}, "
          f"{a.threads} thread(s), torch {torch.__version__}, onnxruntime {__import__('onnxruntime').__version__}; ONNX export {t_export:.1f} s")
    print(f"{'size':>6} {'tta':>6} {'runtime':>20} {'s/image':>8} {'images/s':>9} {'max |p - torch fp32|':>21}")
    for size in a.sizes:
        img = (rng.random((size, size)) * 255).astype(np.uint8)
        for tta in a.tta:
            kw = dict(tile=u.tile_size, overlap=u.tile_overlap, batch=u.pred_batch, tta=tta, device='cpu')
            res = {name: predict_tiled(model, img, amp=amp, **kw)[0] for name, (model, amp) in runtimes.items()}   # warm-up, results
            best = dict.fromkeys(runtimes, float('inf'))
            for _ in range(a.repeat):   # runtimes interleaved: load from other processes falls on each alike
                for name, (model, amp) in runtimes.items():
                    t = time.perf_counter(); predict_tiled(model, img, amp=amp, **kw); best[name] = min(best[name], time.perf_counter() - t)
            for name in runtimes:
                b, d = best[name], float(np.abs(res[name] - res['torch fp32']).max())
                rows.append(dict(size=size, tta=tta, runtime=name, seconds_per_image=round(b, 3), images_per_s=round(1 / b, 3), max_diff=d))
                print(f"{size:>6} {tta:>6} {name:>20} {b:8.2f} {1 / b:9.3f} {d:21.2e}", flush=True)
    brows = []
    if a.batches: print(f"{'batch':>6} {'runtime':>20} {'s/batch':>8} {'images/s':>9}   (512 x 512 images, predict_batch, no TTA)")
    for n in a.batches:
        imgs = [(rng.random((512, 512)) * 255).astype(np.uint8) for _ in range(n)]
        for name, (model, amp) in runtimes.items(): predict_batch(model, imgs, tta='none', amp=amp)   # warm-up
        best = dict.fromkeys(runtimes, float('inf'))
        for _ in range(a.repeat):
            for name, (model, amp) in runtimes.items():
                t = time.perf_counter(); predict_batch(model, imgs, tta='none', amp=amp); best[name] = min(best[name], time.perf_counter() - t)
        for name in runtimes:
            brows.append(dict(batch=n, runtime=name, seconds_per_batch=round(best[name], 3), images_per_s=round(n / best[name], 3)))
            print(f"{n:>6} {name:>20} {best[name]:8.2f} {n / best[name]:9.3f}", flush=True)
    res = dict(rows=rows, batch_rows=brows, threads=a.threads, repeat=a.repeat, encoder=u.encoder, decoder_channels=u.decoder_channels, tile=u.tile_size,
               overlap=u.tile_overlap, tile_batch=u.pred_batch, onnx_export_seconds=round(t_export, 2), cpu=platform.processor() or platform.machine(),
               cpu_count=os.cpu_count(), torch=torch.__version__, onnxruntime=__import__('onnxruntime').__version__)
    if a.out: Path(a.out).write_text(json.dumps(res, indent=1))
    return res


if __name__ == '__main__':
    main()

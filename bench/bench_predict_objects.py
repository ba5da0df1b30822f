"""Benchmark of `accords-tem predict` with objects (objects.predict_objects): CPU seconds per 1024x1024 image and peak
memory, for a U-Net with a centre-map output (unet.instance_classes, the default) against the same U-Net without it
(objects cut from the masks by `objects.split_touching: auto`), measured side by side in one run.

    python bench/bench_predict_objects.py                 # Lite0 U-Net (random weights), 1024x1024, flips x scales [0.5, 1]
    python bench/bench_predict_objects.py --size 2048 --scales 1

Weights are random (the timing is of the compute path, not of segmentation quality): the decoding work then depends on
what the random model outputs, so the instance-decoding share is also timed alone on a drawn image with many touching
objects (`instances_from_centres` vs `instances_from_mask` on the same mask). Wall-clock and process CPU seconds are printed.
"""
import argparse, json, os, resource, tempfile, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('MPLBACKEND', 'Agg')
from pathlib import Path
import numpy as np, torch
from PIL import Image
from skimage import draw

from accords_tem.seg_data import UnetConfig
from accords_tem.seg_train import build_model, save_model
from accords_tem.objects import predict_objects
from accords_tem.instances import centre_map, instances_from_centres
from accords_tem.sam import instances_from_mask

def drawn(size:int, seed:int=0):
    "A grey image of many touching disks and its instance labels."
    rng = np.random.default_rng(seed); lab = np.zeros((size, size), np.int32)
    for k in range(1, int(400 * (size / 1024) ** 2) + 1):
        rr, cc = draw.disk(rng.uniform(0, size, 2), rng.uniform(8, 30), shape=lab.shape); lab[rr, cc] = k
    img = np.where(lab > 0, 80, 170).astype(np.float32) + rng.normal(0, 12, lab.shape)
    return np.clip(img, 0, 255).astype(np.uint8), lab

def timed(fn):
    t, c = time.perf_counter(), time.process_time(); out = fn()
    return out, time.perf_counter() - t, time.process_time() - c

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--size', type=int, default=1024); ap.add_argument('--scales', type=float, nargs='+', default=[0.5, 1.0])
    ap.add_argument('--tta', default='flips'); ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--encoder', default='tu-tf_efficientnet_lite0')
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    img, lab = drawn(a.size)
    rows = {}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); (d/'imgs').mkdir(); Image.fromarray(img).save(d/'imgs'/'a.png')
        for name, inst in (('centre maps (default)', ['particle']), ('masks only, auto cut', [])):
            u = UnetConfig(target_classes=['particle'], instance_classes=inst, encoder=a.encoder, encoder_weights=None,
                           tta=a.tta, tta_scales=a.scales)
            torch.manual_seed(0); save_model(d/name, build_model(u)[0], u)
            predict_objects(d/name, d/'imgs', d/'warm', figures=False, progress=False)   # warm-up (first call allocates)
            _, wall, cpu = timed(lambda: predict_objects(d/name, d/'imgs', d/('o' + str(len(rows))), figures=False, progress=False))
            rows[name] = dict(wall_s=round(wall, 2), cpu_s=round(cpu, 2))
    fg, cm = lab > 0, centre_map(lab)
    _, w1, c1 = timed(lambda: instances_from_centres(fg, cm))
    _, w2, c2 = timed(lambda: instances_from_mask(fg, split='auto', h=4.0, min_area=80, speck_px=16, hole_px=64, opening=1))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f'{a.size}x{a.size}, tta {a.tta}, scales {a.scales}, torch threads {torch.get_num_threads()}')
    for k, v in rows.items(): print(f'  predict + objects, {k:24s} {v["wall_s"]:7.2f} s wall {v["cpu_s"]:7.2f} s CPU')
    r = rows['centre maps (default)']['wall_s'] / rows['masks only, auto cut']['wall_s']
    print(f'  ratio centre maps / masks only: {r:.2f}')
    print(f'  decoding alone ({int(lab.max())} drawn touching disks): centre-map watershed {w1:.3f} s, mask auto cut {w2:.3f} s')
    print(f'  peak RSS {peak:.0f} MB')
    print(json.dumps(dict(size=a.size, rows=rows, ratio=round(r, 3), decode_centres_s=round(w1, 3), decode_mask_s=round(w2, 3), peak_rss_mb=round(peak))))

if __name__ == '__main__': main()

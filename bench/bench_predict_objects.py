"""Benchmark of `accords-tem predict` with objects (objects.predict_objects): CPU seconds per 1024x1024 image and peak
memory, for a U-Net with a centre-map output (unet.instance_classes, the default) against the same U-Net without it
(objects cut from the masks by `objects.split_touching: auto`), and the default with its second, enlarged pass (an image
whose objects are small for the model is predicted again at `unet.small_object_scale` times its size), measured side by
side in one run.

    python bench/bench_predict_objects.py                 # Lite0 U-Net (random weights), 1024x1024, flips x scales [0.5, 1]
    python bench/bench_predict_objects.py --size 2048 --scales 1

Weights are random (the timing is of the compute path, not of segmentation quality): the decoding work then depends on
what the random model outputs, so the instance-decoding share is also timed alone on a drawn image with many touching
objects (`instances_from_centres` vs `instances_from_mask` on the same mask). Whether the second pass happens depends on
the objects the first pass finds, so for its row the predictor is told to take it (`unet.enlargement` answers
`--enlarge`, 2 = the default `small_object_scale`): the cost of an image that gets it, the most any image costs.
Wall-clock and process CPU seconds are printed; the peak RSS after each row is the process's peak up to that row (rows
run from the lightest).
"""
import argparse, json, os, resource, tempfile, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('MPLBACKEND', 'Agg')
from pathlib import Path
import numpy as np, torch
from PIL import Image
from skimage import draw

from accords_tem.seg_data import UnetConfig
from accords_tem.seg_train import build_model, save_model
import accords_tem.unet as unet_module
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
    ap.add_argument('--enlarge', type=float, default=2.0, help='the factor of the second pass (the default unet.small_object_scale)')
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    img, lab = drawn(a.size)
    rows = {}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); (d/'imgs').mkdir(); Image.fromarray(img).save(d/'imgs'/'a.png')
        first_pass = unet_module.enlargement
        for name, inst, factor in (('masks only, auto cut', [], 1.0), ('centre maps (default)', ['particle'], 1.0),
                                   (f'centre maps, 2nd pass x{a.enlarge:g}', ['particle'], a.enlarge)):
            u = UnetConfig(target_classes=['particle'], instance_classes=inst, encoder=a.encoder, encoder_weights=None,
                           tta=a.tta, tta_scales=a.scales)
            torch.manual_seed(0); save_model(d/name, build_model(u)[0], u)
            unet_module.enlargement = (lambda *_, f=factor, **__: f) if factor > 1 else first_pass   # the predictor looks it up there
            try:
                predict_objects(d/name, d/'imgs', d/'warm', figures=False, progress=False)   # warm-up (first call allocates)
                _, wall, cpu = timed(lambda: predict_objects(d/name, d/'imgs', d/('o' + str(len(rows))), figures=False, progress=False))
            finally: unet_module.enlargement = first_pass
            rows[name] = dict(wall_s=round(wall, 2), cpu_s=round(cpu, 2),
                              peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    fg, cm = lab > 0, centre_map(lab)
    _, w1, c1 = timed(lambda: instances_from_centres(fg, cm))
    _, w2, c2 = timed(lambda: instances_from_mask(fg, split='auto', h=4.0, min_area=80, speck_px=16, hole_px=64, opening=1))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f'{a.size}x{a.size}, tta {a.tta}, scales {a.scales}, torch threads {torch.get_num_threads()}')
    for k, v in rows.items(): print(f'  predict + objects, {k:30s} {v["wall_s"]:7.2f} s wall {v["cpu_s"]:7.2f} s CPU, peak RSS so far {v["peak_rss_mb"]} MB')
    r = rows['centre maps (default)']['wall_s'] / rows['masks only, auto cut']['wall_s']
    r2 = rows[f'centre maps, 2nd pass x{a.enlarge:g}']['wall_s'] / rows['centre maps (default)']['wall_s']
    print(f'  ratio centre maps / masks only: {r:.2f}; with the second pass / one pass: {r2:.2f}')
    print(f'  decoding alone ({int(lab.max())} drawn touching disks): centre-map watershed {w1:.3f} s, mask auto cut {w2:.3f} s')
    print(f'  peak RSS {peak:.0f} MB')
    print(json.dumps(dict(size=a.size, rows=rows, ratio=round(r, 3), ratio_second_pass=round(r2, 3), decode_centres_s=round(w1, 3), decode_mask_s=round(w2, 3), peak_rss_mb=round(peak))))

if __name__ == '__main__': main()

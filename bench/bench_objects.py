"""Benchmark of stage 06 (objects): seconds per image for proposals (Segment Anything, and instances from class masks)
and for feature extraction, on 1024x1024 and 4096x4096 synthetic micrographs.

    python bench/bench_objects.py                      # tiny random SAM, mask instances, features; 1024 and 4096
    python bench/bench_objects.py --sam vit_b --sizes 1024   # the real ViT-B architecture, randomly initialised

No SAM weights ship with accords-tem: the SAM timings use randomly initialised models (official classes), so they
measure the compute path (encoder, prompt decoding, mask post-processing, tiling, clean-up), not mask quality. The
generator keeps its default thresholds (predicted IoU 0.86, stability 0.92), so random masks are mostly filtered as
a real run filters poor masks. Wall-clock and process CPU seconds are both printed (the CPU may be shared).
"""
import argparse, json, os, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('MPLBACKEND', 'Agg')
import numpy as np
from skimage import draw

from accords_tem.core import device_description, get_device
from accords_tem.sam import SamParams, tiny_sam, make_generator, sam_proposals, clean_proposals, paint_labels, instances_from_classes
from accords_tem.objects import object_features

def synthetic(size:int, seed:int=0):
    "A grey micrograph with flakes (some touching) and carbon holes, and its class map (1 GFM, 2 carbonhole, 3 film)."
    rng = np.random.default_rng(seed)
    cls = np.full((size, size), 3, np.uint8)
    n = int(100 * (size / 1024) ** 2)
    for _ in range(n // 10):
        rr, cc = draw.disk(rng.uniform(0, size, 2), rng.uniform(20, 60), shape=cls.shape); cls[rr, cc] = 2
    for _ in range(n):
        rr, cc = draw.ellipse(*rng.uniform(0, size, 2), *rng.uniform(8, 40, 2), shape=cls.shape, rotation=rng.uniform(0, np.pi))
        cls[rr, cc] = 1
    img = np.where(cls == 1, 90, np.where(cls == 2, 200, 140)).astype(np.float32) + rng.normal(0, 10, cls.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), cls

CPU = {}
def timed(fn, repeat:int=1, key:str=''):
    "Best wall-clock seconds over `repeat` runs (process CPU seconds of that run kept in CPU[key])."
    best, out = np.inf, None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time(); out = fn(); dt = time.perf_counter() - t
        if dt < best: best, CPU[key] = dt, time.process_time() - c
    return best, out

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sizes', type=int, nargs='+', default=[1024, 4096])
    ap.add_argument('--sam', choices=['tiny', 'vit_b', 'none'], default='tiny')
    ap.add_argument('--points', type=int, default=16, help='points_per_side of the automatic mask generator')
    ap.add_argument('--tile', type=int, default=1024)
    ap.add_argument('--halo', type=int, default=128)
    ap.add_argument('--repeat', type=int, default=1)
    ap.add_argument('--device', default='auto')
    ap.add_argument('--json', help='also write the results here')
    a = ap.parse_args(argv)
    dev = get_device(a.device)
    rows = []
    model = None
    if a.sam == 'tiny': model = tiny_sam().to(dev)
    elif a.sam == 'vit_b':
        from segment_anything import sam_model_registry
        model = sam_model_registry['vit_b'](checkpoint=None).to(dev).eval()
    print(f'device: {device_description(dev)}; SAM: {a.sam} (random weights), points_per_side={a.points}, tile={a.tile}, halo={a.halo}')
    for size in a.sizes:
        img, cls = synthetic(size)
        t_inst, (lab, _) = timed(lambda: instances_from_classes(cls, [1, 2]), a.repeat, 'inst')
        t_feat, feats = timed(lambda: object_features(lab, img, spacing=1.5), a.repeat, 'feat')
        r = dict(size=size, mask_instances_s=t_inst, mask_instances_cpu_s=CPU['inst'], n_mask_objects=int(lab.max()), features_s=t_feat,
                 features_cpu_s=CPU['feat'], n_features_rows=len(feats))
        if model is not None:
            gen = make_generator(model, SamParams(points_per_side=a.points))   # default thresholds (0.86 / 0.92)
            t_sam, props = timed(lambda: sam_proposals(img, gen, tile=a.tile, halo=a.halo, preprocess='clahe'), a.repeat, 'sam')
            t_clean, clean = timed(lambda: clean_proposals(props, img.shape, min_area=30), 1)
            t_paint, (slab, _) = timed(lambda: paint_labels(clean, img.shape), 1)
            t_sfeat, _ = timed(lambda: object_features(slab, img, spacing=1.5), 1)
            r.update(sam_proposals_s=t_sam, sam_proposals_cpu_s=CPU['sam'], sam_cleanup_s=t_clean + t_paint, n_sam_raw=len(props), n_sam_objects=int(slab.max()),
                     sam_features_s=t_sfeat)
        rows.append(r)
        print(' '.join(f'{k}={v:.2f}' if isinstance(v, float) else f'{k}={v}' for k, v in r.items()), flush=True)
    if a.json:
        with open(a.json, 'w') as f: json.dump(dict(device=device_description(dev), sam=a.sam, points_per_side=a.points,
                                                    tile=a.tile, halo=a.halo, results=rows), f, indent=2)
    return rows

if __name__ == '__main__':
    main()

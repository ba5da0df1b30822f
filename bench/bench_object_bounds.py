"""What the GFM objects of the synthetic sample could be at best, from its exact ground truth (no model, seconds):
the exact GFM class mask cut into objects as stage 06 cuts a class mask (`objects:` section of the default
configuration; `split_touching` auto and connected pieces), and the exact centre maps (the U-Net's training target,
rounded as stored) decoded by the predictor's seeded watershed (`unet:` decoding settings of the default configuration).
Objects are matched one to one with the generator's flakes of at least `objects.min_area_px` at IoU > 0.5, pooled over
the images: a model's objects (stage 06's `evaluation.csv`) are measured the same way.

    python bench/bench_object_bounds.py                  # data_sample/ (30 images)
"""
import argparse, os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
from pathlib import Path
import numpy as np
from PIL import Image

from accords_tem.core import load_config
from accords_tem.instances import centre_map, instances_from_centres, CENTRE_SCALE, match_instances
from accords_tem.sam import instances_from_classes, cut_options

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--truth', type=Path, default=Path(__file__).resolve().parents[1]/'data_sample'/'ground_truth')
    a = ap.parse_args(argv)
    cfg = load_config('default'); oc, u = cfg.section('objects'), cfg.section('unet')
    gfm = cfg.class_by_name('GFM').label
    ways = {'class mask, auto cut': lambda ins, cm: instances_from_classes(cm, [gfm], **cut_options(oc))[0],
            'class mask, connected pieces': lambda ins, cm: instances_from_classes(cm, [gfm], **{**cut_options(oc), 'split': False})[0],
            'centre maps, decoded': lambda ins, cm: instances_from_centres(
                ins > 0, np.rint(centre_map(ins) * CENTRE_SCALE) / CENTRE_SCALE, prob=(ins > 0).astype(np.float32),
                seed_threshold=u.seed_threshold, **u.decode_kwargs())}
    tot = {w: np.zeros(3, int) for w in ways}
    files = sorted(a.truth.glob('*_instances.png'))
    for f in files:
        ins = np.asarray(Image.open(f)).astype(np.int32)
        ins = np.where(np.bincount(ins.ravel())[ins] < oc.min_area_px, 0, ins)   # slivers of hidden flakes no measurement keeps
        cm = np.asarray(Image.open(str(f).replace('_instances.png', '_classes.png')))
        cm = np.where((cm == gfm) & (ins == 0), 0, cm)   # the slivers' pixels are no flake for the cut either
        for w, fn in ways.items():
            r = match_instances(fn(ins, cm), ins, float(np.nextafter(0.5, 1))); tot[w] += (r['tp'], r['n_pred'], r['n_gt'])
    print(f'{len(files)} images of {a.truth}, {tot[next(iter(ways))][2]} flakes of at least {oc.min_area_px} px; matched at IoU > 0.5, pooled')
    for w, (tp, n_pred, n_gt) in tot.items():
        print(f'  {w:30s} {n_pred:4d} objects  precision {tp / max(n_pred, 1):.3f}  recall {tp / max(n_gt, 1):.3f}  F1 {2 * tp / max(n_pred + n_gt, 1):.3f}')

if __name__ == '__main__': main()

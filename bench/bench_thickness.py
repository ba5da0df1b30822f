"""Benchmark of the layer-count estimate (nbs/06d_thickness.ipynb) against the synthetic generator's exact layer counts.

    python bench/bench_thickness.py                              # 300 scenes (GO, G, rGO at 10,000x-50,000x), seeds 7000-7299
    python bench/bench_thickness.py --seed0 6000                 # earlier held-out scenes (also 5000), for comparison
    python bench/bench_thickness.py --seed0 3000                 # the scenes the estimator's choices were made on (and 2000, 150 scenes)
    python bench/bench_thickness.py --scenes 20 --kw '{"min_peak": 0.1}'   # other flake_layers settings

Seeds: the rule of `flake_layers` (the lowest plateau of the per-pixel layer histogram, flat field, support margin
10 px, the support under most of the flake, kernel 0.7 x the noise but at least 0.2 layer) was chosen on scenes
2000-2149; its first version (`min_peak` 0.1) was then measured on scenes 6000-6299 and 5000-5299 (89.7 % and 88.6 %);
`min_peak` 0.05 was chosen after that on scenes 2000-2149 and 3000-3299 only (93.3 -> 93.8 %: 5 flakes gained, none
lost). The figure reported is from scenes 7000-7299, never looked at before; 6000-6299 and 5000-5299 for comparison.
Scenes 1000-1149 were the choice scenes of the rule before (75th / 90th percentile), 5000-5299 its held-out scenes.
Measured 2026-12-07 (one core, 65-110 s per set), within +-1 layer for flakes of at most 10 layers: seeds 7000-7299 93.2 %
(630 flakes), 6000-6299 89.5 % (736), 5000-5299 88.5 % (686); pooled 90.3 % (the estimator before: 84.5 % on 5000-5299).
Each 300-scene pass takes about 3-5 minutes on one core.

Each scene is planned, rendered and imaged by 09_synthetic (`plan_scene`, `render_scene`, `image_formation`: flakes
with folds, wrinkles, terraces and texture, overlapping neighbours and aggregates, Fresnel fringes, uneven
illumination), then recorded as raw detector counts with Poisson noise and the detector blur but no offset (dark = 0
is known, as it is for a calibrated camera; the generator's own `acquire` draws an unknown offset or stretches to
8 bit, which loses the zero). The flakes and what lies around them come from the exact class map (perfect
segmentation); `mu` is the material's per-layer attenuation (a calibrated microscope).
Truth: the flake's layer count in the generator (`Flake.layers`, terraces and folds aside): the `layers` column of the
generator's per-instance table (`Micrograph.flakes`, written to `data_sample/ground_truth/flakes.csv` beside
`<stem>_instances.png`, one row per instance id). A second truth, `beam_layers`: the median over the flake's pixels of
the exact number of layers the beam crosses (folds, overlapping flakes and terraces included): what a median of the
intensity would give. Reported: share of flakes within +-1 layer (all, and those of at most 10 layers: goal >= 90 %),
median |error|, the share with an estimate, by material, kind, reference (vacuum or film) and true layer count, and
split by the estimator's own `heterogeneous` mark (P50 - P10 of the per-pixel counts > 2 layers: folds, wrinkles or
overlaps over much of the flake) and by `sheet_share` (the share of the flake's pixels that read as its sheet).
"""
import argparse, json, math, os, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('MPLBACKEND', 'Agg')
import numpy as np, pandas as pd

from accords_tem.synthetic import plan_scene, render_scene, image_formation, ground_truth, material_style, _blur
from accords_tem.thickness import flake_layers

def scene(seed:int, material:str, mag:int, size:int=768, **kw) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sc = plan_scene(rng, size, mag, material)
    r = render_scene(sc, rng)
    I = image_formation(r['A'], rng, npx=sc.nm_per_px)
    dose = math.exp(rng.uniform(math.log(40), math.log(1500)))
    counts = _blur(rng.poisson(np.clip(I, 0, None) * dose).astype(np.float32), rng.uniform(0.6, 1.1))
    classes, bg, inst, ids = ground_truth(sc, r)
    if not len(ids): return pd.DataFrame()
    if kw.pop('exact_under', False): kw['under'] = np.where(inst > 0, bg, classes)   # what truly lies under the flakes
    est = flake_layers(counts, inst, classes, mu=material_style(material)['mu'], dark=0.0, **kw)
    est['true_layers'] = [sc.flakes[ids[k - 1] - 1].layers for k in est['label']]   # = flakes.csv `layers` of instance k
    est['kind'] = [sc.flakes[ids[k - 1] - 1].kind for k in est['label']]
    lay = r['layers']                                                     # exact layers crossed by the beam, per pixel
    est['beam_layers'] = [float(np.median(lay[inst == k])) for k in est['label']]   # folds, overlaps, terraces included
    return est.assign(material=material, magnification=mag, dose=dose, seed=seed)

def summary(d:pd.DataFrame, truth:str='true_layers') -> dict:
    ok = d[d.layers.notna()]
    err = ok.layers - ok[truth]
    le10 = ok[ok[truth] <= 10]; e10 = le10.layers - le10[truth]
    return dict(flakes=len(d), estimated=len(ok), share_estimated=round(len(ok) / max(len(d), 1), 3),
                within_1_layer=round(float((err.abs() <= 1).mean()), 3) if len(ok) else None,
                within_1_layer_le10=round(float((e10.abs() <= 1).mean()), 3) if len(le10) else None, n_le10=len(le10),
                median_abs_error=round(float(err.abs().median()), 2) if len(ok) else None,
                bias=round(float(err.mean()), 2) if len(ok) else None)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--scenes', type=int, default=300)
    ap.add_argument('--seed0', type=int, default=7000, help='first scene seed (2000, 3000: the scenes the choices were made on)')
    ap.add_argument('--out', default=None, help='write the summary (JSON) here')
    ap.add_argument('--csv', default=None, help='write the per-flake table here')
    ap.add_argument('--kw', default='{}', help='more flake_layers keyword arguments, as JSON')
    ap.add_argument('--exact-under', action='store_true', help='give the exact support under the flakes (separates that error)')
    a = ap.parse_args()
    t0 = time.time(); tabs = []
    mats, mags = ['GO_02', 'G_04', 'rGO_01'], [10000, 20000, 50000]
    for k in range(a.scenes):
        tabs.append(scene(a.seed0 + k, mats[k % 3], mags[(k // 3) % 3], exact_under=a.exact_under, **json.loads(a.kw)))
    d = pd.concat(tabs, ignore_index=True)
    share = pd.cut(d.sheet_share, [0, 0.25, 0.5, 1.0], include_lowest=True).astype(str)
    out = dict(scenes=a.scenes, seeds=[a.seed0, a.seed0 + a.scenes - 1], kw=json.loads(a.kw), exact_under=a.exact_under, all=summary(d), all_vs_beam_layers=summary(d, 'beam_layers'),
               by_true_layers={int(n): summary(g) for n, g in d[d.true_layers <= 10].groupby('true_layers')},
               by_sheet_share={k: summary(g) for k, g in d[d.layers.notna()].groupby(share[d.layers.notna()])},
               by_material_vs_beam_layers={m: summary(g, 'beam_layers') for m, g in d.groupby('material')},
               by_kind={k: summary(g) for k, g in d.groupby('kind')},
               not_heterogeneous=summary(d[~d.heterogeneous.astype(bool)]), heterogeneous=summary(d[d.heterogeneous.astype(bool)]),
               share_heterogeneous=round(float(d[d.layers.notna()].heterogeneous.astype(bool).mean()), 3),
               by_material={m: summary(g) for m, g in d.groupby('material')},
               by_reference={r: summary(g) for r, g in d[d.reference != ''].groupby('reference')},
               flags=d[d.flag != ''].flag.str.split('(').str[0].str.strip().value_counts().to_dict(),
               seconds=round(time.time() - t0, 1))
    print(json.dumps(out, indent=1))
    if a.out: open(a.out, 'w').write(json.dumps(out, indent=1))
    if a.csv: d.to_csv(a.csv, index=False)

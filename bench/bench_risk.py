"""Benchmark of the risk descriptors (nbs/06c_risk.ipynb): do the 95 % intervals of D10/D50/D90 hold the truth, how far
is the reported D50 from it, and does pooling across magnifications remove the bias that concatenation has.

    python bench/bench_risk.py                 # both experiments, defaults below (a few minutes on one core)
    python bench/bench_risk.py --samples 50    # quicker

Experiment A, the synthetic generator's flakes (09_synthetic, `plan_scene`, GO_02 at 10,000x, 768 px frames, target
'Many (>10)'): each flake is rasterised alone (perfect segmentation; overlaps between flakes are ignored) and measured
with `object_features`; its layer count is the generator's, so its thickness (layers x 0.335 nm) is exact. The truth is
the population of whole flakes at or above the lower size limit, from all scenes together. A sample is `--images`
frames; the reported D50 (edge-cut flakes excluded, with and without the Miles-Lantuejoul weights) and its interval are
compared with the truth over `--samples` disjoint samples: coverage (share of intervals holding the true D50; 0.95
expected), median |error| of the D50, median relative half-width of the interval. The EU share (thickness known) is
compared the same way.

Experiment B, pooling across magnifications: a physical population (flake equivalent radius log-normal, median 60 nm,
shape 0.8; generator outlines) imaged at 5,000x (2.8 nm/px, lower limit 28 nm) and 20,000x (0.7 nm/px, 7 nm), the
flakes placed uniformly at one number density. Truth: the D50 of all flakes at or above the finest limit. Reported:
`pool: resolving` (each size from the images that resolve it, per imaged area) against `pool: all` (concatenation).

Experiment C, real distributions in px (../shared/data/emps-train, Yildirim & Cole 2021; skipped when absent): the
statistics of each image's hand-drawn instances as one sample, to show how wide the intervals are on real figures.
Reduction: per image (each image its own sample), then the median of the per-image values within groups of images
by the number of particles measured (0-4, 5-19, 20-99, 100+); and pooled (all particles as one sample, for scale only:
the figures are of different materials and magnifications). Also the share of particles touching another particle
(`contacts` on the hand-drawn instance map: the agglomerate share of the risk page), per image and pooled.

Experiment D, small counts: how often the 95 % interval of the median holds the true median of a log-normal (median
200, shape 0.5) when a sample has 3, 5, 10, 20 or 50 particles (300 samples each): the per-image intervals of C at a
handful of particles are too narrow, and this says by how much.
"""
import argparse, json, math, os, time
RESAMPLE = 'particles'   # --resample
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('MPLBACKEND', 'Agg')
import numpy as np, pandas as pd
from skimage.draw import polygon as draw_polygon

from accords_tem.objects import object_features
from accords_tem.risk import RiskConfig, particle_table, size_statistics, eu_test, weighted_percentiles, contacts, agglomerate_stats
from accords_tem.synthetic import plan_scene, flake_polygon, nm_per_px

MEAS = ['equivalent_diameter', 'feret_min', 'feret_max']

def measure_flake(P:np.ndarray, L:int, npx:float, whole:bool=False) -> dict|None:
    """Rasterise polygon P (x, y px) alone; its features in nm, its bbox in frame px and whether the frame cuts it (None: outside).
    `whole`: measure flakes cut by the frame too, as if the frame were not there (for the truth)."""
    x0, y0 = np.floor(P.min(0)).astype(int) - 1; x1, y1 = np.ceil(P.max(0)).astype(int) + 2
    if x1 <= 0 or y1 <= 0 or x0 >= L or y0 >= L: return None
    if not whole and (P.min() < 0.5 or P.max() > L - 0.5):                 # cut by the frame: excluded, no need to measure it
        return dict(equivalent_diameter=np.nan, feret_min=np.nan, feret_max=np.nan, touches_border=True,
                    bbox_r0=max(y0, 0), bbox_c0=max(x0, 0), bbox_r1=min(y1, L), bbox_c1=min(x1, L))
    lab = np.zeros((y1 - y0, x1 - x0), np.int32)
    rr, cc = draw_polygon(P[:, 1] - y0, P[:, 0] - x0, lab.shape); lab[rr, cc] = 1
    if not lab.any(): return None
    f = object_features(lab, spacing=npx).iloc[0]
    r, c = np.nonzero(lab); r0, r1, c0, c1 = r.min() + y0, r.max() + 1 + y0, c.min() + x0, c.max() + 1 + x0
    if r1 <= 0 or c1 <= 0 or r0 >= L or c0 >= L: return None                # no pixel inside the frame
    if whole: r0, c0, r1, c1 = max(r0, 0), max(c0, 0), min(r1, L), min(c1, L)   # the part in the frame
    return dict(equivalent_diameter=f.equivalent_diameter, feret_min=f.feret_min, feret_max=f.feret_max,
                touches_border=bool(r0 <= 0 or c0 <= 0 or r1 >= L or c1 >= L), bbox_r0=r0, bbox_c0=c0, bbox_r1=r1, bbox_c1=c1)

def scene_table(seed:int, mag:int=10000, L:int=768, material:str='GO_02') -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sc = plan_scene(rng, L, mag, material, target='Many (>10)')
    rows = []
    for f in sc.flakes:
        m = measure_flake(f.verts, L, sc.nm_per_px, whole=True)
        if m is not None: rows.append(dict(m, layers=f.layers))
    return pd.DataFrame(rows).assign(nm_per_px=sc.nm_per_px, height=L, width=L, unit='nm', image=f'img{seed}', **{'class': 'GFM'})

def covered(lo, hi, t): return bool(np.isfinite(lo) and lo <= t <= hi)

def experiment_a(n_samples:int, n_images:int, n_boot:int, seed:int=0) -> dict:
    t0 = time.time()
    scenes = [scene_table(seed * 100000 + k) for k in range(n_samples * n_images)]
    allf = pd.concat(scenes, ignore_index=True)
    rc = RiskConfig(resample=RESAMPLE, n_boot=n_boot, min_particles=1)
    lim_nm = rc.min_size_px * allf.nm_per_px.iloc[0]
    pop = allf[allf.feret_min >= lim_nm]                                  # whole flakes at or above the limit
    truth = {m: np.percentile(pop[m], [10, 50, 90], method='hazen') for m in MEAS}
    th = pop.layers * rc.layer_nm
    inr = lambda v: (v >= 1) & (v <= 100)
    eu_truth = float((inr(pop.feret_min) | inr(pop.feret_max) | inr(th) | ((th < 1) & (pop.feret_min > 100))).mean())
    res = {ec: {m: dict(cov10=[], cov50=[], cov90=[], err50=[], hw50=[]) for m in MEAS} for ec in (True, False)}
    eu_lat_truth = float((inr(pop.feret_min) | inr(pop.feret_max)).mean())   # what the lateral sizes alone show
    eu_err, eu_cov, n_meas, lat_err, lat_cov, verdicts = [], [], [], [], [], {}
    for s in range(n_samples):
        ob = pd.concat(scenes[s * n_images:(s + 1) * n_images], ignore_index=True).assign(sample='S')
        im = ob.groupby('image').first().reset_index()[['image', 'height', 'width', 'nm_per_px']].assign(sample='S')
        for ec in (True, False):
            r = RiskConfig(resample=RESAMPLE, n_boot=n_boot, min_particles=1, edge_correction=ec)
            pt = particle_table(ob, im, r)
            st = size_statistics(pt, im, r, seed=s).set_index('measure')
            for m in MEAS:
                x, t = st.loc[m], truth[m]
                d = res[ec][m]
                d['cov10'].append(covered(x.D10_lo, x.D10_hi, t[0])); d['cov50'].append(covered(x.D50_lo, x.D50_hi, t[1]))
                d['cov90'].append(covered(x.D90_lo, x.D90_hi, t[2]))
                d['err50'].append((x.D50 - t[1]) / t[1]); d['hw50'].append((x.D50_hi - x.D50_lo) / 2 / x.D50)
            if ec:
                n_meas.append(int(st.n_measured.iloc[0]))
                e0 = eu_test(pt.assign(thickness_u=np.nan), r)           # no thickness: the real situation today
                lat_err.append(e0['share_low'] - eu_lat_truth); lat_cov.append(covered(*e0['share_low_ci'], eu_lat_truth))
                verdicts[e0['verdict']] = verdicts.get(e0['verdict'], 0) + 1
                pt['thickness_u'] = pt['layers'] * r.layer_nm
                e = eu_test(pt, r)
                eu_err.append(e['share_low'] - eu_truth); eu_cov.append(covered(*e['share_low_ci'], eu_truth))
    out = dict(frames_per_sample=n_images, samples=n_samples, nm_per_px=float(allf.nm_per_px.iloc[0]), lower_limit_nm=lim_nm,
               population_flakes=len(pop), measured_per_sample_median=float(np.median(n_meas)),
               truth_nm={m: [round(v, 1) for v in truth[m]] for m in MEAS}, eu_share_truth=round(eu_truth, 3),
               eu_share_error_median_abs=round(float(np.median(np.abs(eu_err))), 3), eu_share_ci_coverage=round(float(np.mean(eu_cov)), 3),
               eu_lateral_share_truth=round(eu_lat_truth, 3), eu_lateral_share_error_median_abs=round(float(np.median(np.abs(lat_err))), 3),
               eu_lateral_share_bias=round(float(np.mean(lat_err)), 3), eu_lateral_share_ci_coverage=round(float(np.mean(lat_cov)), 3),
               eu_verdicts_without_thickness=verdicts)
    for ec, name in ((True, 'edge_corrected'), (False, 'not_corrected')):
        out[name] = {m: dict(coverage_D10=round(float(np.mean(d['cov10'])), 3), coverage_D50=round(float(np.mean(d['cov50'])), 3),
                             coverage_D90=round(float(np.mean(d['cov90'])), 3),
                             D50_bias_pct=round(100 * float(np.mean(d['err50'])), 2),
                             D50_abs_error_median_pct=round(100 * float(np.median(np.abs(d['err50']))), 2),
                             D50_ci_halfwidth_median_pct=round(100 * float(np.median(d['hw50'])), 2))
                     for m, d in res[ec].items()}
    out['seconds'] = round(time.time() - t0, 1)
    return out

def physical_frame(rng, mag:int, density:float, L:int=768, med_nm:float=60., shape:float=0.8) -> pd.DataFrame:
    "One frame of a physical population: Poisson number of flakes (centres uniform in the frame plus a margin)."
    npx = nm_per_px(mag); fov = L * npx; margin = 6 * med_nm
    n = rng.poisson(density * (fov + 2 * margin) ** 2)
    rows = []
    for _ in range(n):
        r = float(rng.lognormal(math.log(med_nm), shape)) / npx
        cx, cy = rng.uniform(-margin / npx, L + margin / npx, 2)
        m = measure_flake(flake_polygon(rng, (cx, cy), r, ragged=0.1, elong=rng.uniform(1.0, 1.8)), L, npx)
        if m is not None: rows.append(m)
    return pd.DataFrame(rows, columns=MEAS + ['touches_border', 'bbox_r0', 'bbox_c0', 'bbox_r1', 'bbox_c1']).assign(
        nm_per_px=npx, height=L, width=L, unit='nm', **{'class': 'GFM'})

def experiment_b(n_samples:int, n_boot:int, seed:int=1, plan=((5000, 4), (20000, 12))) -> dict:
    t0 = time.time()
    rng = np.random.default_rng(seed)
    density = 30 / (768 * nm_per_px(5000)) ** 2                           # 30 flake centres per 5,000x frame
    rc = RiskConfig(resample=RESAMPLE, n_boot=n_boot, min_particles=1)
    finest = rc.min_size_px * min(nm_per_px(m) for m, _ in plan)
    # truth: a large population of the same outlines (whole flakes), at or above the finest limit
    pop = []
    for _ in range(4000):                                                  # each drawn 160 px across: sizes are scale-free
        r = float(rng.lognormal(math.log(60.), 0.8))
        f = measure_flake(flake_polygon(rng, (0, 0), 80.0, ragged=0.1, elong=rng.uniform(1.0, 1.8)) + 500, 1000, r / 80)
        if f is not None: pop.append(f)
    pop = pd.DataFrame(pop); pop = pop[pop.feret_min >= finest]
    truth = {m: float(np.percentile(pop[m], 50, method='hazen')) for m in MEAS}
    res = {p: {m: dict(cov=[], err=[]) for m in MEAS} for p in ('resolving', 'all')}
    for s in range(n_samples):
        frames = []
        for mag, k in plan:
            for j in range(k): frames.append(physical_frame(rng, mag, density).assign(image=f'{mag}_{j}'))
        ob = pd.concat(frames, ignore_index=True).assign(sample='S')
        im = pd.DataFrame([dict(image=f'{mag}_{j}', sample='S', height=768, width=768, nm_per_px=nm_per_px(mag)) for mag, k in plan for j in range(k)])
        for p in ('resolving', 'all'):
            r = RiskConfig(resample=RESAMPLE, n_boot=n_boot, min_particles=1, pool=p)
            st = size_statistics(particle_table(ob, im, r), im, r, seed=s).set_index('measure')
            for m in MEAS:
                res[p][m]['cov'].append(covered(st.loc[m].D50_lo, st.loc[m].D50_hi, truth[m]))
                res[p][m]['err'].append((st.loc[m].D50 - truth[m]) / truth[m])
    return dict(plan={f'{m}x': k for m, k in plan}, samples=n_samples, finest_limit_nm=round(finest, 2), truth_D50_nm={m: round(v, 1) for m, v in truth.items()},
                **{f'pool_{p}': {m: dict(coverage_D50=round(float(np.mean(d['cov'])), 3), D50_bias_pct=round(100 * float(np.mean(d['err'])), 1),
                                        D50_abs_error_median_pct=round(100 * float(np.median(np.abs(d['err']))), 1))
                                 for m, d in res[p].items()} for p in ('resolving', 'all')},
                seconds=round(time.time() - t0, 1))

EMPS = os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data', 'emps-train')

def experiment_c(n_boot:int, root:str=EMPS) -> dict|None:
    "Real distributions (emps-train, no pixel size: px): one sample per image, as a person would report each figure."
    from PIL import Image
    seg = os.path.join(root, 'segmaps')
    if not os.path.isdir(seg): return None
    t0 = time.time(); obs, ims = [], []
    for fn in sorted(os.listdir(seg)):
        lab = np.asarray(Image.open(os.path.join(seg, fn))).astype(np.int32)
        if lab.ndim == 3: lab = lab[..., 0]
        f = object_features(lab)
        if not len(f): continue
        sid = os.path.splitext(fn)[0]
        f = f.merge(contacts(lab), on='label', how='left')                    # agglomerates: particles touching others
        obs.append(f.assign(sample=sid, image=sid, height=lab.shape[0], width=lab.shape[1], **{'class': 'GFM'}))
        ims.append(dict(image=sid, sample=sid, height=lab.shape[0], width=lab.shape[1], nm_per_px=np.nan))
    ob, im = pd.concat(obs, ignore_index=True), pd.DataFrame(ims)
    rc = RiskConfig(resample=RESAMPLE, n_boot=n_boot)
    pt = particle_table(ob, im, rc)
    st = size_statistics(pt, im, rc).set_index('measure').loc['equivalent_diameter']
    hw = (st.D50_hi - st.D50_lo) / 2 / st.D50
    big = st[st.n_measured >= 20]
    # per image-group (by particles measured per image): the median of the per-image values in each group
    st = st.assign(hw=100 * hw, group=pd.cut(st.n_measured, [-1, 4, 19, 99, 10 ** 9], labels=['0-4', '5-19', '20-99', '100+']),
                   rel90=100 * (st.D90_hi - st.D90_lo) / 2 / st.D90, ci_in_px=(st.D50_hi - st.D50_lo))
    ag = {k: agglomerate_stats(g, rc) for k, g in pt.groupby('sample')}
    st['agg_pct'] = [100 * ag[k]['share'] if ag.get(k) and ag[k]['n_measured'] else np.nan for k in st['sample']]
    groups = {str(k): dict(images=len(g), particles_measured_median=float(g.n_measured.median()) if len(g) else None,
                           D50_px_median=round(float(g.D50.median()), 1) if len(g) else None,
                           D50_ci_halfwidth_pct_median=round(float(g.hw.median()), 1) if g.hw.notna().any() else None,
                           D90_ci_halfwidth_pct_median=round(float(g.rel90.median()), 1) if g.rel90.notna().any() else None,
                           images_with_finite_ci=int(g.hw.notna().sum()),
                           agglomerated_pct_median=round(float(g['agg_pct'].median()), 1) if g['agg_pct'].notna().any() else None)
              for k, g in st.groupby('group', observed=False)}
    agp = agglomerate_stats(pt.assign(sample='ALL'), rc)
    allr = RiskConfig(resample=RESAMPLE, n_boot=n_boot)
    pooled = size_statistics(pt.assign(sample='ALL'), im.assign(sample='ALL'), allr).set_index('measure').loc['equivalent_diameter']
    return dict(images=len(im), particles=len(pt), edge_excluded=int((pt.status == 'edge').sum()),
                below_limit_10px=int((pt.status == 'below_limit').sum()), measured=int((pt.status == 'measured').sum()),
                measured_per_image_median=float(st.n_measured.median()),
                images_with_100_or_more=int((st.n_measured >= 100).sum()), images_with_20_or_more=len(big),
                D50_ci_halfwidth_median_pct_all=round(100 * float(hw.median()), 1),
                D50_ci_halfwidth_median_pct_20plus=round(100 * float(((big.D50_hi - big.D50_lo) / 2 / big.D50).median()), 1),
                images_qc_pass_px=int((st.qc_reasons.str.count(';') == 0).sum()),
                pooled_ECD_px=dict(D10=[round(pooled[k], 1) for k in ('D10', 'D10_lo', 'D10_hi')],
                                   D50=[round(pooled[k], 1) for k in ('D50', 'D50_lo', 'D50_hi')],
                                   D90=[round(pooled[k], 1) for k in ('D90', 'D90_lo', 'D90_hi')]),
                by_particles_per_image=groups,
                agglomerated_pooled=dict(share=round(agp['share'], 3), ci=[round(v, 3) for v in agp['share_ci']],
                                         n_in_agglomerates=agp['n_in_agglomerates'], n_measured=agp['n_measured'],
                                         agglomerates=agp['n_agglomerates'], particles_per_agglomerate_median=agp['particles_per_agglomerate_median']),
                seconds=round(time.time() - t0, 1))

def experiment_d(n_boot:int, reps:int=300, seed:int=11, sizes=(3, 5, 10, 20, 50)) -> dict:
    "Coverage of the 95 % interval of the median at small particle counts (log-normal, median 200, shape 0.5): where to trust it."
    t0 = time.time(); rng = np.random.default_rng(seed); out = {}
    from accords_tem.risk import bootstrap_percentiles
    for n in sizes:
        hit = [bool((lambda r: r.lo[0] <= 200 <= r.hi[0])(bootstrap_percentiles(rng.lognormal(np.log(200), 0.5, n), [50], n_boot=n_boot, seed=k)))
               for k in range(reps)]
        out[str(n)] = round(float(np.mean(hit)), 3)
    return dict(coverage_D50_by_n=out, reps=reps, seconds=round(time.time() - t0, 1))

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--samples', type=int, default=200, help='samples per experiment')
    ap.add_argument('--images', type=int, default=8, help='frames per sample (experiment A)')
    ap.add_argument('--boot', type=int, default=1000, help='bootstrap resamples')
    ap.add_argument('--only', choices=['a', 'b', 'c', 'd'], default=None)
    ap.add_argument('--resample', choices=['particles', 'images'], default='particles', help='what a bootstrap resample draws (objects.risk.resample)')
    ap.add_argument('--out', default=None, help='also write the numbers to this JSON file')
    a = ap.parse_args()
    RESAMPLE = a.resample
    out = {}
    if a.only in (None, 'a'): out['A_generator'] = experiment_a(a.samples, a.images, a.boot); print(json.dumps(out['A_generator'], indent=1), flush=True)
    if a.only in (None, 'b'): out['B_pooling'] = experiment_b(a.samples, a.boot); print(json.dumps(out['B_pooling'], indent=1), flush=True)
    if a.only in (None, 'c'): out['C_emps_px'] = experiment_c(a.boot); print(json.dumps(out['C_emps_px'], indent=1), flush=True)
    if a.only in (None, 'd'): out['D_small_n'] = experiment_d(min(a.boot, 400)); print(json.dumps(out['D_small_n'], indent=1), flush=True)
    if a.out: open(a.out, 'w').write(json.dumps(out, indent=1))

"""Risk descriptors (06c_risk): bootstrap CIs on a known distribution, Feret diameters of a drawn rotated rectangle, the
lower size limit and pooling weights, the EU nanomaterial test on constructed particle tables, risk.csv/risk.json."""
import numpy as np
import pandas as pd
import pytest
from skimage.draw import polygon

from accords_tem.objects import object_features
from accords_tem.risk import (RiskConfig, weighted_percentiles, bootstrap_percentiles, wilson_ci, particle_table,
                              size_statistics, eu_particle, eu_test, risk_report)

def row(sample, image, fmin, px, *, border=False, th=None, fmax=None, H=4000, W=4000, bb=(0, 0, 2, 2)):
    d = {'sample': sample, 'image': image, 'class': 'GFM', 'feret_min': fmin, 'feret_max': fmax or fmin * 1.5,
         'equivalent_diameter': fmin * 1.2, 'nm_per_px': px, 'unit': 'nm' if px == px else 'px', 'touches_border': border,
         'bbox_r0': bb[0], 'bbox_c0': bb[1], 'bbox_r1': bb[2], 'bbox_c1': bb[3], 'height': H, 'width': W}
    if th is not None: d['thickness_nm'] = th
    return d

def images(px=1.0, H=4000): return pd.DataFrame(dict(image=['a'], sample='S', height=H, width=H, nm_per_px=[px]))

def test_bootstrap_coverage_lognormal():
    rng = np.random.default_rng(7)
    hits = [bootstrap_percentiles(rng.lognormal(np.log(200), 0.5, 150), [50], n_boot=400, seed=k).pipe(lambda r: r.lo[0] <= 200 <= r.hi[0])
            for k in range(200)]
    assert 0.90 <= np.mean(hits) <= 0.99

def test_weighted_percentiles_equal_weights_are_hazen():
    x = np.random.default_rng(0).normal(size=50)
    np.testing.assert_allclose(weighted_percentiles(x, [10, 50, 90], np.full(50, 3.0)), np.percentile(x, [10, 50, 90], method='hazen'))

def test_wilson_textbook():
    assert wilson_ci(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-3)

@pytest.mark.parametrize('deg', [0, 20, 45, 63])
def test_feret_of_rotated_rectangle(deg):
    a = np.deg2rad(deg); R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    P = np.array([[-15, -50], [15, -50], [15, 50], [-15, 50]]) @ R.T + 100
    lab = np.zeros((200, 200), np.int32); rr, cc = polygon(P[:, 1], P[:, 0], lab.shape); lab[rr, cc] = 1
    f = object_features(lab, spacing=0.5).iloc[0]
    assert f.feret_min == pytest.approx(30 * 0.5, abs=1.5 * 0.5)
    assert f.feret_max == pytest.approx(np.hypot(30, 100) * 0.5, abs=1.5 * 0.5)

def test_size_limit_edge_and_pooling():
    im = pd.DataFrame(dict(image=['a', 'b'], sample='S', height=100, width=100, nm_per_px=[1.0, 10.0]))
    ob = pd.DataFrame([row('S', 'a', 20., 1.0, H=100, W=100), row('S', 'b', 200., 10.0, H=100, W=100),
                       row('S', 'b', 50., 10.0, H=100, W=100), row('S', 'a', 30., 1.0, border=True, H=100, W=100)])
    pt = particle_table(ob, im, RiskConfig(edge_correction=False))
    assert list(pt.status) == ['measured', 'measured', 'below_limit', 'edge']
    np.testing.assert_allclose(pt.weight.to_numpy()[:2], [1e-4, 1 / 1.01e6])

def test_size_statistics_known_answer_and_qc():
    ob = pd.DataFrame([row('S', 'a', float(f), 1.0) for f in np.random.default_rng(0).permutation(np.arange(100, 500))])
    rc = RiskConfig(n_boot=300)
    st = size_statistics(particle_table(ob, images(), rc), images(), rc).set_index('measure')
    r = st.loc['feret_min']
    assert r.D50 == pytest.approx(299.5) and r.D50_lo < 299.5 < r.D50_hi and r.qc == 'pass' and r.n_measured == 400
    st = size_statistics(particle_table(ob.iloc[:10], images(), rc), images(), rc)
    assert (st.qc == 'fail').all() and st.qc_reasons.str.contains('too few').all()

def eu(fmins, ths=None, fmax=None, px=1.0):
    ob = pd.DataFrame([row('S', 'a', float(f), px, th=None if ths is None else ths[i], fmax=fmax) for i, f in enumerate(fmins)])
    return eu_test(particle_table(ob, images(px), RiskConfig()), RiskConfig())

@pytest.mark.parametrize('args,verdict,crit,count', [
    (([50.] * 70 + [300.] * 30, [30.] * 70 + [150.] * 30), 'meets', 'a', 70),
    (([300.] * 100, [0.34] * 60 + [200.] * 40), 'meets', 'c', 60),
    (([0.6] * 60 + [300.] * 40, [0.3] * 60 + [150.] * 40, 900., 0.01), 'meets', 'b', 60),
    (([300.] * 100, [150.] * 100), 'does not meet', 'a', 0),
])
def test_eu_criteria(args, verdict, crit, count):
    e = eu(*args)
    assert e['verdict'] == verdict
    assert e['criteria'][crit] == count

@pytest.mark.parametrize('args,why', [(([300.] * 100,), 'thickness not estimable'), (([50.] * 20,), 'too few'),
                                      (([50.] * 200, None, None, np.nan), 'no pixel size')])
def test_eu_undetermined(args, why):
    e = eu(*args)
    assert e['verdict'] == 'undetermined' and why in e['why']

def test_eu_particle_lateral_first():
    assert eu_particle(np.nan, 40, 300) == ('meets', 'a', 'feret_min')
    assert eu_particle(np.nan, 300, 900)[0] == 'unknown'

def test_risk_report_tables():
    ob = pd.DataFrame([row('S', 'a', float(f), 2.0) for f in np.random.default_rng(1).lognormal(np.log(80), 0.6, 150)])
    tab, js = risk_report(ob, images(2.0), RiskConfig(n_boot=200),
                          excluded=pd.DataFrame(dict(image=['x'], sample=['S'], reason=['unreadable'])))
    assert set(tab.measure) == {'equivalent_diameter', 'feret_min', 'feret_max'} and (tab.eu_verdict == 'meets').all()
    s = js['samples'][0]
    assert s['lower_limit']['nm'] == [20.0] and s['images_excluded'][0]['reason'] == 'unreadable' and s['cdf']['GFM']['feret_min']['F']


def test_agglomerates_known_answer():
    "Drawn particles: four in a row touching (one agglomerate), six apart, a hole touching a flake (not a particle)."
    from accords_tem.risk import contacts, agglomerate_stats
    lab = np.zeros((200, 1000), np.int32); rows = []
    for i in range(10):
        c0 = 100 + 40 * i if i < 4 else 100 + 60 * i
        lab[80:120, c0:c0 + 40] = i + 1
        rows.append(dict(row('S', 'a', 40.0, 1.0, H=200, W=1000, bb=(80, c0, 120, c0 + 40)), label=i + 1, stem='a'))
    lab[120:140, 650:690] = 11                                                 # a hole under particle 10
    ct = contacts(lab, keep=range(1, 11)).set_index('label')
    assert ct.group_size.tolist() == [4] * 4 + [1] * 6 and ct.n_contacts.tolist() == [1, 2, 2, 1] + [0] * 6
    assert contacts(lab).set_index('label').group_size[11] == 2
    tab, js = risk_report(pd.DataFrame(rows), images(H=1000).assign(height=200), RiskConfig(n_boot=100, min_particles=1),
                          labels={'a': lab})
    ag = js['samples'][0]['agglomerates']
    assert (ag['n_in_agglomerates'], ag['n_agglomerates'], ag['particles_per_agglomerate_median']) == (4, 1, 4.0)
    assert tab.agglomerated_share.iloc[0] == pytest.approx(0.4) and tab.agglomerated_share_lo.iloc[0] < 0.4 < tab.agglomerated_share_hi.iloc[0]
    _, js0 = risk_report(pd.DataFrame(rows), images(H=1000).assign(height=200), RiskConfig(n_boot=100, min_particles=1))
    assert js0['samples'][0]['agglomerates'] is None                          # no label images: not assessed

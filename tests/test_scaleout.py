"""Scale-out: `accords-tem predict --workers N` on a local Dask cluster gives the plain loop's outputs, resumes from its
done markers, survives a killed worker, and names a scheduler address that does not answer."""
import os, time
from pathlib import Path
import numpy as np, pandas as pd, pytest
from PIL import Image

pytest.importorskip('distributed')
from accords_tem.core import FailureLog, collect_batches, dask_client, map_images
from accords_tem.objects import predict_main

TINY = dict(encoder='resnet18', encoder_weights=None, decoder_channels=[32, 16, 8], tile_size=64, tile_overlap=16,
            instance_classes=[], tta_scales=[1.0], threshold_min_images=0, threshold_fallback=False)

@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    from accords_tem.seg_data import UnetConfig
    from accords_tem.seg_train import build_model, save_model
    import torch
    d = tmp_path_factory.mktemp('scaleout'); torch.manual_seed(0)
    u = UnetConfig(**TINY); save_model(d/'model', build_model(u)[0], u, {'GFM': {'threshold': 0.5}, 'carbonhole': {'threshold': 0.5}})
    (d/'imgs').mkdir()
    for i, shape in enumerate([(64, 64), (100, 80), (70, 90), (64, 128)]):
        im = (np.random.default_rng(i).random(shape) * 255).astype(np.uint8); im[10:40, 10:40] = 250   # one bright object each
        Image.fromarray(im).save(d/'imgs'/f'im{i}.png')
    (d/'imgs'/'broken.png').write_bytes(b'not a png')
    return d

@pytest.fixture(scope='module')
def cluster():
    "One local cluster of 2 worker processes (what `--workers 2` starts), shared by the tests: its scheduler's address."
    with dask_client(2) as c:
        assert sorted(c.nthreads().values()) == [1, 1]   # one task at a time per worker
        yield c

def _predict(d, out, *extra):
    return predict_main(['--model', str(d/'model'), '--images', str(d/'imgs'), '--out', str(out), '--tta', 'flips', '--no-figures', *extra])

def _same(a, b):
    "Masks and instances byte-equal, probabilities within float16 rounding, the tables equal."
    for sub in ('masks', 'instances'):
        names = sorted(p.name for p in (a/sub).iterdir())
        assert names == sorted(p.name for p in (b/sub).iterdir()) and names
        for n in names: assert (a/sub/n).read_bytes() == (b/sub/n).read_bytes(), n
    for n in sorted(p.name for p in (a/'probabilities').iterdir()):
        pa, pb = np.load(a/'probabilities'/n).astype(np.float32), np.load(b/'probabilities'/n).astype(np.float32)
        np.testing.assert_allclose(pa, pb, atol=2e-3)
    for t in ('predictions.csv', 'objects.csv', 'summary.csv'):
        pd.testing.assert_frame_equal(pd.read_csv(a/t), pd.read_csv(b/t), atol=1e-3)

def test_workers_same_outputs_and_resume(folder, cluster, capsys):
    d = folder
    assert _predict(d, d/'plain') == 0
    assert capsys.readouterr().out.strip().endswith('5 images: 4 ok, 1 failed (see ' + str(d/'plain'/'failures.csv') + ')')
    t0 = time.time()
    addr = ['--scheduler', cluster.scheduler.address]   # the CLI connects to the running cluster (as to one on SLURM)
    assert _predict(d, d/'dask', *addr) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith('5 images: 4 ok, 1 failed'), out
    _same(d/'plain', d/'dask')
    assert 'broken.png' in (d/'dask'/'failures.csv').read_text()
    assert sorted(p.name for p in (d/'dask'/'done').iterdir()) == [f'im{i}.json' for i in range(4)]
    # an interrupted job: im1's marker never written, im2's mask half there -> only those two are predicted again
    (d/'dask'/'done'/'im1.json').unlink(); (d/'dask'/'masks'/'im2_GFM.png').unlink()
    before = {p: p.stat().st_mtime_ns for p in (d/'dask'/'probabilities').iterdir()}
    assert _predict(d, d/'dask', *addr) == 0
    out = capsys.readouterr().out
    assert '2 image(s) done before were kept' in out and out.strip().splitlines()[-1].startswith('5 images: 4 ok, 1 failed'), out
    again = {p.name for p, t in before.items() if p.stat().st_mtime_ns != t}
    assert again == {'im1.npy', 'im2.npy'}, again
    _same(d/'plain', d/'dask')
    print(f'dask runs: {time.time() - t0:.1f} s')

def test_bad_scheduler_address(folder):
    import dask
    with dask.config.set({'distributed.comm.timeouts.connect': '1s'}), pytest.raises(SystemExit) as e:
        _predict(folder, folder/'nowhere', '--scheduler', 'tcp://127.0.0.1:9')
    assert 'no Dask scheduler answers' in str(e.value) and 'tcp://127.0.0.1:9' in str(e.value)

def test_stages_on_the_cluster(folder, cluster):
    "`accords-tem inventory|normalize --scheduler ADDRESS` write what the plain loop writes (core.map_images)."
    from accords_tem.cli import main
    common = ['--data', str(folder/'imgs'), '--set', "data.image_glob='*.png'", '--set', 'normalization.figures=false', '--set', 'io.thumbnails=0']
    for run, extra in (('plain', []), ('dask', ['--scheduler', cluster.scheduler.address])):
        for cmd in ('inventory', 'normalize'): assert main([cmd, '--out', str(folder/f'run_{run}'), *common, *extra]) == 0
    a, b = folder/'run_plain', folder/'run_dask'
    pd.testing.assert_frame_equal(pd.read_csv(a/'inventory.csv'), pd.read_csv(b/'inventory.csv'))
    names = sorted(p.name for p in (a/'normalized').glob('*.png'))
    assert names == [f'im{i}.png' for i in range(4)] and names == sorted(p.name for p in (b/'normalized').glob('*.png'))
    for n in names: assert (a/'normalized'/n).read_bytes() == (b/'normalized'/n).read_bytes()
    assert [r['file'].endswith('broken.png') for r in FailureLog(b, 'normalization').rows('normalization')] == [True]

def _dies_once(x):
    "Kills its worker process the first time it sees 'die' (a flag file says it did): Dask runs the task again elsewhere."
    flag = Path(x[1])
    if x[0] == 'die' and not flag.exists(): flag.write_text('x'); os._exit(1)
    return x[0].upper()

def test_killed_worker_is_retried(tmp_path, cluster):
    items = [(s, str(tmp_path/'flag')) for s in ('a', 'die', 'b', 'c')]
    with collect_batches() as got:
        res = map_images(_dies_once, items, FailureLog(tmp_path, 't'), progress=False, client=cluster)
    assert [r for _, r in res] == ['A', 'DIE', 'B', 'C'] and (tmp_path/'flag').exists()
    assert got[-1]['failed'] == 0


def test_masks_on_the_cluster(tmp_path, cluster):
    "Stage 02 with its images on the cluster writes what the plain loop writes: masks, tables, QA figures, failures, records."
    from accords_tem.core import cluster_options, load_config
    from accords_tem.masks import run_masks
    from test_masks import _scene
    _scene(tmp_path/'data')
    cfg = load_config(None, {'data.root': str(tmp_path/'data'), 'masks.classes': ['GFM', 'carbonhole']})
    plain = run_masks(cfg, tmp_path/'plain', progress=False)
    with cluster_options(scheduler=cluster.scheduler.address): dask = run_masks(cfg, tmp_path/'dask', progress=False)
    assert {k: v for k, v in plain.items() if k not in ('out_dir', 'seconds')} == {k: v for k, v in dask.items() if k not in ('out_dir', 'seconds')}
    a, b = tmp_path/'plain'/'masks', tmp_path/'dask'/'masks'
    names = sorted(p.relative_to(a).as_posix() for p in a.rglob('*.np[yz]')) + sorted(p.relative_to(a).as_posix() for p in a.glob('*/*.png'))
    assert names and names == sorted(p.relative_to(b).as_posix() for p in b.rglob('*.np[yz]')) + sorted(p.relative_to(b).as_posix() for p in b.glob('*/*.png'))
    for n in names:
        if not n.endswith('contact_sheet.png'): assert (a/n).read_bytes() == (b/n).read_bytes(), n
    for t in ('masks.csv', 'iou.csv'):
        pd.testing.assert_frame_equal(pd.read_csv(a/t).replace(str(tmp_path/'plain'), '', regex=True),
                                      pd.read_csv(b/t).replace(str(tmp_path/'dask'), '', regex=True))
    assert len(FailureLog(tmp_path/'dask', 'masks').rows()) == len(FailureLog(tmp_path/'plain', 'masks').rows()) == 4
    with cluster_options(scheduler=cluster.scheduler.address):   # resumed from the records the client kept
        assert run_masks(cfg, tmp_path/'dask', progress=False)['skipped'] == plain['written']


def test_objects_on_the_cluster(tmp_path, cluster):
    "Stage 06 with its images on the cluster: the plain loop's labels, objects.csv and evaluation; resumed from the client's records."
    from accords_tem.core import cluster_options, load_config
    from accords_tem.objects import run_objects
    from test_objects import _toy
    _toy(tmp_path/'data', tmp_path/'plain'); _toy(tmp_path/'data2', tmp_path/'dask')
    kw = {'objects.source': 'ilastik', 'objects.n_estimators': 20, 'objects.class_from': 'mask', 'objects.max_overlays': 1}
    plain = run_objects(load_config(None, {'data.root': str(tmp_path/'data'), **kw}), tmp_path/'plain')
    cfg = load_config(None, {'data.root': str(tmp_path/'data2'), **kw})
    with cluster_options(scheduler=cluster.scheduler.address): dask = run_objects(cfg, tmp_path/'dask')
    assert (plain['n_objects'], plain['n_failed'], plain['counts']) == (dask['n_objects'], dask['n_failed'], dask['counts'])
    a, b = tmp_path/'plain'/'objects', tmp_path/'dask'/'objects'
    for p in sorted((a/'labels').glob('*.png')): assert p.read_bytes() == (b/'labels'/p.name).read_bytes(), p.name
    drop = lambda df: df.drop(columns=[c for c in ('image',) if c in df])
    pd.testing.assert_frame_equal(drop(pd.read_csv(a/'objects.csv')), drop(pd.read_csv(b/'objects.csv')))
    with cluster_options(scheduler=cluster.scheduler.address):
        again = run_objects(cfg, tmp_path/'dask')
    assert again['n_objects'] == dask['n_objects'] and len(list((b/'labels').glob('*.png'))) == 2


def test_dataset_on_the_cluster(tmp_path, cluster):
    "Stage 03 with its pairs on the cluster: the plain loop's dataset (images, masks, qc.csv) and failures; resumed from the client's records."
    from accords_tem.core import cluster_options
    from accords_tem.postprocessing import make_demo_inputs, run_postprocessing
    from test_postprocessing import _cfg
    make_demo_inputs(tmp_path/'data', size=64)   # with one of each bad input
    cfg = _cfg(tmp_path/'data')
    plain = run_postprocessing(cfg, tmp_path/'plain', progress=False)
    with cluster_options(scheduler=cluster.scheduler.address): dask = run_postprocessing(cfg, tmp_path/'dask', progress=False)
    assert {k: v for k, v in plain.items() if k not in ('out', 'seconds')} == {k: v for k, v in dask.items() if k not in ('out', 'seconds')}
    a, b = tmp_path/'plain'/'dataset', tmp_path/'dask'/'dataset'
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob('*') if p.is_file() and p.suffix in ('.png', '.npy', '.h5') and p.parent != a)
    assert files and files == sorted(p.relative_to(b).as_posix() for p in b.rglob('*') if p.is_file() and p.suffix in ('.png', '.npy', '.h5') and p.parent != b)
    for f in files:
        if f.endswith('.npy') or f.startswith('images/'): assert (a/f).read_bytes() == (b/f).read_bytes(), f
    pd.testing.assert_frame_equal(pd.read_csv(a/'qc.csv'), pd.read_csv(b/'qc.csv'))
    assert sorted(r['reason'] for r in FailureLog(tmp_path/'dask', 'postprocessing').rows()) == \
           sorted(r['reason'] for r in FailureLog(tmp_path/'plain', 'postprocessing').rows())
    with cluster_options(scheduler=cluster.scheduler.address):
        assert run_postprocessing(cfg, tmp_path/'dask', progress=False)['skipped_fresh'] == plain['written']

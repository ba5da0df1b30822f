"""Sharing a model (05e_export): ONNX export and ONNX Runtime parity through the one tiled/TTA prediction path, predict --runtime
onnx, the model card written by stage 05, and the bioimage.io package passing bioimageio.core's own test."""
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

from accords_tem.core import load_config
from accords_tem.seg_data import UnetConfig
from accords_tem.seg_train import build_model, save_model, load_model
from accords_tem.seg_eval import predict_tiled
from accords_tem import export, unet
from accords_tem.layout import layout_problems

TINY = dict(encoder='resnet18', encoder_weights=None, decoder_channels=[32, 16, 8], tile_size=64, tile_overlap=32, tta_scales=[1.0],
            instance_classes=['GFM'])
ATOL = 1e-4   # ONNX Runtime vs PyTorch, float32 probabilities (absolute): the same arithmetic in another order


def _model(d:Path, seed:int=0, **kw) -> Path:
    torch.manual_seed(seed); u = UnetConfig(**{**TINY, **kw}); m = build_model(u)[0]
    for p in m.parameters(): p.data += 0.05 * torch.randn_like(p)
    return save_model(d, m, u, {'GFM': {'threshold': 0.4}, 'carbonhole': {'threshold': 0.6}})


@pytest.mark.parametrize('gate', [False, True])
def test_onnx_matches_torch_on_another_size(tmp_path, gate):
    d = _model(tmp_path/'m', frame_gate=gate)
    data = export.export_onnx(d, tmp_path/'m.onnx', size=64)   # traced at 64 x 64
    mo = onnx.load_from_string(data); onnx.checker.check_model(mo, full_check=True)
    assert [x.dim_param or x.dim_value for x in mo.graph.input[0].type.tensor_type.shape.dim] == ['batch', 1, 'height', 'width']
    sm = load_model(d)
    img = (np.random.default_rng(3).random((100, 140)) * 255).astype(np.uint8)
    kw = dict(tile=64, overlap=32, batch=3, tta='d4', device='cpu', amp=False)
    p_t, u_t = predict_tiled(sm.model, img, **kw)
    p_o, u_o = predict_tiled(export.runtime_model(d, sm, 'onnx'), img, **kw)
    assert p_o.shape == (3, 100, 140)
    assert np.abs(p_o - p_t).max() < ATOL and np.abs(u_o - u_t).max() < ATOL
    p_w, _ = predict_tiled(sm.model, img, **{**kw, 'tile': 160})   # one whole-image tile (160 x 160 padded), batch 1
    p_wo, _ = predict_tiled(export.runtime_model(d, sm, 'onnx'), img, **{**kw, 'tile': 160})
    assert np.abs(p_wo - p_w).max() < ATOL


def test_onnx_file_in_folder_used_only_when_it_matches(tmp_path):
    d = _model(tmp_path/'m')
    export.export_onnx(d, d/'model.onnx')
    assert export.onnx_session(d).get_modelmeta().custom_metadata_map['weights_sha256'] == export.weights_digest(d)
    _model(d, seed=1)   # new weights: the stale file is not used, an in-memory export of the new ones is
    s = export.onnx_session(d)
    assert s.get_modelmeta().custom_metadata_map['weights_sha256'] == export.weights_digest(d)
    (d/'model.onnx').write_bytes(b'not onnx')   # a damaged file: exported anew too
    assert export.onnx_session(d).get_modelmeta().custom_metadata_map['weights_sha256'] == export.weights_digest(d)


def test_predict_cli_runtime_onnx(tmp_path, monkeypatch):
    from PIL import Image
    import accords_tem.seg_eval
    monkeypatch.setattr(accords_tem.seg_eval, 'cpu_has_bf16', lambda: False)   # torch in float32 too (else bf16 autocast here)
    from accords_tem.objects import predict_main
    d = _model(tmp_path/'m')
    (tmp_path/'imgs').mkdir()
    for i, shape in enumerate([(64, 64), (100, 80)]):
        Image.fromarray((np.random.default_rng(i).random(shape) * 255).astype(np.uint8)).save(tmp_path/'imgs'/f'im{i}.png')
    for rt in ('torch', 'onnx'):
        assert predict_main(['--model', str(d), '--images', str(tmp_path/'imgs'), '--out', str(tmp_path/rt), '--runtime', rt,
                             '--no-figures']) == 0
    for i in range(2):
        a, b = (np.load(tmp_path/rt/'probabilities'/f'im{i}.npy').astype(np.float32) for rt in ('torch', 'onnx'))
        assert a.shape == b.shape
        assert np.abs(a - b).max() < 1e-3   # saved as float16: 2.4e-4 resolution at 0.5
    assert set(pd.read_csv(tmp_path/'onnx'/'predictions.csv').image) == {'im0.png', 'im1.png'}


def test_bioimageio_package_passes_core_test(tmp_path):
    from bioimageio.core import test_model
    d = _model(tmp_path/'m')
    export.write_model_card(d, dict(real_images=3, nm_per_px=[0.5, 1.25, 2.0], nm_per_px_known='3 of 3'),
                            pd.DataFrame([dict(subset='val', images=1, reduction='pooled', cls='GFM', iou=0.5, dice=2 / 3, precision=0.6, recall=0.7)]))
    assert export.export_model_main([str(d), '--format', 'bioimageio', '--out', str(tmp_path/'pkg.zip'), '--author', 'A. Tester',
                                     '--data-cite', 'toy images', 'https://example.org/toy']) == 0
    summary = test_model(tmp_path/'pkg.zip')
    assert summary.status == 'passed', summary.format()
    assert any('onnx' in x.name for x in summary.details) and any('pytorch_state_dict' in x.name for x in summary.details)
    import yaml
    with zipfile.ZipFile(tmp_path/'pkg.zip') as z:
        rdf = yaml.safe_load(z.read('rdf.yaml')); readme = z.read('README.md').decode()
        assert {'weights.pt', 'model.onnx', 'cover.png', 'test_input.npy', 'test_output.npy', 'thresholds.json'} <= set(z.namelist())
    inp, out = rdf['inputs'][0], rdf['outputs'][0]
    assert [p['id'] for p in inp['preprocessing'] if p['id'] != 'ensure_dtype'] == ['scale_range', 'clip', 'scale_linear']
    y = next(a for a in inp['axes'] if a.get('id') == 'y')
    assert y['unit'] == 'nanometer' and y['scale'] == 1.25   # the training images' median pixel size (card)
    assert next(a for a in out['axes'] if a['type'] == 'channel')['channel_names'] == ['GFM', 'carbonhole', 'GFM_centre']
    assert next(a for a in out['axes'] if a.get('id') == 'x')['halo'] == export.HALO   # block-wise tools crop it
    assert '| val | 1 | pooled | GFM | 0.500 | 0.667 |' in readme and 'ilastik' in readme
    assert rdf['weights']['pytorch_state_dict']['architecture']['callable'] == 'Unet'


@pytest.mark.slow
def test_stage05_writes_model_card(tmp_path):
    unet.write_toy_dataset(tmp_path, n=6, size=64)
    tiny = {**TINY, 'instance_classes': [], 'synthetic_per_material': 0, 'train_scale_copies': [], 'threshold_min_images': 0,
            'batch_size': 4, 'patch_size': 64, 'stride': 64, 'epochs': 1, 'min_steps': 0, 'max_figures': 0, 'predict_run_images': False}
    unet.run_unet(load_config(None, {f'unet.{k}': v for k, v in tiny.items()}), tmp_path, progress=False)
    assert layout_problems(tmp_path) == []      # unet/ split, subset counts, metrics, per-image tables
    card = json.loads((tmp_path/'unet'/'model'/'card.json').read_text())
    assert card['training_data']['real_images'] == 6 and card['training_data']['height_px'] == [64, 64]
    assert {r['subset'] for r in card['metrics']} == {'val', 'test'}
    text = (tmp_path/'unet'/'model'/'model_card.md').read_text()
    for part in ('## Training data', '## Validation metrics', '## Intended use', '## Known limits', 'pooled'):
        assert part in text, part


def test_fold_ensemble_predicts_mean_of_folds(tmp_path, monkeypatch):
    from PIL import Image
    import accords_tem.seg_eval
    from accords_tem.objects import predict_main
    monkeypatch.setattr(accords_tem.seg_eval, 'cpu_has_bf16', lambda: False)
    cv = tmp_path/'unet_cv'
    for f in range(3): _model(cv/f'fold_{f}'/'model', seed=f)
    (cv/'fold_3').mkdir()   # an unfinished fold (no model yet) is left out
    (tmp_path/'imgs').mkdir()
    Image.fromarray((np.random.default_rng(5).random((90, 70)) * 255).astype(np.uint8)).save(tmp_path/'imgs'/'a.png')
    assert predict_main(['--model', str(cv), '--images', str(tmp_path/'imgs'), '--out', str(tmp_path/'ens'), '--no-figures']) == 0
    for f in range(3):
        assert predict_main(['--model', str(cv/f'fold_{f}'/'model'), '--images', str(tmp_path/'imgs'), '--out', str(tmp_path/f'f{f}'),
                             '--no-figures']) == 0
    ps = [np.load(tmp_path/f'f{f}'/'probabilities'/'a.npy').astype(np.float32) for f in range(3)]
    us = [np.load(tmp_path/f'f{f}'/'uncertainty'/'a.npy').astype(np.float32) for f in range(3)]
    pe = np.load(tmp_path/'ens'/'probabilities'/'a.npy').astype(np.float32); ue = np.load(tmp_path/'ens'/'uncertainty'/'a.npy').astype(np.float32)
    assert np.abs(pe - np.mean(ps, 0)).max() < 1e-3                       # float16 files
    assert (ue >= np.mean(us, 0) - 1e-3).all() and (ue > np.mean(us, 0) + 1e-3).any()   # fold disagreement adds to the TTA spread
    assert set(pd.read_csv(tmp_path/'ens'/'predictions.csv').threshold) == {0.4, 0.6}   # the folds' mean thresholds
    assert len(export.load_predictor(cv, runtime='onnx').members) == 3
    with pytest.raises(Exception, match='fold_'): export.fold_model_dirs(tmp_path/'imgs')


@pytest.mark.parametrize('fmt,name', [('bioimageio', 'pkg.txt'), ('onnx', 'model.zip')])
def test_export_model_refuses_a_wrong_suffix(tmp_path, fmt, name):
    "An --out whose suffix is not the format's is refused before anything is read or written, naming the file and the suffix."
    with pytest.raises(SystemExit, match=rf"{name}: --format {fmt} writes a \.(zip|onnx) file"):
        export.export_model_main([str(tmp_path/'no-model'), '--format', fmt, '--out', str(tmp_path/name)])
    assert not (tmp_path/name).exists()

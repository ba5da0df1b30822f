"""One source of defaults (issue 17 item 3), the package's own configurations and notebooks (item 6), a quiet console (item 8).

The subprocess tests run from a folder outside the clone and install nothing: they see the package through PYTHONPATH,
either the clone itself or a copy laid out as `pip install .` lays it out (setup.py: configs/ -> accords_tem/configs,
the stage notebooks -> accords_tem/nbs)."""
import json, os, shutil, subprocess, sys, textwrap
from pathlib import Path

import pytest
import yaml

from accords_tem import core
from accords_tem.core import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def _py(code:str, cwd, pythonpath, env=None) -> subprocess.CompletedProcess:
    env = {**os.environ, 'PYTHONPATH': str(pythonpath), 'HF_HUB_OFFLINE': '1', 'MPLBACKEND': 'Agg', **(env or {})}
    env.pop('ACCORDS_TEM_NBS', None)
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------- one source of defaults
def test_default_yaml_states_the_models_defaults():
    stated = yaml.safe_load((ROOT/'configs'/'default.yaml').read_text())
    assert core.same_keys(stated, core.default_values()) == []              # every key of every model, none more
    assert load_config('default').to_dict() == load_config(None).to_dict()  # ... with the models' values


def test_section_snapshot_is_current():
    assert core.make_section_snapshot() == json.loads((ROOT/'configs'/'sections.json').read_text()), \
        'a section model changed: run `accords-tem config snapshot` and commit configs/sections.json'


def test_demo_is_an_overlay_naming_only_changes():
    demo = yaml.safe_load((ROOT/'configs'/'demo.yaml').read_text())
    assert demo.pop('base') == 'default'
    d0 = load_config(None).to_dict()
    for sec, v in demo.items():
        if sec == 'data': continue                                          # a path: relative to the file, not the defaults'
        if isinstance(v, dict):
            for k, x in v.items():
                if isinstance(x, dict) and isinstance(d0[sec][k], dict) and k in ('sam', 'augment'):
                    assert all(d0[sec][k][kk] != xx for kk, xx in x.items() if kk != 'checkpoint'), (sec, k)
                else: assert d0[sec][k] != x, f'demo.yaml repeats the default of {sec}.{k}'
        else: assert d0[sec] != v, sec
    assert load_config('demo').data.root == str(ROOT/'data_sample')


def test_overlays_relative_paths_and_errors(tmp_path):
    (tmp_path/'lab').mkdir()
    (tmp_path/'lab'/'base.yaml').write_text('base: demo\ndata: {root: images}\nunet: {epochs: 3, augment: {p: 0.9}}\n')
    (tmp_path/'mine.yaml').write_text('base: lab/base.yaml\nname: mine\nunet: {losses: {GFM: {kind: dice}}}\n')
    c = load_config(tmp_path/'mine.yaml', {'unet.batch_size': 2})
    u = c.section('unet')
    assert (c.name, u.epochs, u.batch_size, u.augment.p, u.augment.flips, list(u.losses)) == ('mine', 3, 2, 0.9, True, ['GFM'])
    assert c.data.root == str(tmp_path/'images')                            # relative to the file loaded
    assert c.section('objects').n_estimators == load_config('demo').section('objects').n_estimators   # from demo, two bases down
    (tmp_path/'bad.yaml').write_text('base: demo\nunet: {epochz: 3}\n')
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'unet.epochz'"): load_config(tmp_path/'bad.yaml')
    (tmp_path/'bad.yaml').write_text('base: [demo]\n')
    with pytest.raises(ConfigError, match="'base' names one configuration"): load_config(tmp_path/'bad.yaml')


def test_config_init_writes_a_loadable_overlay(tmp_path, capsys):
    from accords_tem.cli import main
    out = tmp_path/'my.yaml'
    assert main(['config', 'init', '--classes', 'flake', 'particle', '--data', str(tmp_path), '--out', str(out)]) == 0
    c = load_config(out)
    assert c.class_names() == ['flake', 'particle', 'background'] and c.data.root == str(tmp_path)
    for sec, keys in core.CLASS_KEYS.items():                               # every class-naming key follows the classes
        s = c.section(sec)
        for key in keys:
            attr, _, rest = key.partition('.')
            v = getattr(s, attr)
            if rest and rest != '*': v = getattr(v, rest)                # a sub-section's key (objects.risk.classes)
            names = set(v) if isinstance(v, (list, dict)) else {v} - {None}
            assert names <= set(c.class_names()), (sec, key, v)
    assert yaml.safe_load(out.read_text())['base'] == 'default'
    assert main(['config', 'show', '--config', str(out)]) == 0 and 'particle' in capsys.readouterr().out


def test_loading_a_config_imports_no_torch(tmp_path):
    r = _py("""
        import sys, accords_tem.core as c
        c.load_config(None); c.load_config('demo'); c.load_config('default')
        c.load_config(None, {'unet.epochs': 3, 'objects.object_classes': ['GFM'], 'classifier.backbones': ['resnet18']})
        heavy = [m for m in ('torch', 'fastai', 'reportlab', 'timm', 'segmentation_models_pytorch') if m in sys.modules]
        assert not heavy, heavy
        try: c.load_config(None, {'objects.object_classes': ['GMF']})
        except c.ConfigError as e: assert "'objects.object_classes' names unknown class 'GMF'" in str(e), e
        else: raise AssertionError('a misspelt class passed')
        print('ok')""", cwd=tmp_path, pythonpath=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == 'ok', r.stderr


# ---------------------------------------------------------------- the package's own files
def test_shipped_names_resolve_outside_the_clone(tmp_path):
    "From a folder outside the clone: `--config default` / `demo` are the clone's files (an editable install)."
    r = _py(f"""
        import accords_tem.core as c, accords_tem.pipeline as p
        assert c.config_file('default') == c.configs_dir()/'default.yaml', c.config_file('default')
        assert str(c.configs_dir()) == {str(ROOT/'configs')!r}, c.configs_dir()
        assert c.load_config('default').data.root == {str(tmp_path/'data_sample')!r}   # default.yaml: the working folder
        assert str(p.nbs_dir()) == {str(ROOT/'nbs')!r}
        print('ok')""", cwd=tmp_path, pythonpath=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == 'ok', r.stderr


def test_installed_layout_finds_configs_and_notebooks(tmp_path):
    "The layout of `pip install .` (setup.py's package_dir): the package's own configs/ and nbs/, no clone around."
    site = tmp_path/'site'; pkg = site/'accords_tem'
    shutil.copytree(ROOT/'accords_tem', pkg, ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copytree(ROOT/'configs', pkg/'configs')
    (pkg/'nbs').mkdir()
    for nb in sorted((ROOT/'nbs').glob('0[0-7]_*.ipynb')): (pkg/'nbs'/nb.name).symlink_to(nb)
    setup = (ROOT/'setup.py').read_text()
    assert "package_dir={lib_path + '.configs': 'configs', lib_path + '.nbs': 'nbs'}" in setup
    work = tmp_path/'work'; work.mkdir()
    r = _py(f"""
        import accords_tem, accords_tem.core as c, accords_tem.pipeline as p, accords_tem.cli as cli
        assert accords_tem.__file__.startswith({str(site)!r}), accords_tem.__file__
        assert c.config_file('demo') == c.configs_dir()/'demo.yaml' and str(c.configs_dir()).startswith({str(site)!r})
        cfg = c.load_config(cli.config_path('default', 'RUN'), {{'data.root': 'mydata'}})
        assert cfg.data.root == {str(work/'mydata')!r}, cfg.data.root
        assert [s.key for s in p.available_stages()] == [s.key for s in p.STAGES], p.available_stages()
        assert str(p.nbs_dir()).startswith({str(site)!r})
        print('ok')""", cwd=work, pythonpath=site)
    assert r.returncode == 0 and r.stdout.strip() == 'ok', r.stderr


def test_public_api_is_light_and_lazy(tmp_path):
    r = _py("""
        import sys, accords_tem as a
        assert set(a.__all__) >= {'read_tem', 'pixel_size', 'load_config', 'run', 'predict', 'measure'}
        a.read_tem, a.pixel_size, a.load_config
        assert 'torch' not in sys.modules
        print('ok')""", cwd=tmp_path, pythonpath=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == 'ok', r.stderr


def test_dev_tools_are_not_runtime_requirements():
    import configparser
    cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(ROOT/'settings.ini')
    req, dev = cfg['DEFAULT']['requirements'].split(), cfg['DEFAULT']['dev_requirements'].split()
    for tool in ('nbdev', 'execnb', 'ghapi', 'fastgit', 'pytest'):
        assert not any(r.startswith(tool) for r in req), tool
    assert any(r.startswith('nbdev') for r in dev) and 'pip install -e ".[dev]"' in (ROOT/'Makefile').read_text()


# ---------------------------------------------------------------- the console
def test_no_torch_jit_warning_on_import(tmp_path):
    r = _py("import accords_tem.seg_train", cwd=tmp_path, pythonpath=ROOT, env={'PYTHONWARNINGS': 'default'})
    assert r.returncode == 0, r.stderr
    assert 'torch.jit' not in r.stderr, r.stderr


@pytest.mark.slow
def test_kernel_messages_go_to_the_run_folder(tmp_path, capfd):
    "A stage's kernel start-up warning and shutdown messages land in RUN/notebooks/<stage>.kernel.log, not the console."
    import nbformat
    from accords_tem import pipeline
    nbs = tmp_path/'nbs'; nbs.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("config_file = run_dir = ''\nforce = False", metadata={'tags': ['parameters']}),
                nbformat.v4.new_code_cell('#|stage\nx = 1')]
    nbformat.write(nb, nbs/'00_io.ipynb')
    run = tmp_path/'run'; (run/'notebooks').mkdir(parents=True)
    pipeline.execute_stage(pipeline.STAGES[0], run, nbs)
    err = capfd.readouterr().err
    assert 'IPKernelApp' not in err and 'KeyboardInterrupt' not in err, err
    assert (run/'notebooks'/'00_io.ipynb').exists() and (run/'notebooks'/'00_io.kernel.log').exists()


def test_a_risk_class_typo_is_refused_at_load():
    from accords_tem.core import ConfigError
    with pytest.raises(ConfigError, match=r"'objects\.risk' names unknown class 'GMF'"):
        load_config(None, {'objects.risk.classes': ['GMF']})
    assert load_config(None, {'objects.risk.hole_class': None}).section('objects').risk.hole_class is None


def test_unstated_class_keys_follow_the_classes(tmp_path):
    """A config with its own classes that leaves a class-naming key unstated (written before the key existed, or by hand)
    loads, and that key follows its classes as `adapt_classes` sets them; a key it states must name its classes."""
    import sys
    p = tmp_path/'c.yaml'
    p.write_text('classes:\n- {name: particle, label: 1}\n- {name: background, label: 2}\n'
                 'objects: {object_classes: [particle]}\npostprocessing: {background_class: background}\n')
    cfg = load_config(p)
    o = cfg.section('objects')
    assert (o.risk.classes, o.risk.hole_class, o.risk.film_class, o.object_classes) == (['particle'], None, None, ['particle'])
    assert cfg.section('unet').target_classes == ['particle'] and cfg.section('report').size_classes == ['particle']
    assert cfg.section('masks').classes == ['particle'] and cfg.section('report').background_classes == ['background']
    p.write_text(p.read_text().replace('object_classes: [particle]', 'object_classes: [partcle]'))
    with pytest.raises(ConfigError, match="'objects.object_classes' names unknown class 'partcle'"): load_config(p)

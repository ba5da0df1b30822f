"""Label Studio (10b_label_studio) against a real server started here: project creation, pre-annotations, a person's
correction submitted through the API, the corrections back in the dataset exactly as drawn; a headless-Chromium
screenshot of a task showing the model's pre-annotation, and a brush stroke painted in that browser, submitted and
brought back (the browser's own RLE).

The server lives in its own virtual environment (ROOT/.venv-labelstudio, or $ACCORDS_LABEL_STUDIO_ENV), made here on
first use (pip install label-studio: 75-130 s on this 2-core machine), and starts on a fresh database (migrations:
about 80 s). The first run keeps that migrated, empty database in the environment (.accords-test-data/), from which
later runs start a server in about 7 s: the tests are marked slow (skipped without --runslow) until it exists, and take
about 40 s after. Skipped when label-studio-sdk is missing (make label-studio-sdk) or the environment cannot be made.
The screenshot goes to $ACCORDS_SCREENSHOT_DIR (default: the test's temporary folder)."""
import os, shutil, socket, time
from pathlib import Path

import numpy as np
from PIL import Image
import pytest

pytest.importorskip('label_studio_sdk', reason='label-studio-sdk is not installed: make label-studio-sdk')
from accords_tem import label_studio as lsm
from accords_tem.cli import main
from accords_tem.core import AccordsError
from accords_tem.review import prediction_label_image, write_toy_review_run
from accords_tem.seg_data import load_mask, read_instances

ROOT = Path(__file__).resolve().parents[1]
ENV = Path(os.environ.get('ACCORDS_LABEL_STUDIO_ENV', ROOT/'.venv-labelstudio'))
TEMPLATE = ENV/'.accords-test-data'      # a migrated, empty database and its user: later test servers start in seconds
CHROMIUM, DRIVER = shutil.which('chromium'), shutil.which('chromedriver')
pytestmark = [] if TEMPLATE.exists() else [pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    t0 = time.time()
    try: lsm.label_studio_env(ENV)
    except Exception as e: pytest.skip(f'no Label Studio environment in {ENV}, and it could not be made: {e}')
    made = time.time() - t0
    data, port = tmp_path_factory.mktemp('ls')/'data', _free_port()
    url = f'http://127.0.0.1:{port}'
    if not TEMPLATE.exists():                    # first run: migrate a database, stop, keep it
        data.mkdir(); proc = lsm.start_server(ENV, data, port=port)
        try: first = lsm.wait_ready(url, proc, timeout=600, log=data/'server.log')
        finally: lsm.stop_server(proc)
        print(f'\nLabel Studio environment ready in {made:.0f} s, first start (database migrations) {first:.0f} s')
        (data/'server.log').unlink(missing_ok=True)
        shutil.copytree(data, TEMPLATE.with_name(TEMPLATE.name + '.tmp'), dirs_exist_ok=True)
        os.replace(TEMPLATE.with_name(TEMPLATE.name + '.tmp'), TEMPLATE); shutil.rmtree(data)
    shutil.copytree(TEMPLATE, data)
    proc = lsm.start_server(ENV, data, port=port)
    try:
        up = lsm.wait_ready(url, proc, timeout=600, log=data/'server.log')
        print(f'\nLabel Studio server up in {up:.0f} s')
        yield url, lsm.server_credentials(data)
    finally: lsm.stop_server(proc)


def _toy(tmp_path, size):
    run, cfg = write_toy_review_run(tmp_path, size=size)
    return run, cfg


def test_round_trip_through_the_commands(server, tmp_path):
    url, cred = server
    run, cfg = _toy(tmp_path, 96)
    key = ['--api-key', cred['api_key']]
    assert main(['review', str(run), '--export', '2', '--to-label-studio', url, *key]) == 0
    sent = lsm.read_project(run)
    ls = lsm.connect(url, cred['api_key'])
    # the project: its labeling config paints GFM and carbonhole (undefined is what is left unpainted)
    proj = ls.projects.get(sent['project_id'])
    assert '<BrushLabels name="classes" toName="image">' in proj.label_config
    assert 'value="GFM"' in proj.label_config and 'value="carbonhole"' in proj.label_config and 'value="undefined"' not in proj.label_config
    tasks = {t.id: t for t in ls.tasks.list(project=proj.id)}
    assert sorted(tasks) == sorted(map(int, sent['tasks']))
    assert [t['image'] for t in sent['tasks'].values()] == ['img_1', 'img_3']          # the queue's first two, in order
    # the pre-annotations: the model's masks, the predicted flake as one GFM region
    for tid, t in sent['tasks'].items():
        preds = ls.predictions.list(task=int(tid))
        assert len(preds) == 1 and preds[0].model_version == f'{run.name} r0'
        lab, obj, oc = lsm.regions_labels(preds[0].result, cfg, (t['height'], t['width']))
        np.testing.assert_array_equal(lab, prediction_label_image(run, t['image'], cfg))
        assert oc == ['GFM'] and obj.max() == 1
    # a person corrects img_1: the flake's lower half erased, a new flake and a carbon hole painted, Submit
    tid, t = next((int(k), v) for k, v in sent['tasks'].items() if v['image'] == 'img_1')
    lab = prediction_label_image(run, 'img_1', cfg); h = lab.shape[0]
    flake = lab == 1; flake[h // 2:] = False
    new = np.zeros_like(flake); new[60:80, 60:85] = True
    hole = np.zeros_like(flake); hole[2:8, 70:90] = True
    drawn = [lsm.mask_result(flake, 'GFM'), lsm.mask_result(new, 'GFM'), lsm.mask_result(hole, 'carbonhole')]
    ls.annotations.create(id=tid, result=drawn, was_cancelled=False, ground_truth=False, lead_time=30.0)
    # back: only the annotated task, into the dataset, exactly as drawn
    assert main(['review', str(run), '--from-label-studio', *key]) == 0
    exp = lsm.read_export(run)
    assert exp.set_index('image').status.to_dict() == {'img_1': 'imported', 'img_3': 'not annotated'}
    want = np.full(lab.shape, 3); want[flake | new] = 1; want[hole] = 2
    np.testing.assert_array_equal(load_mask(run/'dataset'/'masks'/'img_1.npy'),
                                  (want[None] == np.array([1, 2, 3]).reshape(3, 1, 1)).astype(np.uint8))
    inst = read_instances(run/'dataset'/'instances'/'img_1.tif', lab.shape)
    np.testing.assert_array_equal(inst == 1, flake); np.testing.assert_array_equal(inst == 2, new); assert inst.max() == 2
    corrected = run/'review'/'label-studio'/'corrected'
    assert (corrected/'img_1_Labels.h5').exists() and not (corrected/'img_3_Labels.h5').exists()   # for `accords-tem round`
    # errors that say what is wrong: a refused key, a project deleted on the server
    with pytest.raises(AccordsError, match='refuses the API key'): lsm.connect(url, 'not-the-key')
    ls.projects.delete(id=proj.id)
    with pytest.raises(AccordsError, match='no longer on'): lsm.fetch_from_label_studio(run, cred['api_key'], cfg)


def test_ml_backend_answers_label_studio(server, tmp_path):
    """The run's model as an ML backend: connected to a project, asked by Label Studio itself (the data manager's
    Retrieve Predictions) for a task's prediction; what Label Studio stores is the model's prediction of that picture."""
    import json, threading, torch
    from accords_tem.core import prepare_run
    from accords_tem.seg_data import UnetConfig
    from accords_tem.seg_train import build_model, save_model
    from accords_tem.unet import predict_images
    url, cred = server
    run, cfg = _toy(tmp_path, 64)
    torch.manual_seed(0); u = UnetConfig(encoder='resnet18', encoder_weights=None, decoder_channels=[16, 8, 8], tile_size=64,
                                          tile_overlap=16, tta_scales=[1.0], instance_classes=['GFM'])
    model = save_model(run/'unet'/'model', build_model(u)[0], u, {'GFM': {'threshold': 0.5}, 'carbonhole': {'threshold': 0.5}})
    ls = lsm.connect(url, cred['api_key'])
    bg = cfg.section('postprocessing').background_class
    proj = ls.projects.create(title='backend test', label_config=lsm.labeling_config([(c.name, c.color) for c in cfg.classes if c.name != bg], ['GFM'], bg))
    img = (np.random.default_rng(2).random((64, 80)) * 255).astype(np.uint8)
    tid = lsm._upload(ls, proj.id, 'task.png', lsm._png(img))
    srv = lsm.backend_server(model, cfg, url, cred['api_key'], port=0, version='toy r0')
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        http = ls._client_wrapper.httpx_client
        r = http.request('api/ml', method='POST', json=dict(url=f'http://127.0.0.1:{srv.server_port}', project=proj.id, title='accords-tem'))
        assert r.status_code < 300, r.text
        r = http.request('api/dm/actions', method='POST', params=dict(id='retrieve_tasks_predictions', project=proj.id),
                         json=dict(selectedItems=dict(all=True, excluded=[])))
        assert r.status_code < 300, r.text
        preds = ls.predictions.list(task=tid)
        assert len(preds) == 1 and preds[0].model_version == 'toy r0'
        (tmp_path/'pic').mkdir(); Image.fromarray(img).save(tmp_path/'pic'/'task.png')
        predict_images(model, tmp_path/'pic', tmp_path/'own'/'unet'/'predict', figures=False, progress=False)
        lab, _, _ = lsm.regions_labels(preds[0].result, cfg, img.shape)
        np.testing.assert_array_equal(lab, prediction_label_image(tmp_path/'own', 'task', cfg))
    finally: srv.shutdown(); srv.server_close()


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason='needs Debian chromium + chromium-driver (make sysdeps)')
def test_screenshot_of_a_task_with_the_pre_annotation(server, tmp_path):
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import WebDriverWait
    url, cred = server
    run, cfg = _toy(tmp_path, 256)
    from accords_tem.review import review_queue
    review_queue(run, cfg, export=0, figure=False)
    sent = lsm.send_to_label_studio(run, url, cred['api_key'], cfg, stems=['img_1'])
    tid = next(iter(sent['tasks']))
    opts = webdriver.ChromeOptions(); opts.binary_location = CHROMIUM
    for a in ['--headless=new', '--no-sandbox', '--disable-gpu', '--window-size=1400,1000', '--no-first-run',
              '--disable-background-networking', '--disable-component-update', f'--user-data-dir={tmp_path/"chrome"}']:
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        drv.get(f'{url}/user/login/')
        drv.find_element(By.NAME, 'email').send_keys(cred['username'])
        drv.find_element(By.NAME, 'password').send_keys(cred['password'])
        drv.find_element(By.CSS_SELECTOR, 'button[type=submit]').click()
        WebDriverWait(drv, 60).until(lambda d: '/user/login' not in d.current_url)
        drv.get(f"{url}/projects/{sent['project_id']}/data?task={tid}")
        # the editor is up when the image is drawn and the pre-annotation's region is listed
        WebDriverWait(drv, 120).until(lambda d: d.execute_script(
            "return document.querySelectorAll('canvas').length > 0 && document.body.innerText.includes('GFM')"))
        time.sleep(5)                                    # let the brush layer finish drawing
        out = Path(os.environ.get('ACCORDS_SCREENSHOT_DIR', tmp_path)); out.mkdir(parents=True, exist_ok=True)
        png = out/'label_studio_task.png'
        assert drv.save_screenshot(str(png))
        text = drv.find_element(By.TAG_NAME, 'body').text
        # a person's stroke: label GFM (hotkey 1), brush (b), a drag right of and below the image's centre, Submit
        stage = max(drv.find_elements(By.TAG_NAME, 'canvas'), key=lambda e: e.rect['width'] * e.rect['height'])
        ActionChains(drv).send_keys('1').perform(); time.sleep(0.5); ActionChains(drv).send_keys('b').perform(); time.sleep(0.5)
        w, h = stage.rect['width'], stage.rect['height']
        act = ActionChains(drv).move_to_element_with_offset(stage, int(w * 0.05), int(h * 0.2)).click_and_hold()   # offsets from the centre
        for _ in range(10): act.move_by_offset(int(w * 0.012), 0)
        act.release().perform(); time.sleep(1)
        next(b for b in drv.find_elements(By.TAG_NAME, 'button') if b.text.strip() == 'Submit').click()
        ls = lsm.connect(url, cred['api_key'])
        WebDriverWait(drv, 60).until(lambda d: ls.annotations.list(id=int(tid)))
    finally: drv.quit()
    print(f'\nscreenshot: {png}')
    img = np.asarray(Image.open(png).convert('RGB')).astype(int)
    assert img.shape[0] > 500 and img.std() > 10                                    # not blank
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    green = (g > r + 40) & (g > b + 40)                                              # GFM's colour #2ca02c over the grey micrograph
    assert green.sum() > 500, f'no GFM pre-annotation drawn ({green.sum()} green pixels); page text: {text[:300]}'
    # the browser's own RLE decodes: the pre-annotation kept, the stroke a new GFM region in the lower right quarter
    res = lsm._latest(ls.annotations.list(id=int(tid))).result
    pred = lsm.regions_labels(ls.predictions.list(task=int(tid))[0].result, cfg, (256, 256))[0]
    lab, obj, oc = lsm.regions_labels(res, cfg, (256, 256))
    assert oc == ['GFM', 'GFM'], oc
    stroke = obj == 2; ys, xs = np.nonzero(stroke)
    assert stroke.sum() >= 20 and ys.min() > 128 and xs.min() > 128, (stroke.sum(), ys.min(), xs.min())
    np.testing.assert_array_equal(lab[~stroke], pred[~stroke])                     # everything else as the model drew it
    assert main(['review', str(run), '--from-label-studio', '--api-key', cred['api_key']]) == 0
    np.testing.assert_array_equal(load_mask(run/'dataset'/'masks'/'img_1.npy')[0], (lab == 1).astype(np.uint8))

"""The documentation site: built from the notebooks, opened in headless Chromium; every page loads, every
internal link resolves, figures are present and decoded."""
import functools, http.server, shutil, socketserver, sys, threading
from pathlib import Path
from urllib.parse import urljoin, urlparse
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
import build_docs

CHROMIUM, DRIVER = shutil.which('chromium'), shutil.which('chromedriver')
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason='needs Debian chromium + chromium-driver (make sysdeps)')


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    out = build_docs.build_site(tmp_path_factory.mktemp('site')/'_site')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    handler.log_message = lambda *a, **k: None
    srv = socketserver.TCPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield out, f'http://127.0.0.1:{srv.server_address[1]}/'
    srv.shutdown(); srv.server_close()


@pytest.fixture(scope='module')
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
              '--disable-background-networking', '--disable-component-update', '--disable-sync',
              f'--user-data-dir={tmp_path_factory.mktemp("chrome")}']:
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield drv
    drv.quit()


def test_site_has_every_notebook_in_order(site):
    out, _ = site
    nbs = sorted(p.stem for p in (ROOT/'nbs').glob('*.ipynb') if p.name != 'index.ipynb')
    for s in nbs: assert (out/f'{s}.html').exists(), s
    nav = (out/'index.html').read_text()
    pos = [nav.index(f'href="{s}.html"') for s in nbs]
    assert pos == sorted(pos), 'navigation is not in notebook order'
    assert (out/'api'/'accords_tem'/'core.html').exists()


def test_pages_load_links_resolve_figures_present(site, browser):
    out, base = site
    pages = ['index.html'] + sorted(p.name for p in out.glob('*.html') if p.name != 'index.html')
    seen, broken, figures = set(), [], {}
    for page in pages:
        browser.get(urljoin(base, page))
        assert browser.title.endswith('accords-tem'), f'{page}: no title'
        assert browser.find_elements('css selector', 'nav a'), f'{page}: no navigation'
        imgs = browser.execute_script(
            "return Array.from(document.images).map(i => [i.src.slice(0, 60), i.complete && i.naturalWidth > 0])")
        assert all(ok for _, ok in imgs), f'{page}: images that do not load: {[s for s, ok in imgs if not ok]}'
        figures[page] = len(imgs)
        for href in browser.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"):
            u = urlparse(href)
            if not href.startswith(base) or u.path in seen: continue
            seen.add(u.path)
            if not (out/u.path.lstrip('/')).exists(): broken.append(f'{page} -> {u.path}')
    assert not broken, f'broken internal links: {broken[:10]}'
    # each stage notebook committed with outputs shows at least one figure
    with_outputs = [p for p in pages if p[:2].isdigit() and 'image/png' in (ROOT/'nbs'/(p[:-5] + '.ipynb')).read_text()]
    assert all(figures[p] > 0 for p in with_outputs), {p: figures[p] for p in with_outputs}

"""Build README.md from nbs/index.ipynb and an HTML documentation site from all notebooks, without Quarto.

Pages come from the notebooks as committed (executed outputs included) through nbconvert; the API reference of
every exported module comes from pdoc; a sidebar lists the notebooks in their numbered order.

    python tools/build_docs.py readme          # README.md (+ README_files/)
    python tools/build_docs.py site [--out _site]
"""
from __future__ import annotations
import argparse, html, re, shutil, sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter, MarkdownExporter
from nbconvert.preprocessors import TagRemovePreprocessor
from pygments.formatters import HtmlFormatter

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
_DIRECTIVE = re.compile(r'^\s*#\s*\|.*$\n?', re.M)


def clean_notebook(path: Path) -> nbformat.NotebookNode:
    "The notebook as a reader should see it: hidden cells dropped, nbdev directives removed, links to .html."
    nb = nbformat.read(path, as_version=4)
    cells = []
    for c in nb.cells:
        if c.cell_type == 'code':
            if re.search(r'^\s*#\s*\|\s*hide\b', c.source, re.M): continue
            if re.search(r'^\s*#\s*\|\s*echo:\s*false', c.source, re.M):  # show the output only
                c.metadata.setdefault('tags', []).append('remove_input')
            c.source = _DIRECTIVE.sub('', c.source).strip('\n')
            if not c.source and not c.outputs: continue
        elif c.cell_type == 'markdown':
            c.source = re.sub(r'\]\(([^)#:]+)\.ipynb(#[^)]*)?\)', r'](\1.html\2)', c.source)
        cells.append(c)
    nb.cells = cells
    return nb


def notebook_title(nb) -> str:
    for c in nb.cells:
        if c.cell_type == 'markdown':
            m = re.search(r'^#\s+(.+)$', c.source, re.M)
            if m: return m.group(1).strip()
    return 'untitled'


def module_of(path: Path) -> str | None:
    "The module a notebook exports to (its `default_exp`)."
    for c in nbformat.read(path, as_version=4).cells:
        m = re.search(r'^\s*#\s*\|\s*default_exp\s+([\w.]+)', c.source, re.M) if c.cell_type == 'code' else None
        if m: return m.group(1)
    return None


def build_readme(out: Path = ROOT/'README.md'):
    "README.md from nbs/index.ipynb; figures go to README_files/."
    nb = clean_notebook(NBS/'index.ipynb')
    exporter = MarkdownExporter()
    exporter.register_preprocessor(TagRemovePreprocessor(remove_input_tags={'remove_input'}), enabled=True)
    body, res = exporter.from_notebook_node(nb, resources={'output_files_dir': 'README_files'})
    files_dir = out.parent/'README_files'
    shutil.rmtree(files_dir, ignore_errors=True)
    for name, data in res.get('outputs', {}).items():
        (out.parent/name).parent.mkdir(parents=True, exist_ok=True)
        (out.parent/name).write_bytes(data)
    header = '<!-- Generated from nbs/index.ipynb by tools/build_docs.py: edit the notebook, not this file. -->\n\n'
    out.write_text(header + body, encoding='utf-8')
    return out


_CSS = """
body{margin:0;font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#222;display:flex}
nav{width:250px;min-height:100vh;background:#f4f6f8;border-right:1px solid #dde;padding:1em;box-sizing:border-box;position:sticky;top:0;align-self:flex-start}
nav h2{font-size:1.1em;margin-top:0} nav ol{padding-left:1.2em} nav li{margin:.3em 0} nav a{color:#0b5394;text-decoration:none}
nav a.current{font-weight:bold;color:#000} main{flex:1;max-width:1000px;padding:1.5em 2.5em;overflow-x:auto}
pre{background:#f7f7f9;padding:.7em;border-radius:4px;overflow-x:auto;font-size:.85em}
.jp-OutputArea-output pre, .output_text pre{background:#fff;border-left:3px solid #ddd}
img{max-width:100%} table{border-collapse:collapse;font-size:.85em} td,th{border:1px solid #ccc;padding:.25em .5em}
.apilink{margin-top:2em;padding-top:1em;border-top:1px solid #ddd}
"""


def _page(title: str, nav: str, body: str, css_href: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} - accords-tem</title>'
            f'<link rel="stylesheet" href="{css_href}"></head><body>{nav}<main>{body}</main></body></html>')


def build_site(out: Path = ROOT/'_site', api: bool = True) -> Path:
    "HTML site: one page per notebook in numbered order, plus the pdoc API reference under api/."
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True); out.mkdir(parents=True)
    nbs = sorted(p for p in NBS.glob('*.ipynb') if p.name != 'index.ipynb')
    pages = [NBS/'index.ipynb'] + nbs
    cleaned = {p: clean_notebook(p) for p in pages}
    titles = {p: ('Home' if p.name == 'index.ipynb' else f'{p.stem.split("_")[0]} {notebook_title(cleaned[p])}') for p in pages}
    exporter = HTMLExporter(template_name='basic', exclude_input_prompt=True, exclude_output_prompt=True)
    exporter.register_preprocessor(TagRemovePreprocessor(remove_input_tags={'remove_input'}), enabled=True)
    (out/'style.css').write_text(_CSS + HtmlFormatter().get_style_defs('.highlight'), encoding='utf-8')
    if (NBS/'images').is_dir(): shutil.copytree(NBS/'images', out/'images')
    for p in pages:
        name = 'index.html' if p.name == 'index.ipynb' else p.stem + '.html'
        links = ''.join(f'<li><a href="{"index.html" if q.name == "index.ipynb" else q.stem + ".html"}"'
                        f'{" class=current" if q == p else ""}>{html.escape(titles[q])}</a></li>' for q in pages)
        nav = f'<nav><h2>accords-tem</h2><ol>{links}</ol><p><a href="api/accords_tem.html">API reference</a></p></nav>'
        body, _ = exporter.from_notebook_node(cleaned[p])
        mod = module_of(p)
        if mod and api: body += f'<p class="apilink">API reference: <a href="api/accords_tem/{mod}.html">accords_tem.{mod}</a></p>'
        (out/name).write_text(_page(titles[p], nav, body, 'style.css'), encoding='utf-8')
    if api:
        import pdoc
        pdoc.render.configure(docformat='markdown', footer_text='accords-tem')
        import pkgutil, accords_tem
        mods = [f'accords_tem.{m.name}' for m in pkgutil.iter_modules(accords_tem.__path__) if not m.name.startswith('_')]
        pdoc.pdoc('accords_tem', *mods, output_directory=out/'api')   # the package's __all__ is its public API, not its modules
    return out


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('what', choices=['readme', 'site', 'all'])
    ap.add_argument('--out', default=str(ROOT/'_site'))
    a = ap.parse_args()
    if a.what in ('readme', 'all'): print('wrote', build_readme())
    if a.what in ('site', 'all'): print('wrote', build_site(Path(a.out)))

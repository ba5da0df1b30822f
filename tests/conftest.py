"""pytest setup: offline, headless; slow tests skipped unless --runslow; accelerator tests (`device`) skipped unless
ACCORDS_TEST_DEVICE names a device (bench/gpu_check.sh sets it) or CUDA is present."""
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')
import pytest

def pytest_addoption(parser):
    parser.addoption('--runslow', action='store_true', default=False, help='run tests marked slow')

def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: slow test, skipped unless --runslow')
    config.addinivalue_line('markers', 'device: runs on an accelerator (ACCORDS_TEST_DEVICE=cuda|cpu), skipped otherwise')

def _device_given() -> bool:
    if os.environ.get('ACCORDS_TEST_DEVICE'): return True
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError: return False

def pytest_collection_modifyitems(config, items):
    slow = None if config.getoption('--runslow') else pytest.mark.skip(reason='slow: use --runslow')
    dev = [i for i in items if 'device' in i.keywords]
    no_device = pytest.mark.skip(reason='no accelerator: set ACCORDS_TEST_DEVICE=cuda (or cpu) to run') if dev and not _device_given() else None
    for item in items:
        if slow and 'slow' in item.keywords: item.add_marker(slow)
        if no_device and 'device' in item.keywords: item.add_marker(no_device)

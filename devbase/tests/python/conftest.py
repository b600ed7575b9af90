"""Marks every test that takes the `gpu` fixture with the `gpu` marker, so that ctest can run the
GPU half on its own and report it as skipped (not passed) on a machine without a GPU."""
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs PyTorch, a CUDA device and the built library")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "gpu" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.gpu)

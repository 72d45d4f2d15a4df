"""Shared fixtures: a small Oxford-Pets dataset written through TFDS's own builder."""
import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def tfds_pets_dir(tmp_path_factory):
    """TFDS data_dir holding oxford_iiit_pet/4.0.0 with 40 synthetic pets (train 20, test 20)."""
    from pipeline import dataset

    data_dir = str(tmp_path_factory.mktemp("tfds_data"))
    dataset.prepare_synthetic(data_dir, num_examples=40, seed=1)
    return data_dir


@pytest.fixture(scope="session", autouse=True)
def plain_argv():
    """TFX/absl parse sys.argv when components run; pytest's own flags (-v ...) must not leak."""
    import sys

    saved = sys.argv
    sys.argv = [saved[0]]
    yield
    sys.argv = saved

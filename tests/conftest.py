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


@pytest.fixture(scope="session")
def smoke_runs(tfds_pets_dir, tmp_path_factory):
    """The real pipeline (smoke preset) run twice over the same inputs.

    Returns (paths, first run's summary, serving versions after the first run, second summary).
    """
    import os
    import subprocess
    import sys

    import local_runner
    from pipeline.run_summary import summarize_latest_run

    out = tmp_path_factory.mktemp("smoke_run")
    paths = {
        "pipeline_root": str(out / "pipeline_root"),
        "serving_dir": str(out / "serving"),
        "metadata_path": str(out / "metadata.sqlite"),
    }
    argv = ["--preset", "smoke", "--data-dir", tfds_pets_dir,
            "--pipeline-root", paths["pipeline_root"], "--serving-dir", paths["serving_dir"],
            "--metadata-path", paths["metadata_path"]]
    # The first run as a user starts it, in its own process, so its console can be checked.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, local_runner.__file__, *argv], env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    paths["first_console"] = done.stdout + done.stderr
    first = summarize_latest_run(paths["metadata_path"])
    first_versions = sorted(os.listdir(paths["serving_dir"]))
    assert local_runner.main(argv) == 0
    second = summarize_latest_run(paths["metadata_path"])
    return paths, first, first_versions, second

"""scripts/find_python310.sh: finds Python 3.10, or says how to get one."""
import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                      "find_python310.sh")


def _run(env):
    return subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True, timeout=60)


def test_an_explicit_python310_is_used():
    done = _run({"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PYENV_ROOT": "/nonexistent",
                 "PYTHON310": sys.executable})
    assert done.returncode == 0 and done.stdout.strip() == sys.executable


def test_without_python310_it_says_how_to_get_one(tmp_path):
    done = _run({"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                 "PYENV_ROOT": str(tmp_path / "pyenv")})
    if done.returncode == 0:  # this machine has a system Python 3.10 in /usr/bin
        assert "3.10" in subprocess.run([done.stdout.strip(), "--version"],
                                        capture_output=True, text=True).stdout
        return
    assert done.returncode == 1
    for way in ("uv python install 3.10", "pyenv install 3.10", "apt-get install python3.10",
                "PYTHON310=/path/to/python3.10 make run"):
        assert way in done.stderr

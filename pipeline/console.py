"""A console for people on local runs: library noise off, one line per finished component.

`quiet()` must run before TensorFlow is imported: it silences TensorFlow's C++ log
(TF_CPP_MIN_LOG_LEVEL, inherited by any child process), Python warnings, and the INFO/WARNING
records of absl (TFX), TensorFlow and Beam; errors still show. `ComponentProgress` listens to
the records TFX's LocalDagRunner and launcher write anyway ("Component X is running", "A cached
execution is used", "Execution failed", "Component X is finished") and prints

    ImportExampleGen           ran       5.4 s

for each. TFX has no progress callback, hence this small listener; the record texts are TFX
1.16's (tfx/orchestration/local/local_dag_runner.py, portable/launcher.py).

`end_quietly_on_interrupt` turns Ctrl-C into one line and exit status 130: a terminal sends SIGINT
to every process of the job, Beam's worker processes included, and each would print its own
traceback.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import warnings
from typing import Optional, TextIO

NOISY_LOGGERS = ("absl", "tensorflow", "apache_beam", "tfx", "ml_metadata")


def quiet() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # Beam/TF worker processes too
    warnings.filterwarnings("ignore")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def end_quietly_on_interrupt(message: str) -> None:
    """From now on SIGINT kills this process's children, prints `message` and exits with 130.

    Call it before any thread or child process exists: SIGINT is blocked here, and threads and
    children inherit the block, so none of them sees it (children keep it even across exec). One
    thread takes the signal instead; the run's state is what a kill leaves, which the next run
    resumes from.
    """
    import psutil  # portpicker's dependency, so TFX's

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

    def wait() -> None:
        signal.sigwait({signal.SIGINT})
        for child in psutil.Process().children(recursive=True):
            try:
                child.kill()
            except psutil.Error:  # already gone
                pass
        sys.stderr.write(("\n" if sys.stderr.isatty() else "") + message + "\n")
        sys.stderr.flush()
        os._exit(130)  # nothing to clean up that a kill would not leave as well

    threading.Thread(target=wait, name="interrupt", daemon=True).start()


class ComponentProgress(logging.Handler):
    """Prints one line per component as LocalDagRunner finishes it."""

    def __init__(self, stream: Optional[TextIO] = None):
        super().__init__(logging.INFO)
        self.stream = stream or sys.stdout
        self.node: Optional[str] = None
        self.state = "ran"
        self.started = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.msg if isinstance(record.msg, str) else ""
        if message == "Component %s is running.":
            self.node, self.state, self.started = record.args[0], "ran", time.monotonic()
        elif message.startswith("A cached execution"):
            self.state = "cached"
        elif message == "Execution %d failed.":
            self.state = "FAILED"
            self._line()
        elif message == "Component %s is finished.":
            self._line()

    def _line(self) -> None:
        if self.node:
            seconds = time.monotonic() - self.started
            print(f"  {self.node:32s} {self.state:7s} {seconds:6.1f} s", file=self.stream,
                  flush=True)
            self.node = None

    def attach(self) -> "ComponentProgress":
        """Listens to absl's logger (TFX logs through it) without letting its INFO through."""
        from absl import logging as absl_logging

        # Through absl's flag, not the logger: libraries that silence absl for a while restore
        # the flag's value afterwards.
        absl_logging.set_verbosity(absl_logging.INFO)
        logger = logging.getLogger("absl")
        logger.addHandler(self)
        logger.propagate = False  # absl's own handler sits on the root logger
        errors = logging.StreamHandler(sys.stderr)
        errors.setLevel(logging.ERROR)
        # The FAILED line says it already; the runner prints the error itself.
        errors.addFilter(lambda record: record.msg != "Execution %d failed.")
        logger.addHandler(errors)
        self._errors = errors
        return self

    def detach(self) -> None:
        from absl import logging as absl_logging

        logger = logging.getLogger("absl")
        logger.removeHandler(self)
        logger.removeHandler(self._errors)
        logger.propagate = True
        absl_logging.set_verbosity(absl_logging.ERROR)

"""Fault injection for the fault-injection tests (tests/test_faults.py), in every Python process of a sweep.

Loaded only when a test puts this folder on PYTHONPATH; Python then imports it at start-up in the sweep's
main process, its forkserver and every worker. ``RARESHOCK_TEST_INJECT`` (JSON) says what to inject:

- ``run_delay``: seconds each run of a sweep sleeps first (so that a test can interrupt a sweep half-way);
- ``kill_run_id``: the worker running this run_id kills itself (SIGKILL), every time (a "poison" batch);
- ``disk_full_flag``: while this file exists, writing a part file of ``runs.parquet`` or
  ``timeseries.parquet`` fails with ENOSPC, as on a full disk (used where no small tmpfs can be mounted).

The functions are patched just before ``rareshock.sweeps.executor`` is first imported (the executor
binds them at import), and only in processes that import it.
"""

import json
import os
import sys

_SPEC = os.environ.get("RARESHOCK_TEST_INJECT")


def _patch() -> None:
    import errno
    import signal
    import time

    import rareshock.outputs as outputs
    import rareshock.sweeps.spec as sweep_spec

    cfg = json.loads(_SPEC)
    run_one = sweep_spec.run_one

    def faulty_run_one(base, spec, *args, **kwargs):
        if spec.run_id == cfg.get("kill_run_id"):
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(float(cfg.get("run_delay", 0)))
        return run_one(base, spec, *args, **kwargs)

    sweep_spec.run_one = faulty_run_one
    if cfg.get("disk_full_flag"):
        write = outputs.atomic_write_bytes

        def full_disk_write(path, data):
            if os.path.basename(os.fspath(path)).startswith("part-") and os.path.exists(cfg["disk_full_flag"]):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
            return write(path, data)

        outputs.atomic_write_bytes = full_disk_write


class _BeforeExecutor:
    """A meta-path finder that patches once, when rareshock.sweeps.executor is about to be imported."""

    done = False

    def find_spec(self, name, path=None, target=None):
        if name == "rareshock.sweeps.executor" and not self.done:
            self.done = True
            _patch()
        return None  # the normal finders import the module


if _SPEC:
    sys.meta_path.insert(0, _BeforeExecutor())

"""Fault injection for the fault-injection tests (tests/test_faults.py), in every Python process of a sweep.

Loaded only when a test puts this folder on PYTHONPATH; Python then imports it at start-up in the sweep's
main process, its forkserver and every worker. ``RARESHOCK_TEST_INJECT`` (JSON) says what to inject:

- ``run_delay``: seconds each run of a sweep sleeps first (so that a test can interrupt a sweep half-way);
- ``kill_run_id``: the worker running this run_id kills itself (SIGKILL), every time (a "poison" batch);
- ``disk_full_flag``: while this file exists, writing a part file of ``runs.parquet`` or
  ``timeseries.parquet`` fails with ENOSPC, as on a full disk (used where no small tmpfs can be mounted).

It patches the functions the executor imports, so it must run before rareshock is imported.
"""

import json
import os

_SPEC = os.environ.get("RARESHOCK_TEST_INJECT")
if _SPEC:
    import errno
    import time

    _CFG = json.loads(_SPEC)
    import rareshock.outputs as _outputs
    import rareshock.sweeps.spec as _sweep_spec

    if _CFG.get("run_delay") or "kill_run_id" in _CFG:
        import signal

        _run_one = _sweep_spec.run_one

        def _faulty_run_one(base, spec, *args, **kwargs):
            if spec.run_id == _CFG.get("kill_run_id"):
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(float(_CFG.get("run_delay", 0)))
            return _run_one(base, spec, *args, **kwargs)

        _sweep_spec.run_one = _faulty_run_one

    if _CFG.get("disk_full_flag"):
        _write = _outputs.atomic_write_bytes

        def _full_disk_write(path, data):
            name = os.path.basename(os.fspath(path))
            if name.startswith("part-") and os.path.exists(_CFG["disk_full_flag"]):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
            return _write(path, data)

        _outputs.atomic_write_bytes = _full_disk_write

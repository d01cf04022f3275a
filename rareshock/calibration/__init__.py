"""Calibration by approximate Bayesian computation (ABC-SMC with pyabc), and runs over its posterior.

- :mod:`rareshock.calibration.config`: the calibration TOML (priors, targets, stop rules), validated
  strictly against the scenario schema and the names a run produces;
- :mod:`rareshock.calibration.stats`: the statistics of one simulation and their distance to the record;
- :mod:`rareshock.calibration.sampler`: a pyabc sampler that evaluates particles in a fixed order with
  per-evaluation seeds, on the project's process pool or a Dask cluster;
- :mod:`rareshock.calibration.smc`: the pyabc pieces (model, distance, epsilon) and running or resuming
  ABC-SMC;
- :mod:`rareshock.calibration.report`: posterior, history, identifiability, posterior predictive checks,
  figures, manifest and the published posterior;
- :mod:`rareshock.calibration.posterior`: published posteriors, deterministic draws, and runs over them
  (``rareshock run --posterior N``, comparisons and sweeps over posterior draws).

The method and every rule are described in ``docs/calibration.md``.
"""

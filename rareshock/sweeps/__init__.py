"""Sweeps: what a sweep is (:mod:`.spec`), running its batches (:mod:`.executor`), a sweep end to end
(:mod:`.runner`) and its analysis (:mod:`.analysis`)."""

"""The shipped experiments (package data of ``rareshock.experiments``); see :mod:`rareshock.resources`."""

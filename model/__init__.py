"""The world of rareshock and its rules: the supply network, the builder, the day, the records.

Installed as ``rareshock.model`` (pyproject maps this folder into the one import name ``rareshock``).
"""

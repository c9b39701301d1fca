"""Other systems' APIs, backed by pond: programs written for them run on pond unchanged.

`smallpond/` is smallpond's module tree (high-level DataFrame API here; the low-level
LogicalPlan modules beside it). `aliases` makes `import smallpond` resolve to it, for the run of
one script (`pond smallpond SCRIPT.py`) or a test module, without installing a package named
smallpond.
"""

"""Plain data specs shared by the plan layer and the io layer: what a source reads (a table
snapshot) and where a sink writes (a dataset or an Iceberg table).

They sit apart from both layers so that `plan/` builds them and `io/` executes them without
either importing the other (tests/test_architecture.py checks it). A spec is a frozen
dataclass, validated when built, that serialises to plain JSON in the plan; it imports no
storage library and nothing from `plan/` or `io/`.
"""

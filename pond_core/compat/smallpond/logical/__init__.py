"""smallpond's low-level API on pond: nodes, datasets and UDFs of a LogicalPlan (docs/smallpond-lowlevel.md)."""

"""smallpond's module tree backed by pond (placeholder until the package root lands)."""

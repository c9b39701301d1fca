"""smallpond's execution modules on pond: the Driver and what user code sees of its task."""

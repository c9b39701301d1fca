"""smallpond's contributed nodes (copy_table, log_dataset) on pond."""

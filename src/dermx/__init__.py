"""dermx."""

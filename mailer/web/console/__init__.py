"""The staff console: server-rendered pages for launching campaigns and reading results."""

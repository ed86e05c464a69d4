"""Pages: `annotate` for annotators (the work page), `manage` for managers (campaigns, progress,
quality control)."""

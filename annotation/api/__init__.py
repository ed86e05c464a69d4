"""JSON API: `annotate` is what the annotator's page talks to; `manage` is for managers and scripts."""

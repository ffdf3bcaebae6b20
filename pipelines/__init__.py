"""The pipeline: one thin module per DVC stage, settings, atomic writes and the `churn` command."""

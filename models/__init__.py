"""Learning and explaining: training, baselines, evaluation, SHAP reasons, plays, scoring and MLflow tracking."""

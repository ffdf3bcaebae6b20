"""Point-in-time churn features: one module per signal family, the export contract and the catalogue. No I/O."""

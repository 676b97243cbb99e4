"""Linear models: exact SHAP values from a linear or logistic model's coefficients
(``shap``: interventional, over a background's means)."""

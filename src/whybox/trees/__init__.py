"""Tree ensembles: one array layout parsed from scikit-learn, XGBoost, LightGBM and CatBoost
models (``parse``), and exact TreeSHAP over it in numba (``treeshap``: path-dependent and interventional)."""

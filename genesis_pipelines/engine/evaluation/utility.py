"""Is the synthetic data as useful as the real data for learning? TSTR, TRTS and feature importances.

Three model families (logistic/ridge regression with one-hot and scaling, random forest, histogram
gradient boosting) are trained on the real training split (TRTR), on the synthetic table (TSTR), and
evaluated on the real holdout the generator never saw; TRTS scores the real-trained models on the
synthetic rows. The utility ratio is TSTR / TRTR of the primary metric (ROC AUC, or R² for a numeric
target), averaged over the families. Results are scores and ranks only; feature names are column names.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from genesis_pipelines.engine.analysis.columns import (
    CATEGORY_LIKE,
    NULL_KEY,
    NUMERIC_LIKE,
    category_keys,
    evaluable_columns,
    mean_or_none,
    num,
    sample_rows,
    to_float,
)
from genesis_pipelines.engine.core.schema import DatasetSchema
from genesis_pipelines.engine.core.spec import split_ref

MAX_ROWS = 20_000  # rows per side (train, synthetic; holdout too): ratios settle well before this, fits stay seconds
MAX_FEATURES = 40
MAX_CLASSES = 20
MIN_ROWS = 50
TARGET_WORDS = ("income", "label", "target", "class", "churn", "outcome", "default", "fraud", "survived", "response", "y")
FAMILIES = ("logistic", "random_forest", "gradient_boosting")


def guess_target(schema: DatasetSchema, exclude: Mapping[str, set[str]]) -> str | None:
    """The likeliest label: a low-cardinality categorical column with a label-like name, else None."""
    found = []
    for table, meta in schema.tables.items():
        skip = set(exclude.get(table, set())) | schema.key_columns(table)
        for column in evaluable_columns(meta, skip):
            col = meta.columns[column]
            # whole words only: "workclass" is not a class label, "is_fraud" and "Churn" are
            words = {w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+", column)}
            hits = [TARGET_WORDS.index(w) for w in words if w in TARGET_WORDS]
            if hits and col.sdtype in CATEGORY_LIKE and 2 <= col.cardinality <= MAX_CLASSES:
                found.append((min(hits), f"{table}.{column}"))
    return min(found)[1] if found else None


def _features(frames: list[pd.DataFrame], columns: list[str], sdtypes: Mapping[str, str]) -> list[pd.DataFrame]:
    """Numbers as float (NaN kept), categories as text with nulls as a category, same coding on every frame."""
    out = [pd.DataFrame(index=range(len(f))) for f in frames]
    for column in columns:
        if sdtypes[column] in NUMERIC_LIKE:
            for o, f in zip(out, frames):
                o[column] = to_float(f[column], sdtypes[column])
        else:
            for o, keys in zip(out, category_keys(*(f[column] for f in frames))):
                o[column] = keys.astype(str).to_numpy()
    return out


def _models(task: str, numeric: list[str], categorical: list[str], seed: int) -> dict:
    onehot = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("cat", OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=30, min_frequency=5), categorical),
    ])
    ordinal = ColumnTransformer([
        ("num", "passthrough", numeric),
        ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, max_categories=250), categorical),
    ])
    is_cat = [False] * len(numeric) + [True] * len(categorical)
    if task == "classification":
        return {
            "logistic": make_pipeline(onehot, LogisticRegression(max_iter=200)),
            "random_forest": make_pipeline(ordinal, RandomForestClassifier(
                n_estimators=30, max_depth=10, max_samples=0.5, min_samples_leaf=5, n_jobs=2, random_state=seed)),
            "gradient_boosting": make_pipeline(ordinal, HistGradientBoostingClassifier(
                max_iter=80, categorical_features=is_cat, random_state=seed)),
        }
    return {
        "logistic": make_pipeline(onehot, Ridge(alpha=1.0)),
        "random_forest": make_pipeline(ordinal, RandomForestRegressor(
            n_estimators=30, max_depth=10, max_samples=0.5, min_samples_leaf=5, n_jobs=2, random_state=seed)),
        "gradient_boosting": make_pipeline(ordinal, HistGradientBoostingRegressor(
            max_iter=80, categorical_features=is_cat, random_state=seed)),
    }


def _evaluate(model, x: pd.DataFrame, y: np.ndarray, task: str) -> dict:
    if task == "regression":
        return {"r2": num(r2_score(y, model.predict(x)))}
    classes = list(model.classes_)
    proba = model.predict_proba(x)
    present = np.unique(y)
    out = {"accuracy": num(accuracy_score(y, np.asarray(classes)[proba.argmax(axis=1)]))}
    if len(present) < 2:
        return {**out, "roc_auc": None}
    # the classes the holdout has, in its order; a class the model never saw gets probability 0
    scores = np.zeros((len(y), len(present)))
    for j, c in enumerate(present):
        if c in classes:
            scores[:, j] = proba[:, classes.index(c)]
    if len(present) == 2:
        out["roc_auc"] = num(roc_auc_score(y == present[1], scores[:, 1]))
    else:
        total = scores.sum(axis=1, keepdims=True)
        scores = np.where(total > 0, scores / np.where(total > 0, total, 1), 1.0 / len(present))
        out["roc_auc"] = num(roc_auc_score(y, scores, multi_class="ovr", labels=present))
    return out


def _importances(model, columns: list[str]) -> np.ndarray | None:
    # Forests rank the original features (ordinal-encoded, one input each), so no one-hot regrouping is needed.
    estimator = model[-1]
    values = getattr(estimator, "feature_importances_", None)
    return None if values is None or len(values) != len(columns) else np.asarray(values)


def utility_report(train_tables: Mapping[str, pd.DataFrame], holdout_tables: Mapping[str, pd.DataFrame],
                   synth_tables: Mapping[str, pd.DataFrame], schema: DatasetSchema, *,
                   exclude: Mapping[str, set[str]], target: str | None = None, seed: int = 0,
                   max_rows: int = MAX_ROWS) -> dict:
    """TRTR / TSTR / TRTS per model family on one target; `skipped` says why when it cannot run."""
    chosen_by = "spec" if target else "heuristic"
    target = target or guess_target(schema, exclude)
    if not target:
        return {"skipped": "no target: set utility.target in the spec (no label-like categorical column found)"}
    table, column = split_ref(target, "utility target")
    meta = schema.tables.get(table)
    if meta is None or column not in meta.columns:
        return {"target": target, "skipped": "target column not in the schema"}
    if column in set(exclude.get(table, set())) | schema.key_columns(table):
        return {"target": target, "skipped": "the target is a key or a replaced PII column"}
    frames = [train_tables.get(table), holdout_tables.get(table), synth_tables.get(table)]
    if any(f is None or column not in f.columns for f in frames):
        return {"target": target, "skipped": "train, holdout or synthetic table (or the target column) missing"}
    if min(len(frames[1]), len(frames[2]), len(frames[0])) < MIN_ROWS:
        return {"target": target, "skipped": f"fewer than {MIN_ROWS} rows in train, holdout or synthetic"}
    sdtype = meta.columns[column].sdtype
    task = "regression" if sdtype in NUMERIC_LIKE and meta.columns[column].cardinality > MAX_CLASSES else "classification"
    skip = set(exclude.get(table, set())) | schema.key_columns(table) | {column}
    features = [c for c in evaluable_columns(meta, skip) if all(c in f.columns for f in frames)][:MAX_FEATURES]
    if not features:
        return {"target": target, "skipped": "no feature columns"}
    train, holdout, synth = (sample_rows(f, max_rows, seed + i) for i, f in enumerate(frames))
    sdtypes = {c: meta.columns[c].sdtype for c in features}
    x_train, x_holdout, x_synth = _features([train, holdout, synth], features, sdtypes)
    if task == "classification":
        ys = [np.asarray(k.astype(str)) for k in category_keys(train[column], holdout[column], synth[column])]
        keep = [y != NULL_KEY for y in ys]
    else:
        ys = [to_float(f[column], sdtype) for f in (train, holdout, synth)]
        keep = [~np.isnan(y) for y in ys]
    x_train, x_holdout, x_synth = (x[k].reset_index(drop=True) for x, k in zip((x_train, x_holdout, x_synth), keep))
    y_train, y_holdout, y_synth = (y[k] for y, k in zip(ys, keep))
    if task == "classification" and (len(np.unique(y_train)) < 2 or len(np.unique(y_synth)) < 2):
        return {"target": target, "task": task, "skipped": "the target has one class in train or synthetic"}

    numeric = [c for c in features if sdtypes[c] in NUMERIC_LIKE]
    categorical = [c for c in features if c not in numeric]
    primary = "roc_auc" if task == "classification" else "r2"
    models: dict[str, dict] = {}
    real_models = _models(task, numeric, categorical, seed)
    synth_models = _models(task, numeric, categorical, seed)
    for family in FAMILIES:
        # One OpenMP/BLAS thread: on a busy 2-core machine spinning OpenMP threads made a 1 s boosting fit take
        # a minute; the forest still uses both cores through joblib.
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore")  # convergence and unknown-category warnings carry no data, only noise
            real_model = real_models[family].fit(x_train, y_train)
            synth_model = synth_models[family].fit(x_synth, y_synth)
            trtr = _evaluate(real_model, x_holdout, y_holdout, task)
            tstr = _evaluate(synth_model, x_holdout, y_holdout, task)
            trts = _evaluate(real_model, x_synth, y_synth, task)
        entry = {"trtr": trtr, "tstr": tstr, "trts": trts}
        if trtr.get(primary) not in (None, 0):
            entry["ratio"] = num(tstr.get(primary) / trtr[primary]) if tstr.get(primary) is not None else None
        real_imp, synth_imp = _importances(real_model, features), _importances(synth_model, features)
        if real_imp is not None and synth_imp is not None and len(features) >= 3:
            rho = stats.spearmanr(real_imp, synth_imp).statistic
            entry["importance_rank_correlation"] = num(rho)
            order = np.argsort(-real_imp)[:10]
            entry["top_features"] = [{"feature": features[i], "real_rank": int(r + 1),
                                      "synthetic_rank": int(np.flatnonzero(np.argsort(-synth_imp) == i)[0] + 1)}
                                     for r, i in enumerate(order)]
        models[family] = entry
    ratio = mean_or_none(m.get("ratio") for m in models.values())
    return {
        "target": target,
        "target_chosen_by": chosen_by,
        "task": task,
        "primary_metric": primary,
        "features": len(features),
        "rows": {"train": int(len(y_train)), "holdout": int(len(y_holdout)), "synthetic": int(len(y_synth))},
        "models": models,
        "utility_ratio": num(ratio),
        "importance_rank_correlation": num(mean_or_none(m.get("importance_rank_correlation") for m in models.values())),
    }

"""The figures people look at: named, titled, labelled, and the SHAP summary byte-stable."""

import io

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from models import evaluate, explain, figures  # figures selects the Agg backend

MODELS = ["model", "logistic", "health", "calendar"]


@pytest.fixture(autouse=True)
def no_figure_left_open():
    plt.close("all")
    yield
    plt.close("all")


def png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40, metadata={"Software": None})
    return buffer.getvalue()


# ---------------------------------------------------------------- evaluation curves and importance


@pytest.fixture(scope="module")
def curves() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.2
    noise = {"model": 0.5, "logistic": 1.0, "health": 2.0, "calendar": 3.0}
    pred = pd.DataFrame({"label": y.astype(int)})
    for name in MODELS:
        pred[f"p_{name}"] = 1 / (1 + np.exp(-(2.0 * y - 1.5 + rng.normal(0, noise[name], len(y)))))
    return evaluate.curve_frames(pred)


@pytest.fixture(scope="module")
def importance() -> pd.DataFrame:
    frame = pd.DataFrame({"feature": [f"f{i:02d}" for i in range(25)], "importance": np.arange(25.0, 0.0, -1.0)})
    return frame  # sorted descending, as importance_frame returns it


def test_evaluation_figures_are_the_five_named_titled_and_labelled(curves, importance):
    figs = figures.evaluation_figures(curves, importance)
    try:
        assert list(figs) == ["roc", "pr", "calibration", "lift", "importance"]
        for name, (x, y, title, xlabel, ylabel) in figures.CURVES.items():
            ax = figs[name].axes[0]
            assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == (title, xlabel, ylabel)
            assert [t.get_text() for t in ax.get_legend().get_texts()] == MODELS, name
            lines = {line.get_label(): line for line in ax.get_lines()}
            for model in MODELS:  # each model's line is its points of the curve frame
                part = curves[name][curves[name]["model"] == model]
                np.testing.assert_array_equal(lines[model].get_xdata(), part[x].to_numpy())
                np.testing.assert_array_equal(lines[model].get_ydata(), part[y].to_numpy())
            diagonal = [line for line in ax.get_lines() if line.get_label() not in MODELS]
            assert len(diagonal) == (0 if name == "pr" else 1), name
        ax = figs["importance"].axes[0]
        assert ax.get_title() == "Feature importance (gain)" and ax.get_xlabel() == "Total gain"
    finally:
        for fig in figs.values():
            plt.close(fig)


def test_importance_figure_shows_the_top_twenty_largest_on_top(curves, importance):
    figs = figures.evaluation_figures(curves, importance)
    try:
        ax = figs["importance"].axes[0]
        bars = ax.patches
        assert len(bars) == 20
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == [f"f{i:02d}" for i in range(19, -1, -1)]  # barh draws bottom-up: largest last, on top
        widths = [bar.get_width() for bar in bars]
        assert widths == sorted(widths) and widths[-1] == 25.0
    finally:
        for fig in figs.values():
            plt.close(fig)


# ---------------------------------------------------------------- SHAP figures


@pytest.fixture(scope="module")
def shap_inputs(synthetic_parts, synthetic_model):
    """SHAP contributions of 40 accounts at the last test snapshot, indexed by account as scoring does."""
    test = synthetic_parts["test"]
    rows = test[test["snapshot_date"] == test["snapshot_date"].max()].head(40).set_index("account_id", drop=False)
    contrib = explain.shap_contributions(synthetic_model, rows)
    return contrib, synthetic_model.matrix(rows)


@pytest.fixture(scope="module")
def summary_twice(shap_inputs):
    """The summary drawn twice from the same contributions, with NumPy's global state seeded around it."""
    contrib, X = shap_inputs
    np.random.seed(1234)
    np.random.random()
    fig = figures.shap_summary_figure(contrib, X)
    after = np.random.random()  # the next number the caller would have drawn
    title = fig._suptitle.get_text()
    first = png_bytes(fig)
    plt.close(fig)
    fig = figures.shap_summary_figure(contrib, X)
    second = png_bytes(fig)
    plt.close(fig)
    np.random.seed(1234)
    np.random.random()
    return {"first": first, "second": second, "after": after, "undisturbed": np.random.random(), "title": title}


def test_shap_summary_is_byte_identical_from_the_same_contributions(summary_twice):
    assert summary_twice["first"][:8] == b"\x89PNG\r\n\x1a\n"
    assert summary_twice["first"] == summary_twice["second"]
    assert summary_twice["title"] == "What drives churn risk this week (SHAP, log-odds)"


def test_shap_summary_restores_numpys_global_random_state(summary_twice):
    assert summary_twice["after"] == summary_twice["undisturbed"]


def test_waterfall_is_titled_with_the_account_and_its_probability(shap_inputs):
    contrib, X = shap_inputs
    account = X.index[3]
    fig = figures.waterfall_figure(contrib, X, account, 0.4242)
    try:
        assert fig._suptitle.get_text() == f"Account {account}: churn probability 42% (SHAP, log-odds)"
        assert tuple(fig.get_size_inches()) == (11, 7)
        texts = " ".join(t.get_text() for ax in fig.axes for t in ax.get_yticklabels())
        strongest = contrib.values.loc[account].abs().idxmax()
        assert strongest in texts  # the largest contribution is one of the labelled bars
    finally:
        plt.close(fig)


def test_shap_summary_draws_a_new_figure_even_when_another_is_open(shap_inputs):
    contrib, X = shap_inputs
    other = plt.figure()
    fig = figures.shap_summary_figure(contrib.__class__(contrib.values.head(10), contrib.base_value), X.head(10))
    assert fig is not other and not other.axes


def test_waterfall_draws_a_new_figure_even_when_another_is_open(shap_inputs):
    contrib, X = shap_inputs
    other = plt.figure()
    fig = figures.waterfall_figure(contrib, X, X.index[0], 0.5)
    assert fig is not other and not other.axes

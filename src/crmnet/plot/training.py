"""Training figures: the learning curve of a run."""

from __future__ import annotations

from crmnet.plot.common import _figure


def learning_curve_figure(history: list[dict], val_metric: str = "r2"):
    """Learning curve (train/validation loss and the validation metric per epoch) as a ``Figure``.

    history: one dict per epoch with ``epoch`` (0-based), ``train_loss``, ``val_loss``,
    ``val_<val_metric>`` and ``best`` (as in :attr:`crmnet.training.config.TrainResult.history`).
    """
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] + 1 for row in history]
    fig = _figure(9, 3.5)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(epochs, [row["train_loss"] for row in history], marker="o", label="train")
    ax1.plot(epochs, [row["val_loss"] for row in history], marker="o", label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    ax2.plot(epochs, [row[f"val_{val_metric}"] for row in history], marker="o", color="C2")
    best = [row["epoch"] + 1 for row in history if row["best"]]
    if best:
        ax2.axvline(best[-1], color="grey", linestyle="--", label=f"best (epoch {best[-1]})")
        ax2.legend()
    ax2.set_xlabel("epoch")
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_ylabel({"r2": "validation R² (1 − SS_res/SS_tot)", "pearson_r": "validation Pearson r",
                    "mse": "validation MSE"}[val_metric])
    return fig

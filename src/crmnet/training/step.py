"""One optimiser step and one validation pass, and the device settings they run under.

Nothing here reads a value back to the host: losses stay on the device until the loop logs them, and
validation sums stay there until its metrics are computed.
"""

from __future__ import annotations

import contextlib

import torch


def configure_device(device: torch.device) -> None:
    """Fast kernels for training on CUDA (called by the trainer, not at import).

    fp32 matrix products and convolutions may use TF32 tensor cores (10-bit mantissa products, fp32
    accumulation: the precision Keras/TensorFlow uses by default on Ampere and later), and cuDNN picks
    the fastest convolution algorithm for the (fixed) batch shape. Nothing changes on CPU.
    """
    if device.type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True


def autocast(precision: str, device: torch.device):
    """The autocast context of ``precision`` (``"32"``: none; ``"bf16-mixed"``, ``"16-mixed"``)."""
    dtype = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def make_optimizer(kind: str, params, lr: float, weight_decay: float, device: torch.device):
    """Adam or AdamW; on CUDA the fused implementation (one kernel for all parameters), else foreach.

    Parameters
    ----------
    kind : {"adam", "adamw"}
        The optimiser.
    params : iterable of torch.nn.Parameter
        Trainable parameters.
    lr, weight_decay : float
        Initial learning rate (the schedule sets it every step) and weight decay.
    device : torch.device
        Where the parameters live.

    Returns
    -------
    torch.optim.Optimizer
    """
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind]
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return cls(params, lr=lr, weight_decay=weight_decay, **fast)


def optimizer_step(module, optimizer, scaler, x: torch.Tensor, y: torch.Tensor, precision: str = "32"):
    """One training step: autocast forward + loss, (scaled) backward, optimiser step.

    Parameters
    ----------
    module : torch.nn.Module
        A :class:`crmnet.training.losses.LossModule` (possibly DDP-wrapped or compiled).
    optimizer, scaler
        The optimiser and ``torch.amp.GradScaler`` (disabled except for fp16).
    x : torch.Tensor
        (B, C, L) one-hot batch.
    y : torch.Tensor
        (B,) targets.
    precision : str
        ``"32"``, ``"bf16-mixed"`` or ``"16-mixed"``.

    Returns
    -------
    torch.Tensor
        The scalar loss, detached and still on the device (reading it would synchronise).
    """
    with autocast(precision, x.device):
        loss, _ = module(x, y)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def validate(module, loader, precision: str, device: torch.device, center: float = 0.0) -> dict:
    """Metrics of ``module`` over ``loader`` (this process's shard), summed over all processes.

    Runs under ``inference_mode`` and the training precision's autocast, on the unwrapped loss module
    (shards may differ in batch count, and DDP's forward would then wait for a collective that never
    comes). The one streaming implementation, :class:`crmnet.evaluation.metrics.StreamingMetrics`.

    Returns
    -------
    dict
        ``n, pearson_r, pearson_p, spearman_r, r2, pearson_r_squared, mse, mae, loss``.
    """
    from crmnet.evaluation.metrics import StreamingMetrics

    metrics = StreamingMetrics(device, center=center, ranks=True)
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode(), autocast(precision, device):
            for x, y in loader:
                loss, pred = module(x, y)
                metrics.update(y, pred, loss)
    finally:
        module.train(was_training)
    metrics.all_reduce()
    return metrics.compute()

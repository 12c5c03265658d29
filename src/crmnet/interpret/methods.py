"""Attribution methods with an exact budget: DeepLIFT/SHAP (tangermeme) and integrated gradients (captum).

Both explain ``f(x) − f(reference)``: their attributions sum, over positions and channels, to the
difference between the prediction of a sequence and that of its reference(s) — DeepLIFT/SHAP: the mean
prediction of ``n_shuffles`` dinucleotide shuffles of the sequence; integrated gradients: a baseline
(default all ``N``, i.e. all-zero ACGT columns). :class:`MethodResult` carries those differences and the
gap to the sums (``delta``), so every call reports how well the budget holds.

* The model is seen through :class:`crmnet.models.adapter.ACGTAdapter`: inputs are ``A, C, G, T``
  one-hot in sequence coordinates, outputs (B, 1); the model's own layout never reaches the caller.
* **DeepLIFT rules need modules.** crmnet's models call ``F.relu``, ``torch.sigmoid``, products of two
  activations (squeeze-excitation) and fused attention as functions, which tangermeme's hooks cannot see
  (they would be treated as linear and the sums would be off by several times the output difference).
  :func:`deeplift_ready` rewrites the model with ``torch.fx``: elementwise non-linearities become their
  ``nn`` modules, products of two activations tangermeme's ``BilinearOp``, fused attention two
  ``BilinearOp`` around an ``nn.Softmax``; modules that cannot be traced and leaf layers without a rule
  (an LSTM, through its output sequence) get tangermeme's ``integrated_gradients_op`` (the layer's
  Jacobian integrated along the reference→input path, 8 Gauss–Legendre points).
* Measured budget gaps (seeded, untrained weights): crmnet-tiny/-small, vaishnav-cnn, deepsea, danq
  < 2e-5 of the difference; deepatt, vaishnav-transformer (LSTMs) < 1e-3. LegNet: not established —
  untrained, its outputs do not move beyond float32 resolution; with random large weights the gaps reach
  several times the difference (the 18-bin softmax, saturated). Check ``delta`` on trained weights.
* Sequences of different lengths are attributed in groups of one length (each has its own layout).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
import torch
from torch import fx, nn
from torch.nn import functional as F

from crmnet.models.adapter import ACGTAdapter

METHODS = ("deeplift_shap", "integrated_gradients")

# Functions (and Tensor methods, by name) that become modules tangermeme has a DeepLIFT rule for.
_ELEMENTWISE = {
    F.relu: nn.ReLU, torch.relu: nn.ReLU, "relu": nn.ReLU,
    torch.sigmoid: nn.Sigmoid, F.sigmoid: nn.Sigmoid, "sigmoid": nn.Sigmoid,
    F.silu: nn.SiLU, F.gelu: nn.GELU, F.elu: nn.ELU, F.softplus: nn.Softplus,
    torch.tanh: nn.Tanh, F.tanh: nn.Tanh, "tanh": nn.Tanh,
}
_PRODUCTS = {operator.mul: "...,...->...", torch.mul: "...,...->...", "mul": "...,...->...",
             operator.matmul: None, torch.matmul: None, torch.bmm: None, "matmul": None}
# Leaf modules that are affine in eval mode: plain gradients are their exact DeepLIFT multipliers.
_AFFINE = (nn.Linear, nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.Dropout, nn.Identity,
           nn.Flatten, nn.Unflatten, nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
           nn.modules.padding._ConstantPadNd)


@dataclass
class MethodResult:
    """Attributions of ``n`` sequences, all of one length ``L``, in sequence coordinates.

    attributions: (n, 4, L) float32, channels ``A, C, G, T``; zero on unobserved bases unless
        ``hypothetical`` was asked. difference: (n,) f(x) − f(reference) (DeepLIFT/SHAP: mean over the
        references). delta: (n,) |sum of attributions − difference|, the budget's gap.
    """

    attributions: np.ndarray
    difference: np.ndarray
    delta: np.ndarray


class _Attention(nn.Module):
    """Scaled dot-product attention spelt as modules tangermeme has rules for.

    ``F.scaled_dot_product_attention`` (no mask, no dropout: eval) spelt as modules tangermeme has
    rules for: two bilinear contractions around a softmax.
    """

    def __init__(self) -> None:
        from tangermeme.deep_lift_shap import BilinearOp

        super().__init__()
        self.scores, self.softmax, self.mix = BilinearOp(), nn.Softmax(dim=-1), BilinearOp()

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        scale = q.shape[-1] ** -0.5
        return self.mix(self.softmax(self.scores(q * scale, k.transpose(-2, -1))), v)


class _Sequence(nn.Module):
    """An RNN's output sequence alone (a single tensor, which tangermeme's rules need).

    The final states it also returns are not used by any crmnet model.
    """

    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


class _Tracer(fx.Tracer):
    def __init__(self, leaves: set[type]):
        super().__init__()
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, _AFFINE) or type(m) in self.leaves or super().is_leaf_module(m, qualname)


def _untraceable(model: nn.Module) -> set[type]:
    """Module classes of ``model`` that torch.fx cannot trace.

    Module classes of ``model`` that torch.fx cannot trace, found bottom-up so that a parent traces
    with its untraceable children kept as leaves.
    """
    leaves: set[type] = set()
    tried: set[type] = set()
    for module in reversed(list(model.modules())[1:]):  # children before their parents
        kind = type(module)
        if kind in tried or isinstance(module, _AFFINE) or kind.__module__.startswith("torch."):
            continue
        tried.add(kind)
        try:
            _Tracer(leaves).trace(module)
        except Exception:  # noqa: BLE001 - any tracing failure means: keep the module whole
            leaves.add(kind)
    return leaves


def deeplift_ready(model: nn.Module) -> tuple[nn.Module, dict]:
    """``model`` rewritten so tangermeme's DeepLIFT rules see every non-linearity (module docstring).

    Parameters
    ----------
    model : nn.Module
        A crmnet model (``.encoding``; ``forward(x: (B, C, L)) -> (B,)``), in eval mode.

    Returns
    -------
    module : torch.fx.GraphModule
        The same function (same outputs), with ``.encoding`` kept; shares the model's parameters.
    rules : dict
        ``additional_nonlinear_ops`` for :func:`tangermeme.deep_lift_shap.deep_lift_shap`: module class →
        tangermeme's ``integrated_gradients_op`` for the leaves that have no rule of their own.
    """
    from tangermeme._deep_lift_utils import _build_nonlinear_ops
    from tangermeme.deep_lift_shap import BilinearOp, integrated_gradients_op

    leaves = _untraceable(model)
    tracer = _Tracer(leaves)
    graph = tracer.trace(model)
    gm = fx.GraphModule(tracer.root, graph)
    varying: set[fx.Node] = set()
    count = 0
    for node in list(graph.nodes):
        inputs = [a for a in node.all_input_nodes if a in varying]
        if node.op == "placeholder" or (node.op != "get_attr" and inputs):
            varying.add(node)
        if node.op == "call_module" and isinstance(gm.get_submodule(node.target), nn.RNNBase):
            _wrap_rnn(gm, graph, node, f"_deeplift_{count}")
            count += 1
            continue
        if node.op not in ("call_function", "call_method") or not inputs:
            continue
        target = node.target
        if target in _ELEMENTWISE or target in (F.leaky_relu, "leaky_relu", F.softmax, "softmax"):
            if target in (F.leaky_relu, "leaky_relu"):
                slope = node.kwargs.get("negative_slope", node.args[1] if len(node.args) > 1 else 0.01)
                module = nn.LeakyReLU(slope)
            elif target in (F.softmax, "softmax"):
                module = nn.Softmax(node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None))
            else:
                module = _ELEMENTWISE[target]()
            args = (node.args[0],)
        elif target is F.scaled_dot_product_attention and not set(node.kwargs) - {"dropout_p"}:
            module, args = _Attention(), tuple(node.args[:3])
        elif target in _PRODUCTS and len(inputs) == 2 and all(isinstance(a, fx.Node) for a in node.args[:2]):
            module, args = BilinearOp(_PRODUCTS[target]), tuple(node.args[:2])
        else:
            continue
        name = f"_deeplift_{count}"
        count += 1
        gm.add_submodule(name, module)
        with graph.inserting_after(node):
            new = graph.call_module(name, args)
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        varying.add(new)
    graph.lint()
    gm.recompile()
    gm.encoding = model.encoding
    known = tuple(_build_nonlinear_ops())
    rules = {type(m): integrated_gradients_op() for m in gm.modules()
             if m is not gm and (type(m) in leaves or isinstance(m, _Sequence)
                                 or (_leaf(m) and not isinstance(m, (*_AFFINE, *known, nn.RNNBase))))}
    return gm.eval(), rules


def _wrap_rnn(gm: fx.GraphModule, graph: fx.Graph, node: fx.Node, name: str) -> None:
    """Route an RNN call whose users read only its output sequence (``out[0]``) through :class:`_Sequence`."""
    users = list(node.users)
    if len(node.args) != 1 or not all(u.op == "call_function" and u.target is operator.getitem
                                      and (u.args[1] == 0 or not u.users) for u in users):
        raise ValueError(f"DeepLIFT/SHAP: {node.target} ({type(gm.get_submodule(node.target)).__name__}) is used "
                         "beyond its output sequence; no rule covers that")
    gm.add_submodule(name, _Sequence(gm.get_submodule(node.target)))
    with graph.inserting_after(node):
        new = graph.call_module(name, node.args)
    for user in users:  # out[0] reads the new module; unused reads of the final states go
        if user.args[1] == 0:
            user.replace_all_uses_with(new)
        graph.erase_node(user)
    graph.erase_node(node)


def _leaf(module: nn.Module) -> bool:
    """A torch.nn layer with no submodules (not fx's bare ``nn.Module`` containers of copied attributes)."""
    kind = type(module)
    return (next(module.children(), None) is None and kind.__module__.startswith("torch.nn")
            and kind not in (nn.Module, fx.GraphModule))


def _check(x: torch.Tensor) -> torch.Tensor:
    if x.ndim != 3 or x.shape[1] != 4:
        raise ValueError(f"expected ACGT one-hot of shape (n, 4, L), got {tuple(x.shape)}")
    return x.float()


def deep_lift_shap(model: nn.Module, x: torch.Tensor, *, n_shuffles: int = 20, random_state: int = 0,
                   batch_size: int = 64, hypothetical: bool = False, device=None) -> MethodResult:
    """DeepLIFT/SHAP attributions (tangermeme) against dinucleotide-shuffled references.

    Parameters
    ----------
    model : nn.Module
        A crmnet model; it is put in eval mode.
    x : (n, 4, L) tensor
        ``A, C, G, T`` one-hot of ``n`` sequences of length ``L`` (all-zero column: ``N``).
    n_shuffles, random_state : int
        References per sequence, and their seed (the same references on every call).
    batch_size : int
        Sequence–reference pairs per pass; results do not depend on it.
    hypothetical : bool
        Return the attribution every base would get at each position (what TF-MoDISco reads).
    device : str or torch.device, optional
        Where to run; None: where the model's parameters are.

    Returns
    -------
    MethodResult
        ``attributions`` (n, 4, L); ``difference`` f(x) − mean f(references); ``delta``.
    """
    from tangermeme.deep_lift_shap import deep_lift_shap as tm_deep_lift_shap

    x = _check(x)
    device = device or next(model.parameters()).device
    ready, rules = deeplift_ready(model.eval())
    adapter = ACGTAdapter(ready).to(device)
    attr, refs = tm_deep_lift_shap(
        adapter, x, n_shuffles=n_shuffles, random_state=random_state, batch_size=batch_size,
        hypothetical=True, additional_nonlinear_ops=rules, warning_threshold=float("inf"),
        return_references=True, device=device,
    )
    with torch.no_grad():
        fx_ = _predict(adapter, x, batch_size, device)
        fr = _predict(adapter, refs.reshape(-1, *x.shape[1:]), batch_size, device).reshape(len(x), -1).mean(1)
    diff = (fx_ - fr).numpy()
    observed = (attr * x).numpy()
    return MethodResult((attr if hypothetical else attr * x).numpy().astype(np.float32), diff,
                        np.abs(observed.sum((1, 2)) - diff))


def integrated_gradients(model: nn.Module, x: torch.Tensor, *, baseline: torch.Tensor | None = None,
                         n_steps: int = 64, batch_size: int = 64, device=None) -> MethodResult:
    """Integrated gradients (captum, Gauss–Legendre quadrature) from ``baseline`` to ``x``.

    Parameters
    ----------
    model : nn.Module
        A crmnet model; it is put in eval mode.
    x : (n, 4, L) tensor
        ``A, C, G, T`` one-hot (all-zero column: ``N``).
    baseline : (n, 4, L) or (1, 4, L) tensor or None
        Where the path starts; None: all ``N`` (zeros), which the model sees as its ``N`` encoding.
    n_steps : int
        Quadrature points along the path (the budget's gap shrinks as they grow).
    batch_size : int
        Sequences per captum call (each runs ``n_steps`` forward passes per sequence).
    device : str or torch.device, optional
        Where to run; None: where the model's parameters are.

    Returns
    -------
    MethodResult
        ``attributions`` (n, 4, L) = (x − baseline) × path-averaged gradient; ``difference``
        f(x) − f(baseline); ``delta``.
    """
    from captum.attr import IntegratedGradients

    x = _check(x)
    device = device or next(model.parameters()).device
    adapter = ACGTAdapter(model.eval()).to(device)
    base = torch.zeros_like(x[:1]) if baseline is None else baseline.float()
    ig = IntegratedGradients(adapter)
    out = []
    for s in range(0, len(x), batch_size):
        xb = x[s : s + batch_size].to(device)
        bb = base if len(base) == 1 else base[s : s + batch_size]
        bb = bb.to(device).expand_as(xb)
        out.append(ig.attribute(xb, baselines=bb, target=0, n_steps=n_steps, method="gausslegendre",
                                internal_batch_size=batch_size).detach().cpu())
    attr = torch.cat(out)
    with torch.no_grad():
        full = base.expand_as(x) if len(base) == 1 else base
        diff = (_predict(adapter, x, batch_size, device) - _predict(adapter, full, batch_size, device)).numpy()
    return MethodResult(attr.numpy().astype(np.float32), diff, np.abs(attr.sum((1, 2)).numpy() - diff))


def _predict(adapter: ACGTAdapter, x: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    """(n,) predictions of the adapter, in batches."""
    return torch.cat([adapter(x[s : s + batch_size].to(device))[:, 0].cpu()
                      for s in range(0, len(x), batch_size)])

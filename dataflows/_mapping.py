"""Layer mapping shared by every dataflow: how a layer is split into passes and stripes.

Follows the driver's mapping rule (``zs_cnn_layer::set_derived_config``,
docs/sources.md §N3.3 [C]) with the fixes documented in docs/architecture.md:

* pass count is ``ceil(C_out / out_per_pass)`` (the driver's integer division
  drops channels when C_out is not a multiple; docs/sources.md §N3.3 caveat [D]);
* the channel-derived ``m`` is capped at ``max_macs_per_channel`` (the driver
  logs "Invalid macs_per_channel" instead), leaving MACs idle;
* grouped and depthwise convolutions run as dense block-diagonal convolutions,
  because NullHop skips zero activations, not zero weights (Assumption).

Everything here is plain Python over dataclasses: no timing, no data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from workloads import MappingError
from workloads import Layer, Network

from ._accelerator import AcceleratorConfig

__all__ = ["LayerMapping", "ScheduledLayer", "map_conv", "schedule_network", "next_pow2"]


def next_pow2(n: int) -> int:
    """Smallest power of two >= ``n`` (``n >= 1``)."""
    return 1 << (int(n) - 1).bit_length()


@dataclass(frozen=True, kw_only=True)
class LayerMapping:
    """How one convolution is mapped onto the MAC array.

    Attributes
    ----------
    m : MACs per output channel (1, 2, 4 or 8); they split the input channels.
    out_per_pass : output channels computed per pass (``num_macs // m``).
    passes : number of passes over the input image.
    contiguous_kernels : weights held per MAC, including dummy-kernel padding.
    channels_per_lane : input channels handled by each of the ``m`` MACs of a channel.
    kernel : ``(kh, kw)``; padding, stride: as in the layer (stride > 1 is host decimation).
    conv_in_channels : input channels as the array sees them (FC: flattened length).
    """

    m: int
    out_per_pass: int
    passes: int
    contiguous_kernels: int
    channels_per_lane: int
    kernel: tuple[int, int]
    padding: int
    stride: int
    conv_in_channels: int
    out_channels: int
    groups: int

    def pass_channels(self, p: int) -> tuple[int, int]:
        """``(first, count)`` of the output channels computed in pass ``p``."""
        first = p * self.out_per_pass
        return first, min(self.out_per_pass, self.out_channels - first)


@dataclass(frozen=True, kw_only=True)
class ScheduledLayer:
    """One network layer with its execution decision.

    ``where`` is ``"accelerator"``, ``"host"`` (run in software, not timed) or
    ``"fused"`` (a 2x2 max pool folded into the producing conv's PRE stage).
    """

    layer: Layer
    where: str
    reason: str = ""
    mapping: LayerMapping | None = None
    fused_pool: Layer | None = None
    compressed_input: bool = True
    compressed_output: bool = True


def map_conv(layer: Layer, cfg: AcceleratorConfig) -> LayerMapping:
    """Map a conv (or an FC run as a 1x1 conv) onto the MAC array.

    Raises :class:`MappingError` when the kernel is too large or the kernels
    do not fit the kernel memories even with the largest ``m``.
    """
    max_k, max_m = cfg.array.max_kernel_size, cfg.array.max_macs_per_channel
    words = cfg.memory.kernel_memory_words_per_mac
    kh, kw = layer.kernel
    if layer.op == "fc":
        kh = kw = 1
        cin = layer.weight_shape[3]
    else:
        cin = layer.in_channels
    if max(kh, kw) > max_k:
        raise MappingError(
            f"layer {layer.name!r}: kernel {kh}x{kw} exceeds array.max_kernel_size="
            f"{max_k} (NullHop supports 1x1..7x7)")
    if layer.padding >= min(kh, kw):
        raise MappingError(
            f"layer {layer.name!r}: padding {layer.padding} must be smaller than the {kh}x{kw} kernel on NullHop "
            "(config_row_column_offset shifts the kernel window; rows of padding alone produce no work)")
    cout = layer.out_channels
    n = cfg.array.num_macs
    # Block-diagonal kernels: every MAC holds all C_in taps (zeros included).
    kmem_required = (kh * kw * cin) // words + 1  # "+1" even when exact [C]
    if cout <= n:
        m_channels = n // cout
    else:
        per_pass = cout // (cout // n + (1 if cout % n else 0))
        m_channels = n // per_pass
    m_channels = min(next_pow2(max(m_channels, 1)), max_m)
    if kmem_required > max_m:
        raise MappingError(
            f"layer {layer.name!r}: {kh}x{kw}x{cin} = {kh * kw * cin} weights per output channel need "
            f"{kmem_required} kernel memories of memory.kernel_memory_words_per_mac="
            f"{words}, more than array.max_macs_per_channel="
            f"{max_m}")
    m = next_pow2(max(kmem_required, m_channels))
    p2 = next_pow2(cin)

    def lane_layout(m: int) -> tuple[int, int]:
        if m == 1:
            return cin * kh * kw, cin
        if p2 > m:
            return (p2 // m) * kh * kw, p2 // m
        return kh * kw, 1

    contiguous, per_lane = lane_layout(m)
    # The driver sizes m from the real C_in, but a lane holds its share of the channels
    # padded to a power of two; raise m until the padded kernels fit (docs/architecture.md §2).
    while contiguous > words and m < max_m:
        m *= 2
        contiguous, per_lane = lane_layout(m)
    if contiguous > words:
        raise MappingError(
            f"layer {layer.name!r}: each MAC must hold {contiguous} kernel words ({kh}x{kw} taps x {per_lane} "
            f"channels padded to a power of two) even at m=array.max_macs_per_channel={max_m}, more than "
            f"memory.kernel_memory_words_per_mac={words}")
    out_per_pass = n // m
    passes = math.ceil(cout / out_per_pass)  # fix for the driver's integer division (docs/architecture.md)
    return LayerMapping(m=m, out_per_pass=out_per_pass, passes=passes, contiguous_kernels=contiguous,
                        channels_per_lane=per_lane, kernel=(kh, kw), padding=layer.padding,
                        stride=layer.stride, conv_in_channels=cin, out_channels=cout,
                        groups=layer.groups if layer.op == "conv" else 1)


def _fusable_pool(conv: Layer, pool: Layer) -> bool:
    ho, wo, _ = conv.out_shape
    return (pool.op == "maxpool" and pool.kernel == (2, 2) and pool.stride == 2 and pool.padding == 0
            and conv.stride == 1 and conv.activation in ("relu", "relu6") and ho % 2 == 0 and wo % 2 == 0)


def _unfused_pool_reason(pool: Layer, by_name: dict[str, Layer], consumers: dict[str, list[str]]) -> str:
    """Why a pool runs on the host: the first condition of :func:`_fusable_pool` it (or its producer) misses."""
    shape = f"{pool.op} {pool.kernel[0]}x{pool.kernel[1]}/{pool.stride}" + (f" pad {pool.padding}" if pool.padding else "")
    if pool.op != "maxpool" or pool.kernel != (2, 2) or pool.stride != 2 or pool.padding != 0:
        return f"{shape} is not the 2x2/2 max pool NullHop fuses"
    src = by_name.get(pool.inputs[0]) if pool.inputs else None
    if src is None or src.op != "conv":
        what = "the network input" if src is None else f"{src.op} {src.name!r}"
        return f"{shape} reads {what}; NullHop fuses a max pool only into the PRE of the conv before it"
    others = [c for c in consumers[src.name] if c != pool.name]
    if others:
        return f"{shape}: {src.name!r} also feeds {', '.join(map(repr, others))}, so its output cannot be pooled on the fly"
    if src.stride != 1:
        return f"{shape}: {src.name!r} has stride {src.stride}; the PRE pools stride-1 conv outputs only"
    if src.activation not in ("relu", "relu6"):
        return f"{shape}: {src.name!r} has no ReLU; the PRE pools after the ReLU"
    ho, wo, _ = src.out_shape
    return f"{shape}: {src.name!r} output {ho}x{wo} is not even in both dimensions"


def schedule_network(network: Network, cfg: AcceleratorConfig) -> list[ScheduledLayer]:
    """Decide, per layer, where it runs and how convs are mapped.

    * convs run on the accelerator; FC too when ``run_fc_on_accelerator``
      (else on the host, as in the NullHop driver [C]);
    * a 2x2/2 max pool that is a conv's only consumer is fused into its PRE [C];
    * other pools, residual adds and concats run on the host;
    * a layer's output is compressed only when it has a ReLU ("compression is
      wired to relu" [C]); the network's first layer reads the image
      uncompressed [C].
    """
    consumers = network.consumers()
    by_name = {layer.name: layer for layer in network.layers}
    fused: dict[str, Layer] = {}
    for layer in network.layers:
        if layer.op != "conv":
            continue
        users = consumers[layer.name]
        if len(users) == 1 and _fusable_pool(layer, by_name[users[0]]):
            fused[users[0]] = layer
    out: list[ScheduledLayer] = []
    for layer in network.layers:
        if layer.name in fused:
            out.append(ScheduledLayer(layer=layer, where="fused",
                                      reason=f"2x2 max pool fused into {fused[layer.name].name!r} PRE"))
            continue
        on_acc = layer.op == "conv" or (layer.op == "fc" and cfg.array.run_fc_on_accelerator)
        if not on_acc:
            reason = {"fc": "FC runs on the host CPU (NullHop driver) [C]",
                      "add": "residual add is not a NullHop operation",
                      "concat": "concat is a host-side memory layout step",
                      "host": f"{layer.host_op} on the host (values from onnxruntime)"
                              + (f": {layer.host_reason}" if layer.host_reason else "")}.get(layer.op)
            if reason is None:
                reason = _unfused_pool_reason(layer, by_name, consumers)
            out.append(ScheduledLayer(layer=layer, where="host", reason=reason))
            continue
        pool = next((p for p, c in fused.items() if c.name == layer.name), None)
        out.append(ScheduledLayer(
            layer=layer, where="accelerator", mapping=map_conv(layer, cfg),
            fused_pool=by_name[pool] if pool else None,
            compressed_input=layer.inputs != ("input",),
            compressed_output=layer.activation in ("relu", "relu6")))
    return out

"""SCALE-Sim topology CSVs as sparsesim networks.

SCALE-Sim (v2 and v3, ``topologies/conv_nets/*.csv``) describes a CNN as one row
per conv layer::

    Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
    Conv1,      224,          224,         11,            11,           3,        96,         4,

SCALE-Sim's conventions, which this reader keeps (``docs/bring_your_own.md``):

* The first line is a header and is skipped; blank lines (or all-empty fields) are skipped.
* Rows end with a comma (SCALE-Sim drops the last field); here it is optional.
  A 9th integer field is a separate stride width (must equal the stride height);
  anything else after column 8 (v3's ``Sparsity N:M``, comments such as ``#dw``,
  annotation columns) is ignored.
* The IFMAP size already includes any padding: SCALE-Sim models no padding, so a
  row is a conv with padding 0 and ``out = (IFMAP - Filter) // Stride + 1``.
  (SCALE-Sim itself computes ``ceil((IFMAP - Filter + Stride) / Stride)``, one more
  when ``Stride`` does not divide ``IFMAP - Filter``, e.g. AlexNet Conv1: 54 here, 55
  there; sparsesim uses the framework (floor) rule.)
* A row whose name contains ``DP`` is depthwise in SCALE-Sim (split into one layer
  per channel); here it is one grouped conv with ``groups = Channels`` and
  ``Channels * Num Filter`` outputs, the same MACs.
* SCALE-Sim has no activations; every row is given a ReLU (**Assumption**).

:func:`scalesim_networks` gives one single-layer network per row (rows are
independent layers in SCALE-Sim). :func:`from_scalesim_csv` chains the rows into
one network, inferring the glue described in its docstring, and raises
:class:`WorkloadError` when a row does not follow from the previous one.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ._errors import WorkloadError, check_path_arg
from ._limits import check_memory
from ._network import Network, NetworkBuilder, Shape

__all__ = ["SCALESIM_COLUMNS", "ScaleSimRow", "from_scalesim_csv", "read_scalesim_csv", "scalesim_networks"]

#: The 8 required columns of a SCALE-Sim conv topology row, in order.
SCALESIM_COLUMNS = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width", "Channels",
                    "Num Filter", "Strides")


@dataclass(frozen=True, kw_only=True)
class ScaleSimRow:
    """One topology row. ``line`` is its 1-based line number in the file."""

    line: int
    name: str
    ifmap_h: int
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    num_filter: int
    stride: int

    @property
    def depthwise(self) -> bool:
        """SCALE-Sim treats a layer whose name contains ``DP`` as depthwise."""
        return "DP" in self.name

    @property
    def ifmap(self) -> Shape:
        return (self.ifmap_h, self.ifmap_w, self.channels)

    @property
    def out_channels(self) -> int:
        return self.channels * self.num_filter if self.depthwise else self.num_filter


def _where(path, line: int, name: str | None = None, col: int | None = None) -> str:
    text = f"{path}: row {line}"
    if name:
        text += f" ({name!r})"
    if col is not None:
        text += f", column {col} ({SCALESIM_COLUMNS[col - 1] if col <= len(SCALESIM_COLUMNS) else 'Stride width'!r})"
    return text


def _int(text: str) -> int | None:
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else None


def read_scalesim_csv(path: str | os.PathLike) -> list[ScaleSimRow]:
    """Parse a SCALE-Sim conv topology CSV; errors name the file, row (line) and column."""
    check_path_arg(path, "read_scalesim_csv", WorkloadError)
    p = Path(path)
    try:
        if not p.is_file():
            raise WorkloadError(f"{path}: {'file not found' if not p.exists() else 'not a file'}")
        size = p.stat().st_size
        # Parsed rows of Python objects take about 20 bytes of memory per byte of text.
        check_memory(20 * size, f"{path}: parsing a {size}-byte topology")
        text = p.read_text(encoding="utf-8-sig")
    except WorkloadError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"{path}: not a readable text file ({exc})") from None
    rows: list[ScaleSimRow] = []
    names: set[str] = set()
    for line, raw in enumerate(text.splitlines(), start=1):
        fields = [f.strip() for f in raw.split(",")]
        if line == 1:
            if len(fields) > 1 and _int(fields[1]) is not None:
                raise WorkloadError(f"{_where(path, 1)}: looks like a layer row; SCALE-Sim treats the first line "
                                    f"as the header ({', '.join(SCALESIM_COLUMNS)},)")
            continue
        if not any(fields):
            continue
        name = fields[0]
        if len(fields) < len(SCALESIM_COLUMNS) or not all(fields[1:len(SCALESIM_COLUMNS)]):
            got = sum(1 for f in fields if f)
            raise WorkloadError(f"{_where(path, line, name)}: expected {len(SCALESIM_COLUMNS)} columns "
                                f"({', '.join(SCALESIM_COLUMNS)}), got {got}")
        if not name:
            raise WorkloadError(f"{_where(path, line, None, 1)}: the layer name is empty")
        vals = []
        for col in range(2, len(SCALESIM_COLUMNS) + 1):
            v = _int(fields[col - 1])
            if v is None or v < 1:
                raise WorkloadError(f"{_where(path, line, name, col)}: {fields[col - 1]!r} is not a positive "
                                    "integer")
            vals.append(v)
        ih, iw, fh, fw, ch, nf, stride = vals
        if len(fields) > 8 and (sw := _int(fields[8])) is not None and sw != stride:
            raise WorkloadError(f"{_where(path, line, name, 9)}: stride width {sw} differs from the stride "
                                f"height {stride}; sparsesim has one stride")
        if fh > ih:
            raise WorkloadError(f"{_where(path, line, name, 4)}: filter height {fh} exceeds the IFMAP height {ih}")
        if fw > iw:
            raise WorkloadError(f"{_where(path, line, name, 5)}: filter width {fw} exceeds the IFMAP width {iw}")
        unique, i = name, 2
        while unique in names or unique == "input":
            unique, i = f"{name}_{i}", i + 1
        names.add(unique)
        rows.append(ScaleSimRow(line=line, name=unique, ifmap_h=ih, ifmap_w=iw, filter_h=fh, filter_w=fw,
                                channels=ch, num_filter=nf, stride=stride))
    if not rows:
        raise WorkloadError(f"{path}: no layer rows after the header")
    return rows


def _conv(b: NetworkBuilder, row: ScaleSimRow, src: str, padding: int) -> str:
    return b.conv(row.name, row.out_channels, (row.filter_h, row.filter_w), stride=row.stride, padding=padding,
                  groups=row.channels if row.depthwise else 1, activation="relu", inputs=src)


def _stem(path, name: str | None) -> str:
    return name or re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem).strip("_.") or "scalesim"


def scalesim_networks(path: str | os.PathLike) -> list[Network]:
    """One single-conv network per row, named ``<file stem>.<layer>``, input = the row's IFMAP."""
    base = _stem(path, None)
    out = []
    for row in read_scalesim_csv(path):
        b = NetworkBuilder(f"{base}.{row.name}", row.ifmap)
        _conv(b, row, "input", 0)
        out.append(b.build())
    return out


def _out_shape(row: ScaleSimRow) -> Shape:
    """Output of a row's conv: its input plus padding is always exactly the IFMAP."""
    return ((row.ifmap_h - row.filter_h) // row.stride + 1, (row.ifmap_w - row.filter_w) // row.stride + 1,
            row.out_channels)


def _pooled(n: int) -> int:
    return (n - 2) // 2 + 1


def from_scalesim_csv(path: str | os.PathLike, *, name: str | None = None) -> Network:
    """Chain the rows of a SCALE-Sim topology into one network.

    The first row reads the network input (its IFMAP). Each later row reads the
    previous row's output ``h x w x c``; its IFMAP ``H x W x C`` (with ``C == c``)
    must follow from it in one of these ways, tried in order:

    1. ``H, W == h, w``: directly;
    2. ``H, W == h + 2p, w + 2p`` with ``p > 0``: the IFMAP includes a padding
       of ``p``, so the conv gets ``padding=p`` (same output and MACs as SCALE-Sim);
    3. ``H, W == h // 2, w // 2``: a 2x2/2 max pool is inserted (named
       ``<previous>_pool``);
    4. ``H, W == h // 2 + 2p, w // 2 + 2p``: the pool, then padding ``p``;
    5. ``H == W == 1`` and ``h == w > 1``: a global average pool is inserted
       (``<previous>_gap``), as before a classifier.

    Otherwise :class:`WorkloadError` names the row; such topologies (e.g. ResNet's
    shortcut rows, or channel counts that do not chain) can still be simulated row
    by row with :func:`scalesim_networks`.
    """
    rows = read_scalesim_csv(path)
    first = rows[0]
    b = NetworkBuilder(_stem(path, name), first.ifmap)
    taken = {r.name for r in rows}

    def glue_name(base: str) -> str:
        n, i = base, 2
        while n in taken:
            n, i = f"{base}_{i}", i + 1
        taken.add(n)
        return n

    prev = _conv(b, first, "input", 0)
    prev_shape = _out_shape(first)
    for row in rows[1:]:
        h, w, c = prev_shape
        H, W, C = row.ifmap
        src, pad = None, None
        # Padding inferred from the IFMAP must be one a real layer uses: at most (k - 1) / 2
        # ("same"), else the row is not this chain's next layer (e.g. a shortcut).
        max_pad = (min(row.filter_h, row.filter_w) - 1) // 2
        if C == c:
            if H - h == W - w and H >= h and (H - h) % 2 == 0 and (H - h) // 2 <= max_pad:
                src, pad = prev, (H - h) // 2
            elif h >= 2 and w >= 2 and H - _pooled(h) == W - _pooled(w) and H >= _pooled(h) \
                    and (H - _pooled(h)) % 2 == 0 and (H - _pooled(h)) // 2 <= max_pad:
                src, pad = b.maxpool(glue_name(f"{prev}_pool"), 2, 2, inputs=prev), (H - _pooled(h)) // 2
            elif H == W == 1 and h == w > 1:
                src, pad = b.avgpool(glue_name(f"{prev}_gap"), inputs=prev), 0
        if src is None:
            raise WorkloadError(
                f"{_where(path, row.line, row.name)}: IFMAP {H}x{W}x{C} does not follow from the previous row's "
                f"output {h}x{w}x{c} (directly, with symmetric padding, after a 2x2 max pool, or after a global "
                "average pool); to simulate the rows as independent layers use workloads.scalesim_networks()")
        try:
            prev = _conv(b, row, src, pad)
        except WorkloadError as exc:
            raise WorkloadError(f"{_where(path, row.line, row.name)}: {exc}") from None
        prev_shape = _out_shape(row)
    return b.build()

"""Shared pieces of the report tests: small real scans, a synthetic 1,000-layer result,
and an HTML structure reader (stdlib ``html.parser``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import torch

import layerscope
from layerscope import metrics as registry
from layerscope.results import ID_COLUMNS, STATUS_COLUMNS, LayerSamples, ScanResult, SpectrumSample

HOSTILE = "<script>alert(1)</script>"


@dataclass
class Page:
    """What the structure tests look at: ids, tags with attributes, script bodies."""

    ids: set[str] = field(default_factory=set)
    tags: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    scripts: list[tuple[dict[str, str], str]] = field(default_factory=list)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.tags
            if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]

    def json(self, element_id: str) -> object:
        for attrs, body in self.scripts:
            if attrs.get("id") == element_id:
                return json.loads(body)
        raise KeyError(element_id)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._script: dict[str, str] | None = None
        self._body: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.page.tags.append((tag, a))
        if "id" in a:
            self.page.ids.add(a["id"])
        if tag == "script":
            self._script, self._body = a, []

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._body.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.page.scripts.append((self._script, "".join(self._body)))
            self._script = None


def read_page(html: str) -> Page:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.page


def hostile_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Three matrices, one named like a script tag, one too small to analyse."""
    gen = torch.Generator().manual_seed(seed)
    return {
        f"{HOSTILE}.weight": torch.randn(96, 48, generator=gen),
        "block.0.dense.weight": torch.randn(128, 64, generator=gen)
        @ torch.randn(64, 64, generator=gen),
        "block.1.dense.weight": torch.randn(80, 40, generator=gen),
        "tiny.weight": torch.randn(4, 3, generator=gen),
        "block.0.dense.bias": torch.randn(64, generator=gen),
    }


@pytest.fixture(scope="session")
def hostile_scan() -> ScanResult:
    return layerscope.scan(hostile_state_dict(), metrics="all", keep_spectra=True)


def fake_scan(step: int, num_layers: int = 4) -> ScanResult:
    """A synthetic scan for run stores: alpha of layer i at step s is 2 + i + s/1000."""
    names = [f"layers.{i}.weight" for i in range(num_layers)]
    alpha = [2.0 + i + step / 1000 for i in range(num_layers)]
    layers = pd.DataFrame(
        {"layer_id": range(num_layers), "name": names, "kind": "linear", "N": 64, "M": 32}
    )
    layers = layers.assign(status="ok", verdict="ok", alpha=alpha)
    summary = {"num_layers": num_layers, "alpha": float(np.mean(alpha))}
    return ScanResult(layers, pd.DataFrame(columns=["name", "shape", "reason"]), summary, {})


def synthetic_scan(num_layers: int = 1000, n: int = 4096, seed: int = 0) -> ScanResult:
    """A scan-shaped result of ``num_layers`` matrices with ``n`` eigenvalues each, kept as
    samples (at the size cap), every metric column filled. No eigensolver runs: alpha,
    xmin and the tail are the generating Pareto tail's; the other columns are noise."""
    rng = np.random.default_rng(seed)
    metric_cols = [c for s in registry.REGISTRY for c in s.columns]
    rows, samples = [], {}
    for i in range(num_layers):
        alpha = float(rng.uniform(1.5, 8.0))
        bulk = rng.uniform(0.5, 1.5, size=n - 200)
        tail = 2.0 * (1.0 + rng.pareto(alpha - 1.0, size=200))
        evals = np.sort(np.concatenate([bulk, tail]))
        name = (
            f"model.layers.{i // 7}.mlp.{['up', 'down', 'gate', 'q', 'k', 'v', 'o'][i % 7]}.weight"
        )
        row = {c: float(rng.normal()) for c in metric_cols}
        verdict = "over-trained" if alpha < 2 else "under-trained" if alpha > 6 else "ok"
        row.update(
            name=name,
            kind="linear",
            N=4 * n,
            M=n,
            num_slices=1,
            param=name,
            dtype="bfloat16",
            status="ok",
            verdict=verdict,
            reason=f"alpha {alpha:.2f}",
            warning="",
            alpha=alpha,
            xmin=2.0,
            xmax=float(evals[-1]),
            num_pl_spikes=200,
            fit_quality="good",
            bulk_min=0.5,
            bulk_max=1.5,
            num_traps=float(i % 3 == 0),
            rand_bulk_max=1.6,
        )
        rows.append(row)
        shuffled = np.sort(rng.uniform(0.5, 1.6, size=n))
        samples[name] = LayerSamples(SpectrumSample.of(evals, 2.0), SpectrumSample.of(shuffled))
    columns = [c for c in (*ID_COLUMNS, *STATUS_COLUMNS) if c != "layer_id"] + metric_cols
    layers = pd.DataFrame.from_records(rows, columns=columns)
    layers.insert(0, "layer_id", range(num_layers))
    summary = {
        "num_layers": num_layers,
        "num_analysed": num_layers,
        "alpha": layers["alpha"].mean(),
    }
    meta = {"source": f"synthetic {num_layers}-layer model", "created": "2026-01-01T00:00:00+00:00"}
    empty = pd.DataFrame(columns=["name", "shape", "reason"])
    return ScanResult(layers, empty, summary, meta, samples=samples)

"""The explain page: one self-contained HTML file (inline CSS, inline PNG/SVG, a little plain JavaScript).

Nothing is fetched: the page carries a Content-Security-Policy that forbids every request (``default-src
'none'``) except ``data:`` images and its own inline style and script, so it opens from disk, offline, the same
on any machine. Pictures are stored once in a table (``IMAGES``) and each ``<img>`` names its entry: an array
shown twice (the ``dx`` a layer sends is the ``dy`` the layer below receives) costs its bytes once.

Layout: a bar with the step and the direction, a list of the layers (top to bottom going forward, bottom to top
going backward, the loss between the two passes), and one panel at a time.
"""

from __future__ import annotations

import html
import inspect
import json
from typing import Any

import numpy as np

from . import convolution, pictures
from .pictures import Picture
from .recording import LayerRecord, StepRecord
from .updates import explain_updates

CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                           "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


def _shape(shape: Any) -> str:
    return "(" + ", ".join(str(int(size)) for size in shape) + ")"


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


class _Images:
    """The page's picture table: each distinct picture once, under a short key."""

    def __init__(self) -> None:
        self.keys: dict[str, str] = {}

    def figure(self, picture: Picture, title: str) -> str:
        key = self.keys.setdefault(picture.uri, f"i{len(self.keys)}")
        if picture.signed:
            legend = f"blue -{_number(picture.limit)} &middot; white 0 &middot; red +{_number(picture.limit)}"
        else:
            legend = f"dark 0 &middot; yellow {_number(picture.limit)}"
        if picture.clipped:
            legend += " (the few values beyond show in the end colours)"
        return (f'<figure><div class="title">{_escape(title)}</div><img data-img="{key}" alt="{_escape(title)}" '
                f'width="{picture.display_width}" height="{picture.display_height}">'
                f'<figcaption>{_escape(picture.caption)}; {legend}</figcaption></figure>')

    def script(self) -> str:
        table = {key: uri for uri, key in self.keys.items()}
        return "const IMAGES = " + json.dumps(table, separators=(",", ":")) + ";"


def _stats_table(rows: list[tuple[str, np.ndarray]]) -> str:
    head = "<tr><th>array</th><th>shape</th><th>mean</th><th>std</th><th>min</th><th>max</th><th>norm</th>" \
           "<th>zeros</th></tr>"
    body = []
    for name, array in rows:
        stats = pictures.statistics(array)
        body.append(f"<tr><td>{_escape(name)}</td><td>{_shape(array.shape)}</td>" + "".join(
            f"<td>{_number(stats[key])}</td>" for key in ("mean", "std", "min", "max", "norm"))
            + f"<td>{stats['zeros']:.1%}</td></tr>")
    return f'<table class="stats">{head}{"".join(body)}</table>'


def _array_block(images: _Images, title: str, array: np.ndarray, parameter: bool = False) -> str:
    picture = pictures.parameter_picture(array) if parameter else pictures.batch_picture(array)
    return (f'<div class="array">{images.figure(picture, title)}'
            f'<div class="histogram">{pictures.histogram_svg(array)}</div></div>')


def _docstring(layer: Any) -> str:
    doc = inspect.getdoc(type(layer)) or "(this layer's class has no docstring: write its math there)"
    return f'<details open><summary>Formula and backward math (from the class docstring)</summary>' \
           f'<pre class="doc">{_escape(doc)}</pre></details>'


def _header(step: StepRecord, record: LayerRecord, direction: str, total: int) -> str:
    arrow = "forward: what goes down" if direction == "f" else "backward: what comes back up"
    return (f'<h2>{_escape(record.name)} <span class="kind">{_escape(record.kind)}</span></h2>'
            f'<p class="where">layer {record.index + 1} of {total} &middot; step {step.number + 1} &middot; '
            f"{arrow}</p>")


# ------------------------------------------------------------------------------------------------- panels
def forward_panel(images: _Images, step: StepRecord, record: LayerRecord, total: int) -> str:
    parts = [_header(step, record, "f", total),
             f'<p class="shapes">input {_shape(record.x.shape)} &rarr; output {_shape(record.y.shape)}'
             + "".join(f" &middot; {_escape(name)} {_shape(value.shape)}"
                       for name, value in record.params_before.items()) + "</p>",
             _docstring(record.layer), '<div class="arrays">',
             _array_block(images, "input x", record.x), _array_block(images, "output y", record.y), "</div>",
             _stats_table([("input x", record.x), ("output y", record.y)])]
    if record.params_before:
        parts.append('<h3>Parameters (before this step\'s update)</h3><div class="arrays">')
        parts += [_array_block(images, name, value, parameter=True) for name, value in record.params_before.items()]
        parts.append("</div>")
    if convolution.applies_to(record):
        parts.append(_receptive_field_html(convolution.receptive_field(record)))
    return "".join(parts)


def backward_panel(images: _Images, step: StepRecord, record: LayerRecord, total: int, optimizer: Any) -> str:
    parts = [_header(step, record, "b", total)]
    arriving = "dL/dz (before the activation: the fused softmax/cross-entropy gradient)" if record.fused \
        else "dy = dL/dy"
    if record.dy is None:
        parts.append("<p>No gradient reached this layer: nothing above it has parameters to train.</p>")
        return "".join(parts)
    parts.append(f'<p class="shapes">{_escape(arriving)} {_shape(record.dy.shape)} arrives; '
                 + (f"dx = dL/dx {_shape(record.dx.shape)} leaves" if record.dx is not None else
                    "no dx leaves: this layer's input is the data, so its backward pass skips it (Caffe's "
                    "propagate_down)") + "</p>")
    parts.append(_docstring(record.layer))
    parts.append('<div class="arrays">' + _array_block(images, "dy (arriving)", record.dy))
    if record.dx is not None:
        parts.append(_array_block(images, "dx (sent down)", record.dx))
    parts.append("</div>")
    rows = [("dy", record.dy)] + ([("dx", record.dx)] if record.dx is not None else []) + \
        [(f"d{name}", grad) for name, grad in record.grads.items()]
    if record.grads:
        parts.append('<h3>Parameter gradients</h3><div class="arrays">')
        parts += [_array_block(images, f"d{name} = dL/d{name}", grad, parameter=True)
                  for name, grad in record.grads.items()]
        parts.append("</div>")
    parts.append(_stats_table(rows))
    if convolution.applies_to(record):
        parts.append(_gradient_back_html(convolution.gradient_back(record)))
    parts.append(_check_html(record))
    if record.grads:
        parts.append(_updates_html(images, step, record, optimizer))
    return "".join(parts)


def _check_html(record: LayerRecord) -> str:
    title = "<h3>Gradient check (central differences in float64)</h3>"
    if record.check is None:
        return f'{title}<p class="bad">not checked: {_escape(record.check_error or "no check ran")}</p>'
    report = record.check
    verdict = '<span class="ok">PASSED</span>' if report.passed else '<span class="bad">FAILED</span>'
    rows = []
    for entry in report.entries:
        mark = '<span class="ok">ok</span>' if entry.passed else '<span class="bad">WRONG</span>'
        name = "dx" if entry.name == "x" else "d" + entry.name.split(".", 1)[-1]
        wrong = "".join(f"<br>wrong at {index}: analytic {_number(a)}, numeric {_number(n)}"
                        for index, a, n in entry.failures[:3])
        rows.append(f"<tr><td>{_escape(name)}</td><td>{_shape(entry.shape)}</td><td>{entry.checked}</td>"
                    f"<td>{entry.max_abs_error:.2e}</td><td>{entry.max_rel_error:.2e}</td>"
                    f"<td>{entry.worst_index}: analytic {_number(entry.worst_analytic)}, numeric "
                    f"{_number(entry.worst_numeric)}{wrong}</td><td>{mark}</td></tr>")
    return (f"{title}<p>{verdict}: the layer's own backward pass against <code>(s(v + h) - s(v - h)) / 2h</code>, "
            f"h = 1e-6, for <code>s = sum(forward(x) * g)</code> with a random upstream g, on the first "
            f"{record.check_samples} samples of this step's input (nudged off ReLU and max-pool kinks by 1e-3 of its "
            f"spread), at this step's weights; an entry passes when |analytic - numeric| &le; "
            f"{report.atol:g} + {report.rtol:g} &middot; max(|analytic|, |numeric|).</p>"
            '<table class="stats"><tr><th>gradient</th><th>shape</th><th>entries checked</th><th>max abs err</th>'
            '<th>max rel err</th><th>worst entry</th><th>verdict</th></tr>' + "".join(rows) + "</table>")


def _updates_html(images: _Images, step: StepRecord, record: LayerRecord, optimizer: Any) -> str:
    explanations = explain_updates(step, record, optimizer)
    if not explanations:
        return "<h3>Update</h3><p>The layer is frozen (trainable = False): the optimizer leaves it as it is.</p>"
    parts = [f"<h3>The optimizer's update ({_escape(type(optimizer).__name__)}, Keras 2's equations)</h3>",
             f'<pre class="equations">{_escape(explanations[0].equations)}</pre>',
             '<table class="stats"><tr><th>parameter</th><th>||p|| before</th><th>||p|| after</th>'
             '<th>||update||</th><th>update ratio ||update|| / ||p||</th></tr>']
    parts += [f"<tr><td>{_escape(item.parameter)}</td><td>{_number(item.before_norm)}</td>"
              f"<td>{_number(item.after_norm)}</td><td>{_number(item.update_norm)}</td>"
              f"<td>{_number(item.ratio)}</td></tr>" for item in explanations]
    parts.append("</table><p class=\"note\">An update ratio near 1e-3 per step is the classic healthy value for "
                 "SGD; 1e-5 means the layer hardly moves, 1e-1 means each step rewrites it. NaN: the parameter "
                 "was all zeros (a bias before its first update).</p>")
    for item in explanations:
        parts.append(f'<h4>{_escape(item.parameter)}: the step\'s numbers</h4><pre class="filled">'
                     + _escape("\n".join(item.filled)) + "</pre>")
        parts.append('<div class="arrays">' + _array_block(images, f"update of {item.parameter} (after - before)",
                                                             item.update, parameter=True) + "</div>")
    return "".join(parts)


def _receptive_field_html(field: convolution.ReceptiveField) -> str:
    kh, kw, sh, sw, pad_top, pad_left, out_h, out_w = field.window
    i, j = field.position
    channels = field.patch.shape[-1]
    shown_channels = min(channels, 3)
    grids = []
    for c in range(shown_channels):
        cells = "".join("<tr>" + "".join(f"<td>{_number(field.patch[di, dj, c])}</td>" for dj in range(kw))
                        + "</tr>" for di in range(kh))
        grids.append(f'<table class="grid"><caption>channel {c}</caption>{cells}</table>')
    picked = [index for index, (_, _, c) in enumerate(field.columns) if c < shown_channels]
    header = "".join(f"<th>{di},{dj},{c}</th>" for di, dj, c in (field.columns[k] for k in picked))
    row = "".join(f"<td>{_number(field.row[k])}</td>" for k in picked)
    weights = "".join(f"<td>{_number(field.kernel_column[k])}</td>" for k in picked)
    products = "".join(f"<td>{_number(field.row[k] * field.kernel_column[k])}</td>" for k in picked)
    shown_sum = float(sum(field.row[k] * field.kernel_column[k] for k in picked))
    rest = float(field.row @ field.kernel_column) - shown_sum
    hidden = len(field.columns) - len(picked)
    rest_text = f" + {_number(rest)} (the other {hidden} products)" if hidden else ""
    return (
        "<h3>im2col on this step's numbers: one receptive field becomes one row</h3>"
        f"<p>Output position (i, j) = ({i}, {j}) of sample 0 looks at the {kh}x{kw} window whose top-left input "
        f"pixel is ({field.origin[0]}, {field.origin[1]}) (stride {sh}x{sw}, padding {pad_top} top, {pad_left} "
        f"left). im2col copies it into row {i} * {out_w} + {j} = {field.row_index} of X_col, "
        f"{len(field.columns)} columns ordered (di, dj, c)"
        + (f"; channels 0-{shown_channels - 1} of {channels} shown" if shown_channels < channels else "") + ".</p>"
        f'<div class="grids">{"".join(grids)}</div>'
        '<div class="scroll"><table class="stats row"><tr><th>(di,dj,c)</th>' + header + "</tr>"
        f"<tr><th>X_col[{field.row_index}]</th>{row}</tr><tr><th>K[:, {field.filter}]</th>{weights}</tr>"
        f"<tr><th>product</th>{products}</tr></table></div>"
        f'<pre class="filled">z[0, {i}, {j}, {field.filter}] = X_col[{field.row_index}] . K[:, {field.filter}] + '
        f"b[{field.filter}] = {_number(shown_sum)}{rest_text} + {_number(field.bias)} = {_number(field.z)}\n"
        f"y = {field.activation}(z) = {_number(field.y_computed)}      the layer's output there: "
        f"{_number(field.y_layer)}</pre>"
        f"<p class=\"note\">Filter {field.filter} is the one that answers most strongly at this position. The whole "
        f"layer is this dot product for all {out_h * out_w} positions of every sample and all filters at once: "
        "X_col @ K, one matrix product.</p>")


def _gradient_back_html(back: convolution.GradientBack) -> str:
    h, w, c = back.pixel
    rows = "".join(f"<tr><td>({i}, {j})</td><td>({di}, {dj})</td><td>{_number(value)}</td></tr>"
                   for i, j, di, dj, value in back.terms)
    layer = ("the layer's own dx there: " + _number(back.layer_value)) if back.layer_value is not None else \
        "training never computes this dx (the input is the data); it is computed here only to show col2im"
    di, dj, kc, f = back.kernel_entry
    bias = "" if back.bias_gradient is None else (
        f"\ndb[{f}] = sum of dZ[:, {f}] over the same {back.kernel_terms} rows = {_number(back.bias_gradient)}"
        f"      the layer's: {_number(back.bias_gradient_layer)}")
    return (
        "<h3>col2im on this step's numbers: one input pixel collects the gradient of every window it was in</h3>"
        f"<p>Pixel (h, w, c) = ({h}, {w}, {c}) of sample 0 was copied into X_col once per window covering it: "
        f"{len(back.terms)} windows. dX_col = dZ @ K^T gives the gradient of each copy: the entry of window (i, j) "
        f"at offset (di, dj) is dZ[0, i, j, :] . K[di, dj, {c}, :] over the {back.filters} filters. col2im adds "
        "them up.</p>"
        '<table class="stats"><tr><th>window (i, j)</th><th>offset (di, dj)</th><th>dX_col entry</th></tr>'
        f"{rows}</table>"
        f'<pre class="filled">dx[0, {h}, {w}, {c}] = sum of the {len(back.terms)} entries = {_number(back.total)}\n'
        f"col2im(dX_col) at the pixel = {_number(back.col2im_value)}\n{layer}\n\n"
        f"dK[{di}, {dj}, {kc}, {f}] = X_col[:, column ({di},{dj},{kc})] . dZ[:, {f}] over all {back.kernel_terms} "
        f"rows of the batch = {_number(back.kernel_gradient)}      the layer's: "
        f"{_number(back.kernel_gradient_layer)}{bias}</pre>")


def loss_panel(images: _Images, step: StepRecord) -> str:
    loss = step.loss
    figures = ", ".join(f"{key} {_number(value)}" for key, value in step.figures.items())
    parts = [f'<h2>Loss <span class="kind">{_escape(loss.name)}</span></h2>',
             f'<p class="where">step {step.number + 1} &middot; between the two passes</p>',
             f"<p>This batch: {figures} (from this step's forward pass, before the update).</p>"]
    count = min(len(loss.targets), 6)
    if loss.fused and loss.gradient is not None:
        batch = len(loss.targets)
        parts.append(
            "<p>The model ends in a softmax and the loss is a cross-entropy, so the backward pass starts from the "
            f"fused gradient with respect to the logits, <code>dL/dz = (p - y) / N</code> with N = {batch}: the "
            "softmax's Jacobian times the cross-entropy's gradient collapses to this difference (see "
            "<code>tinynet.losses</code>). The first samples of the batch, with their numbers:</p>")
        for sample in range(count):
            p, y, g = loss.outputs[sample], np.asarray(loss.targets[sample]), loss.gradient[sample]
            if y.ndim == 0:  # sparse labels
                y = np.eye(len(p))[int(y)]
            computed = (p.astype(np.float64) - y) / batch
            header = "".join(f"<th>{k}</th>" for k in range(len(p)))
            parts.append(
                f'<div class="scroll"><table class="stats row"><caption>sample {sample}: label '
                f"{int(np.argmax(y))}, predicted {int(np.argmax(p))}</caption><tr><th>class</th>{header}</tr>"
                + "".join(f"<tr><th>{name}</th>" + "".join(f"<td>{_number(v)}</td>" for v in values) + "</tr>"
                          for name, values in (("p", p), ("y", y), (f"(p - y) / {batch}", computed),
                                               ("given to the layer", g))) + "</table></div>")
        if loss.numeric is not None:
            rows = "".join(
                f"<tr><td>{index}</td><td>{_number(float(loss.gradient[index]))}</td><td>{_number(numeric)}</td>"
                f"<td>{abs(float(loss.gradient[index]) - numeric):.1e}</td></tr>"
                for index, numeric in zip(loss.checked, loss.numeric, strict=True))
            worst = max(abs(float(loss.gradient[index]) - numeric)
                        for index, numeric in zip(loss.checked, loss.numeric, strict=True))
            scale = max(abs(float(loss.gradient[index])) for index in loss.checked)
            verdict = '<span class="ok">PASSED</span>' if worst <= 1e-6 + 1e-3 * scale else \
                '<span class="bad">FAILED</span>'
            parts.append(
                f"<h3>Gradient check of (p - y) / N</h3><p>{verdict}: central differences of the batch's loss with "
                "respect to single logits, in float64 (h = 1e-6; the logits taken as log p, which the softmax maps "
                "back to p), against the float32 gradient the layer received; the largest entries of the first "
                f"samples.</p><table class=\"stats\"><tr><th>entry (sample, class)</th><th>(p - y) / N</th>"
                f"<th>numeric</th><th>|difference|</th></tr>{rows}</table>")
    elif loss.gradient is not None:
        parts.append("<p>The backward pass starts from the loss's gradient with respect to the model's output, "
                     "<code>dL/dy</code>:</p>")
    if loss.gradient is not None:
        parts.append('<div class="arrays">' + _array_block(images, "gradient given to the last layer",
                                                            loss.gradient) + "</div>")
    return "".join(parts)


def overview_panel(images: _Images, step: StepRecord, model: Any, source: str) -> str:
    rows = []
    for record in step.layers:
        grads = " ".join(f"d{name} {_number(pictures.statistics(g)['norm'])}" for name, g in record.grads.items())
        check = "-" if record.check is None else ('<span class="ok">ok</span>' if record.check.passed
                                                  else '<span class="bad">FAILED</span>')
        dy = pictures.statistics(record.dy)["norm"] if record.dy is not None else None
        rows.append(f'<tr><td>{record.index + 1}</td><td><a href="#" data-go="{record.index}">'
                    f"{_escape(record.name)}</a></td><td>{_escape(record.kind)}</td><td>{_shape(record.y.shape)}</td>"
                    f"<td>{_number(pictures.statistics(record.y)['std'])}</td><td>{_number(dy)}</td>"
                    f"<td>{grads or '-'}</td><td>{check}</td></tr>")
    figures = ", ".join(f"{key} {_number(value)}" for key, value in step.figures.items())
    batch = images.figure(pictures.image_batch(step.x), "the batch (inputs)") if step.x.ndim == 4 else ""
    return (f"<h2>Step {step.number + 1}: overview</h2>"
            f"<p>{_escape(source)}. Optimizer {_escape(type(model.optimizer).__name__)}, iterations t = "
            f"{step.iterations} before this update, learning rate lr_t = {_number(step.learning_rate)}. "
            f"Batch: {figures}.</p>"
            f'<div class="arrays">{batch}</div>'
            "<p>Pick a layer on the left, switch between the forward pass (down) and the backward pass (up), and "
            "step through the recorded steps. Keys: &uarr; &darr; layers, &larr; &rarr; steps, f / b direction.</p>"
            '<table class="stats"><tr><th>#</th><th>layer</th><th>kind</th><th>output</th><th>std of output</th>'
            "<th>||dy||</th><th>||gradients||</th><th>gradient check</th></tr>" + "".join(rows) + "</table>")


# --------------------------------------------------------------------------------------------------- page
_STYLE = """
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
  background: #fafafa; }
header { position: sticky; top: 0; z-index: 2; background: #263238; color: #fff; padding: 8px 16px;
  display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
header h1 { font-size: 16px; margin: 0 12px 0 0; font-weight: 600; }
header button { font: inherit; padding: 4px 10px; border: 1px solid #90a4ae; background: #37474f; color: #fff;
  border-radius: 4px; cursor: pointer; }
header button.active { background: #fff; color: #263238; }
.wrap { display: flex; align-items: flex-start; }
nav { width: 250px; flex: none; padding: 8px; display: flex; flex-direction: column; gap: 2px;
  position: sticky; top: 48px; max-height: calc(100vh - 48px); overflow: auto; }
nav.backward .items { flex-direction: column-reverse; }
nav .items { display: flex; flex-direction: column; gap: 2px; }
nav button { font: inherit; text-align: left; padding: 4px 8px; border: 1px solid #ddd; background: #fff;
  border-radius: 4px; cursor: pointer; }
nav button small { color: #666; }
nav button.active { background: #e3f2fd; border-color: #1e88e5; }
nav button.loss { background: #fff8e1; }
main { flex: 1; padding: 8px 24px 48px; min-width: 0; }
.panel { display: none; }
.panel.shown { display: block; }
h2 { margin: 8px 0 2px; font-size: 20px; }
h2 .kind, .where { color: #666; font-weight: normal; }
h2 .kind { font-size: 15px; }
h3 { margin: 22px 0 6px; font-size: 16px; border-bottom: 1px solid #ddd; }
h4 { margin: 12px 0 4px; }
pre { background: #fff; border: 1px solid #e0e0e0; padding: 8px 10px; overflow-x: auto; font-size: 12.5px;
  line-height: 1.35; }
pre.filled { background: #f1f8e9; }
details summary { cursor: pointer; color: #1565c0; }
.arrays { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.array { display: flex; flex-direction: column; gap: 4px; }
figure { margin: 0; }
figure .title { font-weight: 600; }
figure img { image-rendering: pixelated; border: 1px solid #ccc; max-width: 100%; }
figcaption { color: #555; font-size: 12px; max-width: 480px; }
svg.hist .bars path { fill: #78909c; }
svg.hist .zero { stroke: #d32f2f; stroke-dasharray: 3 2; }
svg.hist .axis { stroke: #999; }
svg.hist text { font-size: 10px; fill: #555; }
table.stats { border-collapse: collapse; margin: 8px 0; font-size: 12.5px; }
table.stats td, table.stats th { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
table.stats th { background: #eceff1; }
table.stats td:first-child, table.stats td:nth-child(2) a { text-align: left; }
table.grid { border-collapse: collapse; font-size: 12px; display: inline-table; margin-right: 12px; }
table.grid td { border: 1px solid #bbb; padding: 2px 6px; text-align: right; }
.grids { display: flex; flex-wrap: wrap; }
.scroll { overflow-x: auto; }
.ok { color: #2e7d32; font-weight: 600; }
.bad { color: #c62828; font-weight: 600; }
.note { color: #555; font-size: 12.5px; }
"""

_SCRIPT = """
(function () {
  const errors = [];
  window.__explainErrors = errors;
  window.addEventListener('error', function (event) { errors.push(String(event.message)); });
  const steps = STEPS, items = ITEMS;
  const state = { step: 0, item: 'overview', direction: 'f' };
  const nav = document.querySelector('nav');
  function panelId() {
    if (state.item === 'overview' || state.item === 'loss') return 'p' + state.step + '-' + state.item;
    return 'p' + state.step + '-' + state.item + '-' + state.direction;
  }
  function show() {
    document.querySelectorAll('.panel.shown').forEach(function (p) { p.classList.remove('shown'); });
    const panel = document.getElementById(panelId());
    panel.querySelectorAll('img[data-img]').forEach(function (img) {
      if (!img.src) img.src = IMAGES[img.dataset.img];
    });
    panel.classList.add('shown');
    document.querySelectorAll('nav button[data-item]').forEach(function (b) {
      b.classList.toggle('active', b.dataset.item === String(state.item));
    });
    document.querySelectorAll('header button[data-direction]').forEach(function (b) {
      b.classList.toggle('active', b.dataset.direction === state.direction);
    });
    nav.classList.toggle('backward', state.direction === 'b');
    document.getElementById('step-label').textContent = 'step ' + (state.step + 1) + ' of ' + steps;
    document.body.dataset.panel = panelId();
  }
  function order() {
    const layers = items.filter(function (i) { return i !== 'loss'; });
    const ordered = state.direction === 'f' ? layers.concat(['loss']) : ['loss'].concat(layers.slice().reverse());
    return ['overview'].concat(ordered);
  }
  function move(offset) {
    const list = order();
    const at = list.indexOf(String(state.item));
    state.item = list[Math.min(list.length - 1, Math.max(0, at + offset))];
    show();
  }
  document.querySelectorAll('nav button[data-item]').forEach(function (b) {
    b.addEventListener('click', function () { state.item = b.dataset.item; show(); });
  });
  document.querySelectorAll('header button[data-direction]').forEach(function (b) {
    b.addEventListener('click', function () { state.direction = b.dataset.direction; show(); });
  });
  document.getElementById('previous-step').addEventListener('click', function () {
    state.step = Math.max(0, state.step - 1); show();
  });
  document.getElementById('next-step').addEventListener('click', function () {
    state.step = Math.min(steps - 1, state.step + 1); show();
  });
  document.querySelector('main').addEventListener('click', function (event) {
    const link = event.target.closest('a[data-go]');
    if (link) { event.preventDefault(); state.item = link.dataset.go; show(); }
  });
  document.addEventListener('keydown', function (event) {
    if (event.key === 'ArrowDown') { move(1); event.preventDefault(); }
    else if (event.key === 'ArrowUp') { move(-1); event.preventDefault(); }
    else if (event.key === 'ArrowRight') { state.step = Math.min(steps - 1, state.step + 1); show(); }
    else if (event.key === 'ArrowLeft') { state.step = Math.max(0, state.step - 1); show(); }
    else if (event.key === 'f' || event.key === 'b') { state.direction = event.key; show(); }
  });
  show();
  document.body.dataset.ready = '1';
})();
"""


def render(model: Any, steps: list[StepRecord], title: str, source: str) -> str:
    """The whole page as a string."""
    images = _Images()
    total = len(steps[0].layers)
    panels = []
    for step in steps:
        panels.append(f'<section class="panel" id="p{step.number}-overview">'
                      f"{overview_panel(images, step, model, source)}</section>")
        for record in step.layers:
            panels.append(f'<section class="panel" id="p{step.number}-{record.index}-f">'
                          f"{forward_panel(images, step, record, total)}</section>")
            panels.append(f'<section class="panel" id="p{step.number}-{record.index}-b">'
                          f"{backward_panel(images, step, record, total, model.optimizer)}</section>")
        panels.append(f'<section class="panel" id="p{step.number}-loss">{loss_panel(images, step)}</section>')
    buttons = "".join(f'<button data-item="{record.index}">{record.index + 1} {_escape(record.name)} '
                      f"<small>{_escape(record.kind)}</small></button>" for record in steps[0].layers)
    items = [str(record.index) for record in steps[0].layers] + ["loss"]
    script = _SCRIPT.replace("STEPS", str(len(steps))).replace("ITEMS", json.dumps(items))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>{_escape(title)}</h1>"
        '<span><button id="previous-step" title="previous step (&larr;)">&#9664;</button> '
        '<span id="step-label"></span> <button id="next-step" title="next step (&rarr;)">&#9654;</button></span>'
        '<span><button data-direction="f" title="forward (f)">Forward &darr;</button> '
        '<button data-direction="b" title="backward (b)">Backward &uarr;</button></span></header>'
        '<div class="wrap"><nav><button data-item="overview">Overview</button><div class="items">'
        f'{buttons}<button data-item="loss" class="loss">Loss <small>{_escape(steps[0].loss.name)}</small></button>'
        f"</div></nav><main>{''.join(panels)}</main></div>"
        f"<script>{images.script()}\n{script}</script></body></html>\n")

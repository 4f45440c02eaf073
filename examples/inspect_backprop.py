"""One batch through the tutorial CNN, forward and backward, layer by layer; then every gradient checked.

Run it with ``python examples/inspect_backprop.py`` (10 to 20 seconds on two cores). It

1. takes a batch of MNIST training images (or, when MNIST is not available offline, synthetic digit-like images;
   ``--synthetic`` forces them),
2. runs one forward and one backward pass of the tutorial's network and prints, per layer, the shapes going down
   and coming back and a few numbers: the output's mean and spread, the fraction of dead ReLU units, the size of
   the gradient arriving and leaving, and of each weight gradient,
3. builds a float64 copy of the same network with the same weights and dropout masks and compares every weight
   gradient with central differences (``tinynet.learn.check_model``) on a small batch, and the float32
   gradients with the float64 ones.

See docs/backprop.md for what each backward pass computes and why.
"""

from __future__ import annotations

import argparse

import numpy as np

from tinynet import applications, backend
from tinynet.learn import check_model, trace_step
from tinynet.optimizers import SGD
from tinynet.utils import set_random_seed, to_categorical

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--batch-size", type=int, default=32, help="images in the traced batch")
parser.add_argument("--check-batch-size", type=int, default=4, help="images in the gradient-checked batch")
parser.add_argument("--max-entries", type=int, default=25, help="entries of each weight array to check")
parser.add_argument("--synthetic", action="store_true", help="use synthetic images even if MNIST is available")
parser.add_argument("--seed", type=int, default=1)
args = parser.parse_args()


def load_batch(count: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``count`` images scaled to [0, 1] with a channel axis, their labels, and where they came from."""
    if not args.synthetic:
        try:
            from tinynet.datasets import DatasetUnavailableError, mnist

            (images, labels), _ = mnist.load_data()
            return images[:count, :, :, None].astype(np.float32) / 255, labels[:count], "MNIST training images"
        except DatasetUnavailableError as error:
            print(f"(MNIST is not available: {str(error).splitlines()[0]}; using synthetic images)")
    # A bright horizontal bar whose height gives the class, on faint noise: enough to see gradients flow.
    rng = np.random.default_rng(args.seed)
    labels = np.arange(count) % 10
    images = rng.uniform(0, 0.15, (count, 28, 28, 1)).astype(np.float32)
    for index, label in enumerate(labels):
        images[index, 3 + 2 * label:5 + 2 * label, 4:24] = 1.0
    return images, labels, "synthetic bar images"


def shape(value) -> str:
    return "-" if value is None else "x".join(map(str, value))


def build(seed: int):
    set_random_seed(seed)
    model = applications.mnist_cnn()
    # The tutorial's optimizer; nothing is updated here, it only completes the model.
    model.compile(SGD(lr=0.001, decay=1e-6, nesterov=True), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


x, labels, source = load_batch(max(args.batch_size, args.check_batch_size))
y = to_categorical(labels, num_classes=10)
model = build(args.seed)
# The biases start at zero; on black MNIST background a whole window then sits exactly on ReLU's kink at 0, where
# the derivative does not exist and finite differences cannot agree with any choice. A small positive bias moves
# every unit off it (it changes nothing else about the example).
for layer in model.layers:
    if "bias" in layer.params:
        layer.params["bias"][:] = np.random.default_rng(0).uniform(0.01, 0.05, layer.params["bias"].shape)

# ---------------------------------------------------------------------------------------- 1. one traced step
batch_x, batch_y = x[:args.batch_size], y[:args.batch_size]
traces = trace_step(model, batch_x, batch_y)
print(f"One training step of the tutorial CNN on {len(batch_x)} {source}; loss "
      f"{model.loss(batch_y, model.predict(batch_x)):.4f} (dropout off)\n")
print("FORWARD (top to bottom)")
print(f"  {'layer':<16} {'output shape':<14} {'mean':>9} {'std':>9} {'dead ReLU':>9}")
for trace in traces:
    dead = "" if trace.output_dead_fraction is None else f"{trace.output_dead_fraction:.1%}"
    print(f"  {trace.name:<16} {shape(trace.output_shape):<14} {trace.output_mean:>9.4f} {trace.output_std:>9.4f} "
          f"{dead:>9}")

print("\nBACKWARD (bottom to top): ||dL/d output|| arrives, ||dL/d input|| leaves, ||dL/dW|| stays")
print(f"  {'layer':<16} {'grad in':<14} {'||grad in||':>11} {'grad out':<14} {'||grad out||':>12}  weight gradients")
for trace in reversed(traces):
    arriving = f"{trace.upstream_norm:.3e}" + (" *" if trace.fused else "")
    leaving = "-" if trace.input_gradient_norm is None else f"{trace.input_gradient_norm:.3e}"
    weights = "  ".join(f"||d{name}||={norm:.3e}" for name, norm in trace.gradient_norms.items())
    print(f"  {trace.name:<16} {shape(trace.upstream_shape):<14} {arriving:>11} "
          f"{shape(trace.input_gradient_shape):<14} {leaving:>12}  {weights}")
print("  * the fused softmax + cross-entropy gradient (p - y) / N, given to the logits before the softmax")
print("  conv2d_1 sends nothing on: its input is the data, so it skips dx (Caffe's propagate_down)")

# ------------------------------------------------------------------------------------ 2. every gradient checked
check_x, check_y = x[:args.check_batch_size], y[:args.check_batch_size]
backend.set_floatx("float64")
twin = build(args.seed)
backend.set_floatx("float32")
twin.set_weights([weight.astype(np.float64) for weight in model.get_weights()])
# The same dropout masks in both: rewind each Dropout's random stream to the same point.
for layer, twin_layer in zip(model.layers, twin.layers, strict=True):
    if hasattr(layer, "generator"):
        twin_layer.generator.bit_generator.state = layer.generator.bit_generator.state
float32_gradients = {trace.name: trace.gradients for trace in trace_step(model, check_x, check_y)}

report = check_model(twin, check_x.astype(np.float64), check_y.astype(np.float64), max_entries=args.max_entries)
print(f"\nGRADIENT CHECK on {len(check_x)} images: analytic float64 gradients against central differences "
      f"(h = 1e-6), {args.max_entries} random entries per array; and float32 against float64")
print(f"  {'weight':<18} {'shape':<12} {'checked':>7} {'max rel err':>12} {'verdict':>8} {'float32 vs float64':>19}")
twin_to_model = {twin_layer.name: layer for layer, twin_layer in zip(model.layers, twin.layers, strict=True)}
for entry in report.entries:
    twin_name, parameter = entry.name.split(".")
    layer = twin_to_model[twin_name]  # the twin's layers have their own names (conv2d_3...): show the model's
    analytic64 = next(twin_layer for twin_layer in twin.layers if twin_layer.name == twin_name).grads[parameter]
    analytic32 = float32_gradients[layer.name][parameter].astype(np.float64)
    relative = np.linalg.norm(analytic32 - analytic64) / max(np.linalg.norm(analytic64), 1e-30)
    print(f"  {layer.name + '.' + parameter:<18} {shape(entry.shape):<12} {entry.checked:>7} "
          f"{entry.max_rel_error:>12.2e} {'ok' if entry.passed else 'WRONG':>8} {relative:>19.2e}")
print(f"\n{'All gradients agree.' if report.passed else 'Some gradients disagree:'}")
if not report.passed:
    print(report)
    raise SystemExit(1)

"""Layer configurations between Keras and tinynet: Keras 2 and Keras 3 to tinynet, tinynet to Keras 3.

tinynet's layers take Keras 2's constructor arguments and keep Keras's weight layouts, so translating a layer is
mostly copying its config. What needs care:

* **The Sequential forms.** Keras up to 2.2.2 wrote a Sequential's config as a bare list of layers; 2.2.3 and
  later write ``{"name": ..., "layers": [...]}`` (``keras/engine/sequential.py``, ``get_config``, at tag 2.2.4),
  the input shape as the first layer's ``batch_input_shape``. Keras 3 puts an ``InputLayer`` with ``batch_shape``
  first and wraps each layer as ``{"module", "class_name", "config", "registered_name", "build_config"}``.
* **Renamed options.** Keras 3's ``LeakyReLU(negative_slope)`` is Keras 2's (and tinynet's) ``alpha``; dtypes
  are ``DTypePolicy`` objects in Keras 3, strings in Keras 2; initializers are ``VarianceScaling`` configs in
  Keras 2.2 and named classes in Keras 3.
* **Options tinynet lacks.** Regularizers, constraints, grouped convolutions, mixed precision,
  ``channels_first``, any activation tinynet does not have (``tinynet.activations.names()``): a layer using one is
  refused with an error naming the layer and the option, never silently loaded as something else.
* **A name with two meanings.** ``hard_sigmoid`` is ``clip(0.2 x + 0.5, 0, 1)`` in Keras 2 (and tinynet) but
  ``clip(x / 6 + 0.5, 0, 1)`` in Keras 3: it is read only from a Keras 2 file and never written (tinynet writes
  Keras 3's format). An option left at the value
  that means "off" (``kernel_regularizer: null``, ``groups: 1``) is accepted.
* **Code.** ``Lambda`` layers hold Python bytecode, and a custom class (``registered_name``, a module outside
  Keras) would need code from the file's author: both are refused. Nothing read from a file is ever executed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tinynet import initializers as initializers_module
from tinynet import layers as layers_module
from tinynet.interop.errors import KerasFormatError, require_built
from tinynet.layers.base import Layer, snake_case

#: Keras class names (with Keras 2's aliases) of the layers tinynet has, as tinynet's canonical class names.
LAYER_CLASSES = {
    "Conv2D": "Conv2D", "Convolution2D": "Conv2D", "Dense": "Dense", "MaxPooling2D": "MaxPooling2D",
    "MaxPool2D": "MaxPooling2D", "AveragePooling2D": "AveragePooling2D", "AvgPool2D": "AveragePooling2D",
    "GlobalAveragePooling2D": "GlobalAveragePooling2D", "GlobalAvgPool2D": "GlobalAveragePooling2D",
    "BatchNormalization": "BatchNormalization", "Dropout": "Dropout", "Flatten": "Flatten",
    "Activation": "Activation", "ReLU": "ReLU", "LeakyReLU": "LeakyReLU", "ELU": "ELU", "Reshape": "Reshape",
    "ZeroPadding2D": "ZeroPadding2D",
}
#: Layers that carry code (Python bytecode or a TensorFlow op) in their config: never loaded.
CODE_LAYERS = ("Lambda", "TFOpLambda", "SlicingOpLambda")
_INITIALIZER_KEYS = ("kernel_initializer", "bias_initializer", "beta_initializer", "gamma_initializer",
                     "moving_mean_initializer", "moving_variance_initializer")
#: The options each tinynet layer takes from a Keras config (besides name, trainable, dtype and the input shape).
_OPTIONS = {
    "Conv2D": ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "activation",
               "use_bias", "kernel_initializer", "bias_initializer"),
    "Dense": ("units", "activation", "use_bias", "kernel_initializer", "bias_initializer"),
    "MaxPooling2D": ("pool_size", "strides", "padding", "data_format"),
    "AveragePooling2D": ("pool_size", "strides", "padding", "data_format"),
    "GlobalAveragePooling2D": ("data_format",),
    "BatchNormalization": ("axis", "momentum", "epsilon", "center", "scale", "beta_initializer",
                           "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer"),
    "Dropout": ("rate", "noise_shape", "seed"),
    "Flatten": ("data_format",),
    "Activation": ("activation",),
    "ReLU": ("max_value", "negative_slope", "threshold"),
    "LeakyReLU": ("alpha",),
    "ELU": ("alpha",),
    "Reshape": ("target_shape",),
    "ZeroPadding2D": ("padding", "data_format"),
}
#: Activation names that mean another function in Keras 3 than in Keras 2 and tinynet.
_KERAS2_ONLY_ACTIVATIONS = ("hard_sigmoid",)
#: Options tinynet lacks, accepted only at the value that switches them off.
_OFF_VALUES = {
    "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
    "bias_constraint": None, "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
    "gamma_constraint": None, "groups": 1, "quantization_config": None, "lora_rank": None, "synchronized": False,
    "renorm": False, "renorm_clipping": None, "keepdims": False, "sparse": False, "ragged": False,
    "optional": False,
}
#: Options with no effect on a built model (the batch size of an input; knobs of features that are off).
_IGNORED = ("batch_size", "renorm_momentum", "lora_alpha")
_KERAS_DEFAULT_ALPHA = 0.3  # LeakyReLU's slope in Keras 2 and 3 alike
MAX_LAYERS = 10_000


@dataclass
class TranslatedModel:
    """A Keras Sequential as tinynet constructors: ``layers`` holds ``(class, kwargs, keras class name)``."""

    name: str
    input_shape: tuple[int, ...] | None
    layers: list[tuple[type[Layer], dict[str, Any], str]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- Keras -> tinynet
def sequential_from_keras(model_config: Any, keras_major: int | None = 3) -> TranslatedModel:
    """Translate a model config (``{"class_name": "Sequential", "config": ...}``) in any of Keras's forms.

    ``keras_major`` is the major version of the Keras that wrote it (None when the file does not say): the
    activations whose meaning changed between Keras 2 and 3 are read only from a Keras 2 file."""
    model_config = _typed(model_config, dict, "the model config")
    class_name = model_config.get("class_name")
    if class_name != "Sequential":
        raise KerasFormatError(f"the model is a {class_name!r}; tinynet loads Sequential models only")
    _check_builtin(model_config, "the model")
    config = model_config.get("config")
    if isinstance(config, list):  # Keras <= 2.2.2: the layers alone
        name, layer_configs, build_shape = "sequential", config, None
    else:
        config = _typed(config, dict, "the Sequential config")
        name = config.get("name", "sequential")
        layer_configs = _typed(config.get("layers"), list, "the Sequential's layers")
        build_shape = config.get("build_input_shape")
    if not isinstance(name, str) or not name:
        raise KerasFormatError(f"the model's name is {name!r:.80}; expected a non-empty string")
    if len(layer_configs) > MAX_LAYERS:
        raise KerasFormatError(f"the model has {len(layer_configs)} layers, more than the {MAX_LAYERS} allowed")
    translated = TranslatedModel(name, None)
    for position, entry in enumerate(layer_configs):
        entry = _typed(entry, dict, f"layer {position} of the model")
        keras_class = entry.get("class_name")
        where = f"layer {position} ({keras_class!r:.60})"
        _check_builtin(entry, where)
        layer_config = _typed(entry.get("config"), dict, f"the config of {where}")
        if keras_class == "InputLayer":
            if position != 0:
                raise KerasFormatError(f"{where}: an InputLayer can only come first in a Sequential")
            translated.input_shape = _batch_shape(layer_config, ("batch_shape", "batch_input_shape"), where)
            _float_dtype(layer_config.get("dtype", "float32"), where)
            _check_off_options(layer_config, ("batch_shape", "batch_input_shape", "dtype", "name", "input_tensor"),
                               where)
            continue
        layer_class, kwargs = layer_from_keras(keras_class, layer_config, where, keras_major)
        declared = kwargs.pop("input_shape", None)
        if declared is not None and translated.input_shape is None and not translated.layers:
            translated.input_shape = declared
        translated.layers.append((layer_class, kwargs, LAYER_CLASSES[keras_class]))
    if translated.input_shape is None and build_shape is not None:
        translated.input_shape = _shape_without_batch(build_shape, "build_input_shape")
    if not translated.layers:
        raise KerasFormatError("the model has no layers")
    if translated.input_shape is None:
        raise KerasFormatError("the model config gives no input shape (no InputLayer, batch_input_shape or "
                               "build_input_shape): a model that was never built has no weights to load")
    return translated


def layer_from_keras(keras_class: Any, config: dict[str, Any], where: str,
                     keras_major: int | None = 3) -> tuple[type[Layer], dict[str, Any]]:
    """The tinynet class and constructor arguments of one Keras layer config (refusing what tinynet lacks)."""
    if keras_class in CODE_LAYERS:
        raise KerasFormatError(f"{where}: {keras_class} layers hold Python code, which tinynet never runs from a "
                               "file; rebuild that part of the model with tinynet's layers")
    if keras_class not in LAYER_CLASSES:
        raise KerasFormatError(f"{where}: tinynet has no layer {keras_class!r:.60}; it has "
                               f"{', '.join(sorted(set(LAYER_CLASSES.values())))}")
    tinynet_class = LAYER_CLASSES[keras_class]
    options = _OPTIONS[tinynet_class]
    kwargs: dict[str, Any] = {}
    name = config.get("name")
    if name is not None:
        if not isinstance(name, str) or not name or len(name) > 1000:
            raise KerasFormatError(f"{where}: the layer name {name!r:.80} is not a short non-empty string")
        kwargs["name"] = name
        where = f"{where[:-1]}, {name!r})" if where.endswith(")") else where
    trainable = config.get("trainable", True)
    if not isinstance(trainable, bool):
        raise KerasFormatError(f"{where}: trainable is {trainable!r:.80}; expected true or false")
    kwargs["trainable"] = trainable
    kwargs["dtype"] = _float_dtype(config.get("dtype", "float32"), where)
    shape = _batch_shape(config, ("batch_input_shape", "batch_shape"), where)
    if shape is not None:
        kwargs["input_shape"] = shape
    known = ("name", "trainable", "dtype", "batch_input_shape", "batch_shape", "input_shape", *options,
             *(("negative_slope",) if tinynet_class == "LeakyReLU" else ()))
    _check_off_options(config, known, where)
    for option in options:
        if option in config:
            kwargs[option] = config[option]
    if tinynet_class == "Flatten":  # tinynet's Flatten is channels-last only and takes no data_format
        data_format = kwargs.pop("data_format", None)
        if data_format not in (None, "channels_last"):
            raise KerasFormatError(f"{where}: data_format={data_format!r:.80} is not supported (channels_last only)")
    if tinynet_class == "LeakyReLU":  # Keras 3 renamed alpha to negative_slope
        kwargs["alpha"] = config.get("negative_slope", config.get("alpha", _KERAS_DEFAULT_ALPHA))
    if tinynet_class == "BatchNormalization" and isinstance(kwargs.get("axis"), list):
        axis = kwargs["axis"]
        if len(axis) != 1:
            raise KerasFormatError(f"{where}: axis {axis!r:.80} normalises over several axes; tinynet's "
                                   "BatchNormalization takes one feature axis")
        kwargs["axis"] = axis[0]
    for key in _INITIALIZER_KEYS:
        if key in kwargs:
            kwargs[key] = initializer_from_keras(kwargs[key], f"{where}: {key}")
    for key in ("kernel_size", "strides", "pool_size", "dilation_rate", "noise_shape", "target_shape"):
        if isinstance(kwargs.get(key), list):
            kwargs[key] = tuple(kwargs[key])
    if "activation" in kwargs and not (kwargs["activation"] is None or isinstance(kwargs["activation"], str)):
        raise KerasFormatError(f"{where}: the activation {kwargs['activation']!r:.80} is a serialized object "
                               "(a custom activation?); tinynet takes the names in tinynet.activations.names()")
    if kwargs.get("activation") in _KERAS2_ONLY_ACTIVATIONS and keras_major != 2:
        raise KerasFormatError(f"{where}: activation {kwargs['activation']!r} in a file from Keras "
                               f"{keras_major or '(version not given)'}: Keras 3's hard_sigmoid is clip(x / 6 + 0.5, "
                               "0, 1), tinynet's is Keras 2's clip(0.2 x + 0.5, 0, 1)")
    if tinynet_class == "ZeroPadding2D" and isinstance(kwargs.get("padding"), list):
        kwargs["padding"] = tuple(tuple(side) if isinstance(side, list) else side for side in kwargs["padding"])
    return layers_module.get(tinynet_class), kwargs


def initializer_from_keras(value: Any, where: str) -> Any:
    """A tinynet initializer from Keras 2's or 3's serialized form (a name, or ``{class_name, config}``)."""
    if isinstance(value, str):
        return _initializer(value, {}, where)
    value = _typed(value, dict, where)
    _check_builtin(value, where)
    config = _typed(value.get("config") or {}, dict, f"{where} config")
    class_name = value.get("class_name")
    if class_name == "VarianceScaling":  # Keras 2.2's form of glorot_* and he_*
        kind = (config.get("scale"), config.get("mode"), config.get("distribution"))
        names = {(1.0, "fan_avg", "uniform"): "glorot_uniform", (2.0, "fan_in", "uniform"): "he_uniform",
                 (2.0, "fan_in", "normal"): "he_normal", (2.0, "fan_in", "truncated_normal"): "he_normal"}
        if kind not in names:
            raise KerasFormatError(f"{where}: VarianceScaling{kind!r:.80} is none of the initializers tinynet has "
                                   "(glorot_uniform, he_uniform, he_normal, zeros, ones)")
        return _initializer(names[kind], {"seed": config.get("seed")}, where)
    extra = {key: item for key, item in config.items() if key != "seed" and item is not None}
    if extra:
        raise KerasFormatError(f"{where}: initializer options {sorted(extra)!r:.80} are not supported")
    return _initializer(class_name, {"seed": config["seed"]} if config.get("seed") is not None else {}, where)


def _initializer(name: Any, config: dict[str, Any], where: str) -> Any:
    try:
        initializer = initializers_module.get(name, owner=where)
    except (TypeError, ValueError) as error:
        raise KerasFormatError(str(error)) from None
    seed = config.get("seed")
    if seed is None:
        return initializer
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise KerasFormatError(f"{where}: the seed {seed!r:.80} is not a non-negative int")
    return type(initializer)(seed=seed)


def _check_off_options(config: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    for key, value in config.items():
        if key in known or key in _IGNORED:
            continue
        if key in _OFF_VALUES:
            if value != _OFF_VALUES[key] or type(value) is not type(_OFF_VALUES[key]):
                raise KerasFormatError(f"{where}: option {key}={value!r:.80} is not supported by tinynet (only "
                                       f"{key}={_OFF_VALUES[key]!r})")
            continue
        raise KerasFormatError(f"{where}: unknown option {key!r:.80}")


def _check_builtin(entry: dict[str, Any], where: str) -> None:
    """Refuse a custom object: a registered name, or a module that is not Keras's own."""
    module, registered = entry.get("module"), entry.get("registered_name")
    if module is not None and (not isinstance(module, str) or module.split(".")[0] != "keras"):
        raise KerasFormatError(f"{where}: module {module!r:.80} is not Keras's; custom objects need their "
                               "author's code, which tinynet never loads from a file")
    if registered is not None and registered != entry.get("class_name"):
        raise KerasFormatError(f"{where}: {registered!r:.80} is a registered custom object; tinynet never runs "
                               "code from a file")


def _float_dtype(value: Any, where: str) -> str:
    if isinstance(value, dict):  # Keras 3: a DTypePolicy
        _check_builtin(value, f"{where}: dtype")
        if value.get("class_name") != "DTypePolicy":
            raise KerasFormatError(f"{where}: dtype policy {value.get('class_name')!r:.80} is not supported "
                                   "(tinynet computes in float32 or float64)")
        value = _typed(value.get("config"), dict, f"{where}: dtype config").get("name")
    if value not in ("float32", "float64"):
        raise KerasFormatError(f"{where}: dtype {value!r:.80} is not supported; tinynet computes in float32 or "
                               "float64 (no mixed precision)")
    return value


def _batch_shape(config: dict[str, Any], keys: tuple[str, ...], where: str) -> tuple[int, ...] | None:
    for key in keys:
        if config.get(key) is not None:
            return _shape_without_batch(config[key], f"{where}: {key}")
    return None


def _shape_without_batch(value: Any, what: str) -> tuple[int, ...]:
    value = _typed(value, list, what)
    if len(value) < 2 or len(value) > 8:
        raise KerasFormatError(f"{what} is {value!r:.80}; expected a batch axis and 1 to 7 sample axes")
    sample = value[1:]
    if not all(isinstance(length, int) and not isinstance(length, bool) and length > 0 for length in sample):
        raise KerasFormatError(f"{what} is {value!r:.80}; every axis after the batch axis must be a positive int")
    return tuple(sample)


def _typed(value: Any, expected: type, what: str) -> Any:
    if not isinstance(value, expected):
        raise KerasFormatError(f"{what} is {value!r:.80}; expected a JSON {expected.__name__}")
    return value


# --------------------------------------------------------------------------------------------- tinynet -> Keras
def keras_layer_config(layer: Layer) -> dict[str, Any]:
    """Keras 3's serialized form of a tinynet layer (``{module, class_name, config, registered_name}``)."""
    class_name = type(layer).__name__
    if class_name not in _OPTIONS:
        raise TypeError(f"{layer.name}: Keras has no layer for tinynet's {class_name}; save in tinynet's format")
    config = layer.get_config()
    config.pop("input_shape", None)
    if config.get("activation") in _KERAS2_ONLY_ACTIVATIONS:
        raise TypeError(f"{layer.name}: activation {config['activation']!r} is another function in Keras 3 "
                        "(clip(x / 6 + 0.5, 0, 1)), whose format tinynet writes; save in tinynet's format")
    keras_config: dict[str, Any] = {"name": layer.name, "trainable": layer.trainable,
                                    "dtype": dtype_policy(layer.dtype.name)}
    for key in _OPTIONS[class_name]:
        if key in config:
            value = config[key]
            keras_config[key] = _json_lists(value)
    if class_name == "LeakyReLU":
        keras_config["negative_slope"] = keras_config.pop("alpha")
    for key in _INITIALIZER_KEYS:
        if key in keras_config:
            keras_config[key] = keras_initializer(getattr(layer, key))
    if class_name in ("Conv2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "Flatten",
                      "ZeroPadding2D"):
        keras_config["data_format"] = "channels_last"
    if class_name == "Conv2D":
        keras_config.update(groups=1)
    if class_name in ("Conv2D", "Dense"):
        keras_config.update(kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                            kernel_constraint=None, bias_constraint=None)
    if class_name == "GlobalAveragePooling2D":
        keras_config["keepdims"] = False
    entry = {"module": "keras.layers", "class_name": class_name, "config": keras_config, "registered_name": None}
    if layer.built:
        entry["build_config"] = {"input_shape": [None, *layer._built_input_shape]}
    return entry


def _json_lists(value: Any) -> Any:
    """Tuples (nested ones too, as ZeroPadding2D's padding) as the lists Keras writes."""
    return [_json_lists(item) for item in value] if isinstance(value, tuple) else value


def keras_initializer(initializer: Any) -> dict[str, Any]:
    serialized = initializers_module.serialize(initializer)
    class_name = {"glorot_uniform": "GlorotUniform", "he_uniform": "HeUniform", "he_normal": "HeNormal",
                  "zeros": "Zeros", "ones": "Ones"}[serialized["class_name"]]
    config = {key: value for key, value in serialized["config"].items() if key == "seed"}
    return {"module": "keras.initializers", "class_name": class_name, "config": config, "registered_name": None}


def dtype_policy(name: str) -> dict[str, Any]:
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}, "registered_name": None}


def keras_sequential_config(model: Any) -> dict[str, Any]:
    """Keras 3's config of a built tinynet Sequential: an explicit InputLayer, then each layer."""
    require_built(model, "saving for Keras")
    batch_shape = [None, *model.layers[0].input_shape]
    dtype = model.layers[0].dtype.name
    input_layer = {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                   "config": {"batch_shape": batch_shape, "dtype": dtype, "sparse": False, "ragged": False,
                              "name": "input_layer", "optional": False}}
    return {
        "module": "keras", "class_name": "Sequential", "registered_name": None,
        "config": {"name": model.name, "trainable": True, "dtype": dtype_policy(dtype),
                   "layers": [input_layer, *(keras_layer_config(layer) for layer in model.layers)],
                   "build_input_shape": batch_shape},
        "build_config": {"input_shape": batch_shape},
    }


def keras_variable_groups(model: Any) -> list[str]:
    """The group of each layer in a Keras 3 weights file: its class in snake case, ``_1``, ``_2``... on repeats
    (``keras/src/saving/saving_lib.py``, ``_save_container_state``: never the layer's own name)."""
    used: dict[str, int] = {}
    groups = []
    for layer in model.layers:
        base = snake_case(type(layer).__name__)
        count = used.get(base, 0)
        groups.append(base if count == 0 else f"{base}_{count}")
        used[base] = count + 1
    return groups

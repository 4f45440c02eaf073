"""tinynet: a small deep-learning engine in NumPy and Numba, with every backward pass written by hand.

The public modules mirror Keras 2 so that Keras tutorials run with only their imports changed::

    from tinynet.models import Sequential
    from tinynet.layers import Conv2D, MaxPooling2D, Dropout, Flatten, Activation, Dense
    from tinynet.optimizers import SGD
    from tinynet.utils import to_categorical
"""

__version__ = "0.1.0"

"""The C++ backend of batch norm (csrc/bindings/batchnorm.cpp); 16-bit x/dy/y/dx
through their entry points (fastopt/backends/cpp/_storage.py), with float32
gamma, beta and statistics."""
from fastopt.backends.cpp._storage import entry


def batch_norm_forward(x, y, gamma, beta, running_mean, running_var, save_mean, save_invstd, *,
                       training, momentum, eps):
    run, view = entry("batch_norm_forward", x.dtype)
    run(view(x), view(y), gamma, beta, running_mean, running_var, save_mean, save_invstd,
        training, momentum, eps)


def batch_norm_backward(dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, *, training):
    run, view = entry("batch_norm_backward", x.dtype)
    run(view(dy), view(x), gamma, save_mean, save_invstd, view(dx), dgamma, dbeta, training)

from fastopt import _core


def batch_norm_forward(x, y, gamma, beta, running_mean, running_var, save_mean, save_invstd, *,
                       training, momentum, eps):
    _core.batch_norm_forward(x, y, gamma, beta, running_mean, running_var, save_mean, save_invstd,
                             training, momentum, eps)


def batch_norm_backward(dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, *, training):
    _core.batch_norm_backward(dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, training)

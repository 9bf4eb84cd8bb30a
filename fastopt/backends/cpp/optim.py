from fastopt import _core, _scalars


def sgd(params, grads, bufs, *, lr, momentum, dampening, weight_decay, nesterov, maximize,
        first_step):
    s = _scalars.sgd(lr=lr, momentum=momentum, dampening=dampening,
                     weight_decay=weight_decay, maximize=maximize)
    _core.sgd_step(params, grads, bufs, *s, nesterov, first_step)


def rmsprop(params, grads, square_avgs, grad_avgs, bufs, *, lr, alpha, eps, weight_decay,
            momentum, maximize):
    s = _scalars.rmsprop(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, maximize=maximize)
    _core.rmsprop_step(params, grads, square_avgs, grad_avgs, bufs, *s)


def adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *, step, lr, beta1, beta2, eps,
         weight_decay, decoupled, maximize):
    s = _scalars.adam(step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                      weight_decay=weight_decay, decoupled=decoupled, maximize=maximize)
    _core.adam_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *s,
                    _scalars.adam_weight_decay_mode(weight_decay, decoupled))


def adagrad(params, grads, state_sums, *, step, lr, lr_decay, eps, weight_decay, maximize):
    s = _scalars.adagrad(step=step, lr=lr, lr_decay=lr_decay, eps=eps,
                         weight_decay=weight_decay, maximize=maximize)
    _core.adagrad_step(params, grads, state_sums, *s)

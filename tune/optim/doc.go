// Package optim updates float32 parameter tensors from their gradients the
// way torch.optim (PyTorch 1.13) does: SGD (momentum, dampening, Nesterov,
// L2 weight decay), Adam (L2 weight decay) and AdamW (decoupled weight
// decay), with a learning-rate schedule (constant, or cosine annealing with
// an optional linear warm-up, advanced per step or per epoch) and optional
// clipping of the gradients' global L2 norm (torch.nn.utils.clip_grad_norm_).
//
// Parameters are named tensors (Param) gathered in groups (Group) that carry
// their own learning rate and weight decay; a frozen group is never touched.
// The optimizer's state — moments, per-parameter step counts, the schedule's
// position — and the parameter values are written to and read from
// safetensors checkpoints (Save, Load, AddTo, RestoreFrom); a checkpoint whose
// parameter names or shapes differ from the optimizer's is refused with an
// error that lists every difference.
//
// Arithmetic follows torch's single-tensor CPU implementation operation by
// operation in float32 (scalars such as the bias corrections in float64, as
// Python computes them), so 20 steps agree with torch.optim to about 1e-7;
// see docs/TRAINING.md.
//
// An Optimizer is not safe for concurrent use.
package optim

// Package tune will hold gradient-based adaptation through ONNX Runtime
// (training graphs that compute their own gradients, optimisers, augmentation,
// the training loop for adapters, SSF, VPT, L2P, DualPrompt and CODA-Prompt;
// DESIGN §1). It has no code yet: the graphs it will train are built by
// models/vit (`cl models import --variant …`), and no issue has asked for the
// training loop so far.
package tune

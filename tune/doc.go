// Package tune trains the parameters of parameter-efficient ViT variants
// without Python: the first-session adaptation of APER and RanPAC Phase 1
// (docs/METHODS.md §2.2–2.3). It builds the variant from a checkpoint
// (models/vit), appends a cosine head and the cross-entropy, differentiates
// the graph (tune/grad), runs it on ONNX Runtime (models/ort; CPU or CUDA,
// the same graph) and updates the parameters with SGD (tune/optim). Images
// are held in memory (Dataset), decoded and augmented by parallel workers
// per epoch (Batches), in an order fixed by the seed. Train checkpoints
// atomically after every epoch and resumes bit for bit; Result.Bake makes
// the adapted backbone. docs/TRAINING.md describes the whole engine.
package tune

// Package extract turns a labelled image data set into a feature file: the
// decode → batch → infer pipeline behind `cl extract` (DESIGN §1, §3, §4).
//
// Sub-packages: extract/data (data sources: ImageFolder, CIFAR binary, IDX,
// CSV lists), extract/imageproc (Pillow-exact decoding and preprocessing),
// features (the safetensors feature file).
//
// Extract runs Workers goroutines that read, decode and preprocess images
// into float32 [3,S,S] tensors, an ordered batcher that packs them, in
// source order, into [Batch,3,S,S] inputs, and one inference goroutine that
// calls the backbone while the workers prepare the next batch. Channels and
// buffer pools are bounded, and feature rows are streamed to the output's
// temporary file, so memory does not grow with the data set (only labels and
// ids are kept, a few bytes per image).
package extract

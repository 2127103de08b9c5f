// Package extract turns an image data set into a feature file: the
// decode → batch → infer pipeline behind `cl extract` (docs/EXTRACT.md).
//
// Sub-packages: extract/data (data sources: ImageFolder, CIFAR binary, IDX,
// CSV lists, unlabelled images), extract/imageproc (Pillow-exact decoding
// and preprocessing); the file format is package features.
//
// Extract runs Workers goroutines that read, decode and preprocess images
// into float32 [3,S,S] tensors, an ordered batcher that packs them, in
// source order, into [Batch,3,S,S] inputs, and one inference goroutine that
// calls the backbone while the workers prepare the next batch. Channels and
// buffer pools are bounded, and feature rows are streamed to the output's
// temporary file, so memory does not grow with the data set (only labels and
// ids are kept, a few bytes per image). The image buffers are bounded by
// Options.BufferMemory before a run starts, and the images being decoded at
// once by Options.DecodeMemory (estimated from each file's header).
package extract

// Package serve is cl's continual-learning model server (docs/SERVE.md):
// predictions, online learning and exact forgetting over HTTP/JSON on a
// frozen backbone and a head from the heads package.
//
// Every learn and forget is checked, applied and appended to a journal
// (internal/journal) under one lock, and acknowledged only after an fsync
// covers it; snapshots (a head file, a feature file of the samples learned
// through the server, state.json) are written atomically and the journal is
// trimmed behind them; at start the snapshot is loaded and the journal
// replayed through the same code as live changes. Concurrent predictions
// are gathered into backbone batches with a bounded queue. Heads that
// solve per stage (RanPAC, LDA, FeCAM) re-solve on a debounced schedule and
// predictions use a solved copy; every reply carries the model version (the
// journal record the served head reflects).
//
// Shapes: images are preprocessed to float32 [n, 3, S, S] (the backbone's
// manifest); features are float32 [n, D]; scores are the head's.
package serve

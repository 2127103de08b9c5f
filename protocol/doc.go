// Package protocol runs the class-incremental learning (CIL) protocol of
// LAMDA-PILOT (docs/METHODS.md §3, docs/PROTOCOL.md) over classifier heads:
// the class order (numpy's legacy MT19937 permutation, bit-exact), the stage
// splits ("B{init} Inc{inc}"), the stage loop (learn a stage's new classes,
// then evaluate on every class seen so far), the accuracy matrix and the
// metrics derived from it (the A_b curve, Ā, A_B, forgetting, old/new
// accuracy). Ranking is heads.Rank; tables, JSON, CSV and plots are package
// report.
//
// Units: accuracies are top-1 percentages in [0, 100]; labels inside the
// protocol are positions in the class order ("remapped labels", as PILOT's
// _map_new_class_index), so stage t owns labels [Σ_{<t} n_i, Σ_{≤t} n_i).
//
// The package is pure Go; it imports heads, never models or cgo.
package protocol

package models

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cl-dev/cl/models/onnxpb"
)

// Fingerprint returns the hex SHA-256 of what determines the features a
// model produces: the graph (nodes, inputs, outputs, value infos, opset
// imports, functions) and its weights, without the descriptive metadata —
// the model's producer name and version, domain, model version, doc
// strings, graph name and metadata_props (where the manifest and its
// Backbone text live) — followed by the manifest's input and output tensor
// names and its preprocessing. Feature and head files store it as
// "fingerprint" (docs/FORMATS.md): two cuts of one graph that differ only in
// their description have the same fingerprint; another weight, node,
// output or preprocessing gives another.
//
// Each node and initializer is serialised on its own (deterministic protobuf
// encoding, length-prefixed), so hashing needs memory for the largest
// tensor, not a second copy of the model. Weights stored outside the .onnx
// file (external data) are covered by their location only. m is not
// modified.
func Fingerprint(m *onnxpb.ModelProto, man Manifest) string {
	h := sha256.New()
	h.Write([]byte("cl.fingerprint/1\x00"))
	put(h, without(m, "producer_name", "producer_version", "domain", "model_version", "doc_string", "metadata_props", "graph"))
	if g := m.GetGraph(); g != nil {
		put(h, without(g, "name", "doc_string", "node", "initializer"))
		for _, n := range g.GetNode() {
			put(h, without(n, "doc_string"))
		}
		for _, t := range g.GetInitializer() {
			put(h, without(t, "doc_string"))
		}
	}
	spec, _ := json.Marshal(struct {
		Input      string     `json:"input"`
		Output     string     `json:"output"`
		Preprocess Preprocess `json:"preprocess"`
	}{man.Input, man.Output, man.Preprocess})
	writeChunk(h, spec)
	return hex.EncodeToString(h.Sum(nil))
}

// without returns a shallow copy of msg without the named fields (the
// copy shares msg's values; neither is modified afterwards).
func without(msg proto.Message, names ...protoreflect.Name) proto.Message {
	src := msg.ProtoReflect()
	dst := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		for _, n := range names {
			if fd.Name() == n {
				return true
			}
		}
		dst.Set(fd, v)
		return true
	})
	return dst.Interface()
}

// put writes the deterministic encoding of msg, length-prefixed.
func put(h hash.Hash, msg proto.Message) {
	// ONNX is proto2 without required fields: encoding cannot fail.
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	writeChunk(h, b)
}

func writeChunk(h hash.Hash, b []byte) {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

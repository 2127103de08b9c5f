// Package onnxpb holds the Go bindings of the ONNX protobuf schema
// (onnx.proto from ONNX 1.12, IR version 8), generated with protoc and
// protoc-gen-go v1.36.12:
//
//	protoc --go_out=. --go_opt=paths=source_relative \
//	  --go_opt=Monnx.proto=github.com/cl-dev/cl/models/onnxpb onnx.proto
//
// Regenerate with scripts/gen-onnxpb.sh; never edit onnx.pb.go by hand.
package onnxpb

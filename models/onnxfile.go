package models

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/internal/atomicfile"
	"github.com/cl-dev/cl/models/onnxpb"
)

// ReadModel parses an .onnx file. Errors name the path.
func ReadModel(path string) (*onnxpb.ModelProto, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("%s is not a readable ONNX model: %v", path, err)
	}
	if m.GetGraph() == nil {
		return nil, fmt.Errorf("%s is not an ONNX model: it has no graph", path)
	}
	return m, nil
}

// WriteModel serialises m to path atomically (no partial file on failure).
func WriteModel(path string, m *onnxpb.ModelProto) error {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Metadata returns the value of metadata_props[key] and whether it is set.
func Metadata(m *onnxpb.ModelProto, key string) (string, bool) {
	for _, p := range m.GetMetadataProps() {
		if p.GetKey() == key {
			return p.GetValue(), true
		}
	}
	return "", false
}

// SetMetadata sets metadata_props[key] = value, replacing an existing entry.
func SetMetadata(m *onnxpb.ModelProto, key, value string) {
	for _, p := range m.MetadataProps {
		if p.GetKey() == key {
			p.Value = proto.String(value)
			return
		}
	}
	m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(key), Value: proto.String(value)})
}

// ManifestOf returns the manifest stored in the model, if any.
func ManifestOf(m *onnxpb.ModelProto) (Manifest, bool, error) {
	s, ok := Metadata(m, ManifestKey)
	if !ok {
		return Manifest{}, false, nil
	}
	man, err := ParseManifest(s)
	return man, true, err
}

// SetManifest stores man in the model's metadata_props.
func SetManifest(m *onnxpb.ModelProto, man Manifest) { SetMetadata(m, ManifestKey, man.JSON()) }

// ReadManifest reads only what is needed to get a model file's manifest.
func ReadManifest(path string) (Manifest, error) {
	m, err := ReadModel(path)
	if err != nil {
		return Manifest{}, err
	}
	man, ok, err := ManifestOf(m)
	if err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", path, err)
	}
	if !ok {
		return Manifest{}, fmt.Errorf("%s has no cl manifest (metadata %q); add one with `cl models cut` or pass --preprocess", path, ManifestKey)
	}
	return man, nil
}

// FileSHA256 returns the hex sha256 of a file's bytes (the model fingerprint).
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

package safetensors

import (
	"bytes"
	"testing"
)

// FuzzParse: Parse never panics; an accepted file's tensors lie inside the
// input with byte lengths matching their shapes, and re-encoding it gives a
// file that parses to the same tensors and metadata.
func FuzzParse(f *testing.F) {
	good := New()
	good.Metadata["format"] = "x"
	good.Tensors["a"] = FromFloat32s([]int64{2, 2}, []float32{1, 2, 3, 4})
	good.Tensors["b"] = FromInt64s([]int64{1}, []int64{7})
	var buf bytes.Buffer
	if _, err := good.WriteTo(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, '{', '}'})
	f.Add([]byte("\x40\x00\x00\x00\x00\x00\x00\x00{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}            \x00\x00\x80\x3f"))
	f.Add([]byte{255, 255, 255, 255, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		for name, tn := range file.Tensors {
			if int64(len(tn.Data)) != tn.NumElements()*int64(tn.DType.Size()) {
				t.Fatalf("tensor %q: %d bytes for shape %v %s", name, len(tn.Data), tn.Shape, tn.DType)
			}
		}
		var out bytes.Buffer
		if _, err := file.WriteTo(&out); err != nil {
			t.Fatalf("re-encoding an accepted file: %v", err)
		}
		again, err := Parse(out.Bytes())
		if err != nil {
			t.Fatalf("re-encoded file does not parse: %v", err)
		}
		if len(again.Tensors) != len(file.Tensors) || len(again.Metadata) != len(file.Metadata) {
			t.Fatalf("round trip changed the file: %d/%d tensors, %d/%d metadata", len(again.Tensors), len(file.Tensors), len(again.Metadata), len(file.Metadata))
		}
		for name, tn := range file.Tensors {
			if !bytes.Equal(again.Tensors[name].Data, tn.Data) || again.Tensors[name].DType != tn.DType {
				t.Fatalf("round trip changed tensor %q", name)
			}
		}
		for k, v := range file.Metadata {
			if again.Metadata[k] != v {
				t.Fatalf("round trip changed metadata %q", k)
			}
		}
	})
}

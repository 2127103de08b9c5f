package serve

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// A journal record (internal/journal payload) is one learn or forget:
//
//	kind    byte       'L' learn, 'F' forget
//	jsonLen uint32 LE  length of the JSON header
//	json               learnHeader or forgetRecord
//	rows    float32 LE learn only: the samples' features, [n, D] row-major
//
// Features, not images, are journaled, so replay needs no backbone and gives
// the head exactly the rows it learned.

const (
	kindLearn  = 'L'
	kindForget = 'F'
)

type learnHeader struct {
	Dim     int         `json:"dim"`
	Samples []recSample `json:"samples"`
}

type recSample struct {
	ID    string `json:"id"`
	Class string `json:"class"`
}

// forgetRecord forgets whole classes by name or samples by id.
type forgetRecord struct {
	Classes []string `json:"classes,omitempty"`
	IDs     []string `json:"ids,omitempty"`
}

// newSample is a sample to learn: id, class and its feature row [D].
type newSample struct {
	ID, Class string
	X         []float32
}

func encodeLearn(dim int, ss []newSample) []byte {
	h := learnHeader{Dim: dim, Samples: make([]recSample, len(ss))}
	for i, s := range ss {
		h.Samples[i] = recSample{s.ID, s.Class}
	}
	js, _ := json.Marshal(h)
	out := make([]byte, 5+len(js)+4*dim*len(ss))
	out[0] = kindLearn
	binary.LittleEndian.PutUint32(out[1:5], uint32(len(js)))
	copy(out[5:], js)
	p := 5 + len(js)
	for _, s := range ss {
		for _, v := range s.X {
			binary.LittleEndian.PutUint32(out[p:], math.Float32bits(v))
			p += 4
		}
	}
	return out
}

func encodeForget(f forgetRecord) []byte {
	js, _ := json.Marshal(f)
	out := make([]byte, 5+len(js))
	out[0] = kindForget
	binary.LittleEndian.PutUint32(out[1:5], uint32(len(js)))
	copy(out[5:], js)
	return out
}

// decodeRecord parses a journal payload into a learn ([]newSample) or a
// forget (forgetRecord).
func decodeRecord(p []byte) (kind byte, learn []newSample, forget forgetRecord, err error) {
	if len(p) < 5 {
		return 0, nil, forget, errors.New("record too short")
	}
	kind = p[0]
	n := int(binary.LittleEndian.Uint32(p[1:5]))
	if n > len(p)-5 {
		return 0, nil, forget, fmt.Errorf("record header of %d bytes in a %d-byte record", n, len(p))
	}
	js, rest := p[5:5+n], p[5+n:]
	switch kind {
	case kindLearn:
		var h learnHeader
		if err := json.Unmarshal(js, &h); err != nil {
			return 0, nil, forget, fmt.Errorf("learn record: %w", err)
		}
		if h.Dim <= 0 || len(rest) != 4*h.Dim*len(h.Samples) {
			return 0, nil, forget, fmt.Errorf("learn record: %d bytes of features for %d samples of dimension %d", len(rest), len(h.Samples), h.Dim)
		}
		all := make([]float32, h.Dim*len(h.Samples))
		for i := range all {
			all[i] = math.Float32frombits(binary.LittleEndian.Uint32(rest[4*i:]))
		}
		learn = make([]newSample, len(h.Samples))
		for i, s := range h.Samples {
			learn[i] = newSample{ID: s.ID, Class: s.Class, X: all[i*h.Dim : (i+1)*h.Dim : (i+1)*h.Dim]}
		}
		return kind, learn, forget, nil
	case kindForget:
		if len(rest) != 0 {
			return 0, nil, forget, errors.New("forget record has trailing bytes")
		}
		if err := json.Unmarshal(js, &forget); err != nil {
			return 0, nil, forget, fmt.Errorf("forget record: %w", err)
		}
		return kind, nil, forget, nil
	}
	return 0, nil, forget, fmt.Errorf("unknown record kind %q", kind)
}

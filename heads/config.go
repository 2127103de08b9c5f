package heads

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Config is a method's typed configuration: a pointer to its struct
// (*RanPACConfig, *FeCAMConfig, *LDAConfig, or an option-less one for
// simplecil, ncm and aper). Spec.Config returns the defaults; Spec.Parse
// applies `key=value` pairs (the CLI's --set, PILOT config files, a head
// file's params) through ParseInto, the one parser of every method.
//
// Each option is an exported field tagged `opt:"key"` (the key users type),
// with an optional `help:"…"` text. Field types: int, uint64, float64, bool,
// string, or a type implementing encoding.TextUnmarshaler and
// encoding.TextMarshaler (Lambda).
type Config interface {
	// Method is the registry name of the method the configuration is for.
	Method() string
	// Validate reports the first invalid value, naming its key.
	Validate() error
}

// Option describes one configuration key.
type Option struct {
	Key, Default, Help string
}

// Options lists the keys of cfg with their current values (the defaults,
// for a fresh Spec.Config()) and help, sorted by key.
func Options(cfg Config) []Option {
	v := reflect.ValueOf(cfg).Elem()
	var out []Option
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		key := f.Tag.Get("opt")
		if key == "" {
			continue
		}
		out = append(out, Option{Key: key, Default: formatField(v.Field(i)), Help: f.Tag.Get("help")})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// HasOption reports whether cfg has the key.
func HasOption(cfg Config, key string) bool {
	_, ok := field(cfg, key)
	return ok
}

// Params returns cfg as canonical key → value strings (what head files
// store in their params; ParseInto reads them back to the same value).
func Params(cfg Config) map[string]string {
	out := map[string]string{}
	for _, o := range Options(cfg) {
		out[o.Key] = o.Default
	}
	return out
}

// ParseInto sets cfg's options from pairs, in order (a later pair wins), then
// validates cfg. An unknown key is an error listing the known keys with
// their defaults; a malformed value names the key and what it wants.
func ParseInto(cfg Config, pairs [][2]string) error {
	for _, p := range pairs {
		k, s := strings.TrimSpace(p[0]), strings.TrimSpace(p[1])
		f, ok := field(cfg, k)
		if !ok {
			return unknownKey(cfg, k)
		}
		if err := setField(f, s); err != nil {
			return fmt.Errorf("%s: option %s=%q: %v", cfg.Method(), k, s, err)
		}
	}
	return cfg.Validate()
}

func unknownKey(cfg Config, k string) error {
	opts := Options(cfg)
	if len(opts) == 0 {
		return fmt.Errorf("%s: unknown option %q (this method takes no options)", cfg.Method(), k)
	}
	known := make([]string, len(opts))
	for i, o := range opts {
		known[i] = o.Key + " (default " + o.Default + ")"
	}
	return fmt.Errorf("%s: unknown option %q (known: %s)", cfg.Method(), k, strings.Join(known, ", "))
}

// sortedPairs returns a map's pairs sorted by key.
func sortedPairs(m map[string]string) [][2]string {
	out := make([][2]string, 0, len(m))
	for k, v := range m {
		out = append(out, [2]string{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

func field(cfg Config, key string) (reflect.Value, bool) {
	v := reflect.ValueOf(cfg).Elem()
	for i := 0; i < v.NumField(); i++ {
		if v.Type().Field(i).Tag.Get("opt") == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	textMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
)

func setField(f reflect.Value, s string) error {
	if f.Addr().Type().Implements(textUnmarshaler) {
		return f.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s))
	}
	switch f.Kind() {
	case reflect.Int:
		v, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("want an integer")
		}
		f.SetInt(int64(v))
	case reflect.Uint64:
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("want an unsigned integer")
		}
		f.SetUint(v)
	case reflect.Float64:
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("want a finite number")
		}
		f.SetFloat(v)
	case reflect.Bool:
		v, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		f.SetBool(v)
	case reflect.String:
		f.SetString(s)
	default:
		panic("heads: unsupported option field type " + f.Type().String())
	}
	return nil
}

func formatField(f reflect.Value) string {
	if f.Type().Implements(textMarshaler) {
		b, _ := f.Interface().(encoding.TextMarshaler).MarshalText()
		return string(b)
	}
	switch f.Kind() {
	case reflect.Int:
		return strconv.FormatInt(f.Int(), 10)
	case reflect.Uint64:
		return strconv.FormatUint(f.Uint(), 10)
	case reflect.Float64:
		return strconv.FormatFloat(f.Float(), 'g', -1, 64)
	case reflect.Bool:
		return strconv.FormatBool(f.Bool())
	case reflect.String:
		return f.String()
	}
	panic("heads: unsupported option field type " + f.Type().String())
}

// oneOf returns an error naming key unless v is one of allowed.
func oneOf(method, key, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%s: option %s=%q: want %s", method, key, v, strings.Join(allowed, " or "))
}

// inRange returns an error naming key unless lo ≤ v ≤ hi.
func inRange(method, key string, v, lo, hi float64) error {
	if !(v >= lo && v <= hi) {
		return fmt.Errorf("%s: option %s=%g: want a number in [%g, %g]", method, key, v, lo, hi)
	}
	return nil
}

// noConfig is the configuration of a method without options.
type noConfig struct{ method string }

func (c *noConfig) Method() string  { return c.method }
func (c *noConfig) Validate() error { return nil }

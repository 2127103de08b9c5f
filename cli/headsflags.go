package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/heads"
)

// setValue collects repeated `--set key=value` flags in order. Values may
// contain commas (it is not a comma-split slice flag).
type setValue struct{ pairs [][2]string }

func (s *setValue) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	s.pairs = append(s.pairs, [2]string{k, strings.TrimSpace(val)})
	return nil
}

func (s *setValue) String() string {
	if s == nil {
		return ""
	}
	var parts []string
	for _, p := range s.pairs {
		parts = append(parts, p[0]+"="+p[1])
	}
	return strings.Join(parts, " ")
}

// freshGeneric is a GenericFlag whose value starts empty at every parse:
// command definitions are package-level and the app may run more than once
// in a process (tests), so a shared accumulating value would leak between
// runs.
type freshGeneric struct {
	cli.GenericFlag
	fresh func() cli.Generic
}

// Apply installs a new empty value, then registers the flag.
func (f *freshGeneric) Apply(set *flag.FlagSet) error {
	f.Value = f.fresh()
	return f.GenericFlag.Apply(set)
}

// setFlag is the shared `--set key=value` flag (repeatable).
func setFlag(usage string) cli.Flag {
	return &freshGeneric{cli.GenericFlag{Name: "set", Usage: usage}, func() cli.Generic { return &setValue{} }}
}

// setPairs returns the --set pairs of c in command-line order.
func setPairs(c *cli.Context) [][2]string {
	if v, ok := c.Generic("set").(*setValue); ok && v != nil {
		return v.pairs
	}
	return nil
}

// methodSpecs looks up comma-separated method names; an unknown name is a
// usage error listing the registered ones.
func methodSpecs(list string) ([]heads.Spec, error) {
	var out []heads.Spec
	seen := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		spec, ok := heads.Lookup(name)
		if !ok {
			return nil, usageErrorf("--method: unknown method %q (known: %s)", name, strings.Join(heads.Methods(), ", "))
		}
		if seen[name] {
			return nil, usageErrorf("--method: %s listed twice", name)
		}
		seen[name] = true
		out = append(out, spec)
	}
	if len(out) == 0 {
		return nil, usageErrorf("--method: give at least one of %s", strings.Join(heads.Methods(), ", "))
	}
	return out, nil
}

// routeOptions gives each method the option keys it knows. extra are keys
// the command itself handles (protocol keys); a key that neither a method
// nor the command knows is a usage error listing every known key.
// A key "method.key" goes to that method only. Keys from soft sources (PILOT config files) that nobody knows are returned
// in ignored instead of failing.
func routeOptions(specs []heads.Spec, pairs [][2]string, extra map[string]bool, soft map[string]bool) (perMethod []map[string]string, ignored []string, err error) {
	perMethod = make([]map[string]string, len(specs))
	for i := range perMethod {
		perMethod[i] = map[string]string{}
	}
	for _, p := range pairs {
		k, v := p[0], p[1]
		// "method.key" sets key for that method only (e.g. ranpac.seed,
		// which the protocol's seed would otherwise shadow).
		if m, mk, ok := strings.Cut(k, "."); ok {
			found := false
			for i, s := range specs {
				if s.Name == strings.ToLower(m) {
					if _, ok := s.Options[mk]; !ok {
						return nil, nil, usageErrorf("--set %s: %s has no option %q; known keys: %s", k, s.Name, mk, knownKeys(specs, extra))
					}
					perMethod[i][mk] = v
					found = true
				}
			}
			if !found {
				return nil, nil, usageErrorf("--set %s: method %q is not selected (selected: %s)", k, m, specNames(specs))
			}
			continue
		}
		if extra[k] {
			continue
		}
		known := false
		for i, s := range specs {
			if _, ok := s.Options[k]; ok {
				perMethod[i][k] = v
				known = true
			}
		}
		if known {
			continue
		}
		if soft[k] {
			ignored = append(ignored, k)
			continue
		}
		return nil, nil, usageErrorf("--set %s: no selected method knows this key; known keys: %s", k, knownKeys(specs, extra))
	}
	return perMethod, ignored, nil
}

func specNames(specs []heads.Spec) string {
	var n []string
	for _, s := range specs {
		n = append(n, s.Name)
	}
	return strings.Join(n, ", ")
}

func knownKeys(specs []heads.Spec, extra map[string]bool) string {
	var parts []string
	var ex []string
	for k := range extra {
		ex = append(ex, k)
	}
	sort.Strings(ex)
	if len(ex) > 0 {
		parts = append(parts, "protocol: "+strings.Join(ex, ", "))
	}
	for _, s := range specs {
		var ks []string
		for k, def := range s.Options {
			ks = append(ks, k+" (default "+def+")")
		}
		sort.Strings(ks)
		if len(ks) == 0 {
			parts = append(parts, s.Name+": none")
		} else {
			parts = append(parts, s.Name+": "+strings.Join(ks, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

// pilotConfig is what cl takes from a LAMDA-PILOT exps/*.json file (METHODS
// §2.10): the split, the class order, the method and the method options it
// shares with cl's heads. Other keys (training schedule, backbone, device)
// are listed in Ignored.
type pilotConfig struct {
	Init, Inc   *int
	Shuffle     *bool
	Seed        *int64
	Method      string // cl method name, "" when model_name has no cl head
	ModelName   string
	Options     [][2]string // method option pairs (e.g. M=10000)
	Ignored     []string
	MethodNotes string
}

// pilotMethods maps PILOT's model_name to cl's head. APER variants need the
// adapted backbone's features as the second feature file.
var pilotMethods = map[string]string{
	"simplecil": "simplecil", "ranpac": "ranpac", "fecam": "fecam",
	"aper_adapter": "aper", "aper_ssf": "aper", "aper_vpt": "aper", "aper_finetune": "aper",
	"adam_adapter": "aper", "adam_ssf": "aper", "adam_vpt": "aper", "adam_finetune": "aper",
}

// readPilotConfig parses a PILOT JSON config; errors name the file and key.
func readPilotConfig(path string) (*pilotConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("--config %s: not a JSON object: %v", path, err)
	}
	cfg := &pilotConfig{}
	intKey := func(k string) (*int, error) {
		var v float64
		if err := json.Unmarshal(raw[k], &v); err != nil || v != float64(int(v)) {
			return nil, fmt.Errorf("--config %s: %s must be an integer, got %s", path, k, raw[k])
		}
		i := int(v)
		return &i, nil
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch k {
		case "init_cls":
			if cfg.Init, err = intKey(k); err != nil {
				return nil, err
			}
		case "increment":
			if cfg.Inc, err = intKey(k); err != nil {
				return nil, err
			}
		case "shuffle":
			var v bool
			if err := json.Unmarshal(raw[k], &v); err != nil {
				return nil, fmt.Errorf("--config %s: shuffle must be true or false, got %s", path, raw[k])
			}
			cfg.Shuffle = &v
		case "seed":
			// PILOT runs once per seed in the list; cl takes the first.
			var list []int64
			var one int64
			if err := json.Unmarshal(raw[k], &list); err == nil && len(list) > 0 {
				cfg.Seed = &list[0]
			} else if err := json.Unmarshal(raw[k], &one); err == nil {
				cfg.Seed = &one
			} else {
				return nil, fmt.Errorf("--config %s: seed must be an integer or a list of integers, got %s", path, raw[k])
			}
		case "model_name":
			if err := json.Unmarshal(raw[k], &cfg.ModelName); err != nil {
				return nil, fmt.Errorf("--config %s: model_name must be a string, got %s", path, raw[k])
			}
			cfg.Method = pilotMethods[strings.ToLower(cfg.ModelName)]
		case "M":
			m, err := intKey(k)
			if err != nil {
				return nil, err
			}
			cfg.Options = append(cfg.Options, [2]string{"M", strconv.Itoa(*m)})
		case "use_RP":
			var v bool
			if err := json.Unmarshal(raw[k], &v); err != nil {
				return nil, fmt.Errorf("--config %s: use_RP must be true or false, got %s", path, raw[k])
			}
			if !v { // RanPAC without random projection = ridge on raw features (METHODS §2.3)
				cfg.Options = append(cfg.Options, [2]string{"M", "0"})
			}
		default:
			cfg.Ignored = append(cfg.Ignored, k)
		}
	}
	// use_RP false wins over M.
	for _, o := range cfg.Options {
		if o == [2]string{"M", "0"} {
			cfg.Options = [][2]string{o}
			break
		}
	}
	return cfg, nil
}

// readFeatures reads "F" or "F,G"; two files are joined row-wise by sample
// id (features.ConcatByID), as APER's two branches.
func readFeatures(flag, spec string) (*features.Set, error) {
	parts := strings.Split(spec, ",")
	if spec == "" || len(parts) > 2 {
		return nil, usageErrorf("--%s: want one feature file or two joined by a comma, got %q", flag, spec)
	}
	a, err := features.Read(strings.TrimSpace(parts[0]))
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	if len(parts) == 1 {
		return a, nil
	}
	b, err := features.Read(strings.TrimSpace(parts[1]))
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	s, err := features.ConcatByID(a, b)
	if err != nil {
		return nil, fmt.Errorf("--%s: joining %s and %s: %w", flag, parts[0], parts[1], err)
	}
	return s, nil
}

// logger returns the command's stderr logger.
func logger(c *cli.Context) *slog.Logger {
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// onUsageError makes a command's flag-parsing errors usage errors (exit 2).
func onUsageError(c *cli.Context, err error, isSubcommand bool) error { return UsageError{err} }

// requireFlags returns a usage error naming the first missing flag (urfave's
// own Required check does not produce exit code 2).
func requireFlags(c *cli.Context, names ...string) error {
	for _, n := range names {
		if !c.IsSet(n) || c.String(n) == "" {
			return usageErrorf("flag --%s is required (see cl %s --help)", n, c.Command.Name)
		}
	}
	return nil
}

// scoredLabels returns, for each class of a feature file (index = its
// label), the label the head scores it as, or −1 when the head has no class
// of that name (headClasses is the head file's class list).
func scoredLabels(h heads.Head, headClasses, featureClasses []string) []int {
	scored := map[int]bool{}
	for _, l := range h.Classes() {
		scored[l] = true
	}
	index, _ := features.MapClasses(headClasses, featureClasses)
	out := make([]int, len(featureClasses))
	for c, k := range index {
		out[c] = -1
		if k < len(headClasses) && scored[k] {
			out[c] = k
		}
	}
	return out
}

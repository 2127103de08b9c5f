package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

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
			if !v { // RanPAC without random projection = ridge on raw features (docs/METHODS.md §2.3)
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

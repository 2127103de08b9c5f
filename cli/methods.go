package cli

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cl-dev/cl/heads"
)

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

// routeOptions gives each method the option keys it knows and parses them
// into its configuration (heads.Spec.Parse, the parser of every key=value
// source). extra are keys the command itself handles (protocol keys); a key
// that neither a method nor the command knows is a usage error listing
// every known key. A key "method.key" goes to that method only. Keys from
// soft sources (PILOT config files) that nobody knows are returned in
// ignored instead of failing. A malformed value is a usage error naming the
// key.
func routeOptions(specs []heads.Spec, pairs [][2]string, extra map[string]bool, soft map[string]bool) (perMethod []heads.Config, ignored []string, err error) {
	routed := make([][][2]string, len(specs))
	knows := func(s heads.Spec, k string) bool { return heads.HasOption(s.Config(), k) }
	for _, p := range pairs {
		k, v := p[0], p[1]
		// "method.key" sets key for that method only (e.g. ranpac.seed,
		// which the protocol's seed would otherwise shadow).
		if m, mk, ok := strings.Cut(k, "."); ok {
			found := false
			for i, s := range specs {
				if s.Name == strings.ToLower(m) {
					if !knows(s, mk) {
						return nil, nil, usageErrorf("--set %s: %s has no option %q; known keys: %s", k, s.Name, mk, knownKeys(specs, extra))
					}
					routed[i] = append(routed[i], [2]string{mk, v})
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
			if knows(s, k) {
				routed[i] = append(routed[i], [2]string{k, v})
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
	perMethod = make([]heads.Config, len(specs))
	for i, s := range specs {
		if perMethod[i], err = s.Parse(routed[i]); err != nil {
			return nil, nil, UsageError{fmt.Errorf("--set: %w", err)}
		}
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
		for _, o := range s.Options() {
			ks = append(ks, o.Key+" (default "+o.Default+")")
		}
		if len(ks) == 0 {
			parts = append(parts, s.Name+": none")
		} else {
			parts = append(parts, s.Name+": "+strings.Join(ks, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

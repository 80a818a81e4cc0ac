package platform

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/pflag"
)

// EnvName returns the environment variable that overrides a flag of a
// component: PHOTON_<COMPONENT>_<FLAG>, upper case, '-' replaced by '_'.
func EnvName(component, flag string) string {
	r := strings.NewReplacer("-", "_", ".", "_")
	return "PHOTON_" + strings.ToUpper(r.Replace(component)) + "_" + strings.ToUpper(r.Replace(flag))
}

// LoadConfig fills every flag of fs that was not given on the command line,
// first from the environment (see EnvName), then from the TOML file
// configFile (skipped when empty), whose keys are flag names. Flags already
// set on the command line win, and defaults stay for what nobody set.
// A key in the file that names no flag is an error, because a typo in a
// config file should stop the server rather than be silently ignored.
func LoadConfig(fs *pflag.FlagSet, component string, configFile string) error {
	file := map[string]configValue{}
	if configFile != "" {
		var err error
		if file, err = readConfigFile(configFile); err != nil {
			return err
		}
		keys := make([]string, 0, len(file))
		for k := range file {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if fs.Lookup(k) == nil {
				return fmt.Errorf("config file %s: unknown key %q", configFile, k)
			}
		}
	}
	var firstErr error
	fs.VisitAll(func(f *pflag.Flag) {
		if firstErr != nil || f.Changed {
			return
		}
		env := EnvName(component, f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				firstErr = fmt.Errorf("environment %s: %w", env, err)
			}
			return
		}
		v, ok := file[f.Name]
		if !ok {
			return
		}
		// An array sets the flag once per element, as the flag repeated on
		// the command line would: list flags then get the elements as they
		// are, even those containing commas (such as "host key name"
		// lists, or secrets in repeatable flags).
		vals := []string{v.text}
		if len(v.elems) > 0 { // an empty array is the empty list, as ""
			vals = v.elems
		}
		for _, e := range vals {
			if err := fs.Set(f.Name, e); err != nil {
				firstErr = fmt.Errorf("config file %s: key %q: %w", configFile, f.Name, err)
				return
			}
		}
	})
	return firstErr
}

// configValue is one key of a config file: its text as on the command
// line and, for an array, each element's text.
type configValue struct {
	text  string
	elems []string
}

// readConfigFile decodes a TOML file into flag name -> flag value.
func readConfigFile(path string) (map[string]configValue, error) {
	raw := map[string]any{}
	if _, err := toml.DecodeFile(path, &raw); err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("config file %s: line %d: %s", path, perr.Position.Line, perr.Message)
		}
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	out := make(map[string]configValue, len(raw))
	for k, v := range raw {
		s, err := tomlValueString(v)
		if err != nil {
			return nil, fmt.Errorf("config file %s: key %q: %w", path, k, err)
		}
		cv := configValue{text: s}
		if arr, ok := v.([]any); ok {
			cv.elems = make([]string, len(arr))
			for i, e := range arr {
				cv.elems[i], _ = tomlValueString(e) // checked by tomlValueString(v)
			}
		}
		out[k] = cv
	}
	return out, nil
}

// tomlValueString renders a decoded TOML value the way it would be written
// on the command line; arrays become comma-separated lists as pflag's slice
// flags expect.
func tomlValueString(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case time.Duration:
		return v.String(), nil
	case time.Time:
		return v.Format(time.RFC3339Nano), nil
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			if _, nested := e.([]any); nested {
				return "", errors.New("nested arrays are not supported")
			}
			s, err := tomlValueString(e)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	case map[string]any:
		return "", errors.New("tables are not supported; keys are flag names at the top level")
	default:
		return "", fmt.Errorf("unsupported value type %T", v)
	}
}

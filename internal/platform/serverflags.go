package platform

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/pflag"
)

// ServerFlags are the flags every server binary has besides its own:
// --config, --log-level and --log-format.
type ServerFlags struct {
	component  string
	configFile string
	logLevel   string
	logFormat  string
}

// AddServerFlags declares component's --config, --log-level and
// --log-format on fs.
func AddServerFlags(fs *pflag.FlagSet, component string) *ServerFlags {
	f := &ServerFlags{component: component}
	fs.StringVar(&f.configFile, "config", "", fmt.Sprintf("TOML file whose keys are flag names; flags and %s variables override it", EnvName(component, "*")))
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	return f
}

// LoadConfig fills the flags of fs not given on the command line from the
// environment and the config file (see the function LoadConfig), which
// may itself be named by PHOTON_<COMPONENT>_CONFIG.
func (f *ServerFlags) LoadConfig(fs *pflag.FlagSet) error {
	file := f.configFile
	if !fs.Changed("config") {
		file = os.Getenv(EnvName(f.component, "config"))
	}
	return LoadConfig(fs, f.component, file)
}

// Setup does what a server binary does before it builds its
// configuration: LoadConfig, then the logger (to stderr) with the Go
// collector tuned, and a metrics registry with the Go and process
// collectors.
func (f *ServerFlags) Setup(fs *pflag.FlagSet, stderr io.Writer) (*slog.Logger, *prometheus.Registry, error) {
	if err := f.LoadConfig(fs); err != nil {
		return nil, nil, err
	}
	lg, err := NewLogger(stderr, f.logLevel, f.logFormat)
	if err != nil {
		return nil, nil, err
	}
	TuneGC(lg)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return lg, reg, nil
}

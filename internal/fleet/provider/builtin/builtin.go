// Package builtin picks one of Hangar's providers by the name a runner
// class gives (provider: local) and makes it from the class's
// provider_config.
package builtin

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/hangar-ci/hangar/internal/fleet/provider"
	"github.com/hangar-ci/hangar/internal/fleet/provider/docker"
	"github.com/hangar-ci/hangar/internal/fleet/provider/local"
)

// Names are the providers New knows, sorted.
var Names = []string{"docker", "local"}

// Options are what the server gives every provider beside a class's
// settings.
type Options struct {
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// New returns the provider name configured by settings (a class's
// provider_config). It checks the settings, and contacts nothing: an
// error here is a configuration error, to report when the configuration
// is read. A provider that holds connections implements io.Closer.
func New(name string, settings map[string]any, opts Options) (provider.Provider, error) {
	switch name {
	case "local":
		cfg, err := local.ParseSettings(settings)
		if err != nil {
			return nil, err
		}
		cfg.Logger, cfg.Now = opts.Logger, opts.Now
		return local.New(cfg)
	case "docker":
		cfg, err := docker.ParseSettings(settings)
		if err != nil {
			return nil, err
		}
		cfg.Logger, cfg.Now = opts.Logger, opts.Now
		return docker.New(cfg)
	}
	return nil, fmt.Errorf("provider %q: unknown (want docker or local)", name)
}

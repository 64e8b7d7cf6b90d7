package provider

import (
	"fmt"
	"strings"
)

// ownFlags are the `hangar agent` flags a provider sets itself.
var ownFlags = []string{"server", "token", "name", "labels", "concurrency", "work-dir", "shutdown-timeout", "max-jobs"}

// CheckAgentArgs reports an error when args, the extra `hangar agent`
// arguments of a class (its provider_config.agent_args), set a flag the
// provider sets itself.
func CheckAgentArgs(args []string) error {
	for i, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		for _, own := range ownFlags {
			if name == own {
				return fmt.Errorf("provider_config.agent_args[%d]: --%s is set by the provider", i, own)
			}
		}
	}
	return nil
}

package docker

import (
	"context"
	"errors"
	"fmt"

	"github.com/moby/moby/client"
)

// RemoveLeftovers removes every container and network the executor made
// that carries all of labels: what an agent that crashed left behind, found
// by the labels it gave its jobs. It returns how many objects it removed.
func (e *Executor) RemoveLeftovers(ctx context.Context, labels map[string]string) (int, error) {
	filters := client.Filters{}.Add("label", ManagedLabel+"=true")
	for name, value := range labels {
		filters.Add("label", name+"="+value)
	}
	containers, err := e.client.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filters})
	if err != nil {
		return 0, fmt.Errorf("list leftover containers: %w", err)
	}
	removed := 0
	var errs []error
	for _, c := range containers.Items {
		if err := e.remove(ctx, c.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	networks, err := e.client.NetworkList(ctx, client.NetworkListOptions{Filters: filters})
	if err != nil {
		return removed, errors.Join(append(errs, fmt.Errorf("list leftover networks: %w", err))...)
	}
	for _, n := range networks.Items {
		if _, err := e.client.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}

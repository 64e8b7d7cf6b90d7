package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

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
		if err := e.removeNetwork(ctx, n.ID, &filters); err != nil {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}

// removeNetwork removes a network, which the engine refuses while a
// container is still attached to it: one whose removal the engine has not
// finished, or one created after the containers were listed. So on that
// refusal it removes the containers filters match again (when given) and
// tries again, a few times, waiting a little longer each time.
func (e *Executor) removeNetwork(ctx context.Context, id string, filters *client.Filters) error {
	var err error
	for attempt := range 6 {
		if _, err = e.client.NetworkRemove(ctx, id, client.NetworkRemoveOptions{}); err == nil || isNotFound(err) {
			return nil
		}
		if !strings.Contains(err.Error(), "active endpoints") {
			return err
		}
		if filters != nil {
			if list, lerr := e.client.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: *filters}); lerr == nil {
				for _, c := range list.Items {
					e.remove(ctx, c.ID)
				}
			}
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
	return err
}

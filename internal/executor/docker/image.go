package docker

import (
	"context"
	"fmt"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// PullPolicy says when the executor pulls an image, as GitLab Runner's
// pull_policy does.
type PullPolicy string

// The pull policies.
const (
	// PullNever uses only images already on the host.
	PullNever PullPolicy = "never"
	// PullIfNotPresent pulls an image the host does not have.
	PullIfNotPresent PullPolicy = "if-not-present"
	// PullAlways pulls every time, so a moved tag is followed.
	PullAlways PullPolicy = "always"
)

func (p PullPolicy) valid() bool {
	return p == PullNever || p == PullIfNotPresent || p == PullAlways
}

// policies returns the pull policies to try for an image whose job asks
// for asked (empty: the executor's own), in order; a policy the executor
// does not allow is an error.
func (e *Executor) policies(asked []string) ([]PullPolicy, error) {
	if len(asked) == 0 {
		return []PullPolicy{e.cfg.PullPolicy}, nil
	}
	var out []PullPolicy
	for _, a := range asked {
		p := PullPolicy(a)
		if !slices.Contains(e.cfg.AllowedPullPolicies, p) {
			return nil, fmt.Errorf("pull_policy %q is not allowed by this agent (allowed: %s)", a, joinPolicies(e.cfg.AllowedPullPolicies))
		}
		out = append(out, p)
	}
	return out, nil
}

func joinPolicies(ps []PullPolicy) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, ", ")
}

// ensureImage makes sure image is on the host, trying the pull policies in
// turn as GitLab Runner does: the first that succeeds wins.
func (e *Executor) ensureImage(ctx context.Context, image string, asked []string) error {
	policies, err := e.policies(asked)
	if err != nil {
		return fmt.Errorf("image %s: %w", image, err)
	}
	var errs []string
	for _, p := range policies {
		err := e.applyPolicy(ctx, image, p)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("image %s: %w", image, ctx.Err())
		}
		errs = append(errs, err.Error())
	}
	return fmt.Errorf("image %s: %s", image, strings.Join(errs, "; "))
}

// applyPolicy makes image present on the host under policy p.
func (e *Executor) applyPolicy(ctx context.Context, image string, p PullPolicy) error {
	if p != PullAlways {
		_, err := e.client.ImageInspect(ctx, image)
		switch {
		case err == nil:
			return nil
		case !isNotFound(err):
			return fmt.Errorf("inspect image: %w", err)
		case p == PullNever:
			return fmt.Errorf("the image is not on this host and the pull policy is %q", PullNever)
		}
	}
	if err := e.pull(ctx, image); err != nil {
		return fmt.Errorf("pull (policy %s): %w", p, err)
	}
	return nil
}

// pull pulls image and waits until the engine is done with it.
func (e *Executor) pull(ctx context.Context, image string) error {
	resp, err := e.client.ImagePull(ctx, image, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()
	return resp.Wait(ctx)
}

// isNotFound reports whether err says an object of the engine does not
// exist.
func isNotFound(err error) bool {
	return cerrdefs.IsNotFound(err)
}

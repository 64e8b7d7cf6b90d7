package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/hangar-ci/hangar/internal/executor"
	"github.com/hangar-ci/hangar/internal/store"
)

// startServices creates the attempt's network and starts job's services on
// it, then waits until their exposed TCP ports accept connections. What it
// made is recorded in s as it goes, for Cleanup.
func (s *session) startServices(ctx context.Context, job *executor.Job) error {
	name := "hangar-" + randomHex(6)
	// Objects are created even if ctx ends meanwhile, so that their IDs are
	// known and Cleanup removes them.
	res, err := s.ex.client.NetworkCreate(context.WithoutCancel(ctx), name, client.NetworkCreateOptions{Driver: "bridge", Labels: s.labels})
	if err != nil {
		return fmt.Errorf("create network: %w", err)
	}
	s.mu.Lock()
	s.network = res.ID
	s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	log := logWriter(job.Log)
	started := make([]startedService, 0, len(job.Services))
	for i, sv := range job.Services {
		id, err := s.startService(ctx, i, sv)
		if err != nil {
			return fmt.Errorf("service %s: %w", sv.Name, err)
		}
		fmt.Fprintf(log, "Started service %s as %s\n", sv.Name, strings.Join(serviceAliases(sv), ", "))
		started = append(started, startedService{spec: sv, id: id})
	}
	deadline := time.Now().Add(s.ex.cfg.ServiceWait)
	for _, sv := range started {
		if err := s.waitForService(ctx, sv.id, deadline); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(log, "\x1b[33;1mWARNING: service %s probably did not start properly: %v\x1b[0;m\n", sv.spec.Name, err)
		}
	}
	return nil
}

type startedService struct {
	spec store.ServiceSpec
	id   string
}

// startService pulls, creates and starts service number i.
func (s *session) startService(ctx context.Context, i int, sv store.ServiceSpec) (string, error) {
	if err := s.ex.ensureImage(ctx, sv.Name, sv.PullPolicy); err != nil {
		return "", err
	}
	env := slices.Clone(s.env)
	for _, v := range sv.Variables {
		env = append(env, v.Name+"="+v.Value)
	}
	cfg := &container.Config{
		Image: sv.Name, Env: env, User: sv.User,
		Labels: withLabel(s.labels, "hangar.service", fmt.Sprint(i)),
	}
	cfg.Entrypoint = entrypoint(sv.Entrypoint)
	if sv.Command != nil {
		cfg.Cmd = sv.Command
	}
	s.mu.Lock()
	netID := s.network
	s.mu.Unlock()
	host := &container.HostConfig{
		NetworkMode: container.NetworkMode(netID),
		Privileged:  s.ex.cfg.Privileged,
		Resources:   s.ex.resources(),
	}
	netCfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		netID: {Aliases: serviceAliases(sv)},
	}}
	res, err := s.ex.client.ContainerCreate(context.WithoutCancel(ctx), client.ContainerCreateOptions{Config: cfg, HostConfig: host, NetworkingConfig: netCfg})
	if err != nil {
		return "", fmt.Errorf("create container: %w", err)
	}
	s.mu.Lock()
	s.services = append(s.services, res.ID)
	s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if _, err := s.ex.client.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return "", fmt.Errorf("start container: %w", err)
	}
	return res.ID, nil
}

// waitForService waits until every TCP port the service's container
// exposes accepts a connection on the attempt's network, until deadline.
func (s *session) waitForService(ctx context.Context, id string, deadline time.Time) error {
	info, err := s.ex.client.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	c := info.Container
	if c.State != nil && !c.State.Running {
		return fmt.Errorf("its container is %s (exit code %d)", c.State.Status, c.State.ExitCode)
	}
	var ip netip.Addr
	if c.NetworkSettings != nil {
		for _, ep := range c.NetworkSettings.Networks {
			if ep != nil && ep.IPAddress.IsValid() {
				ip = ep.IPAddress
			}
		}
	}
	if !ip.IsValid() || c.Config == nil {
		return nil
	}
	var d net.Dialer
	for port := range c.Config.ExposedPorts {
		if port.Proto() != network.TCP {
			continue
		}
		addr := netip.AddrPortFrom(ip, port.Num()).String()
		for {
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			conn, err := d.DialContext(dctx, "tcp", addr)
			cancel()
			if err == nil {
				conn.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("port %s did not accept connections: %w", port, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// serviceAliases returns the host names a job reaches service sv by: its
// alias, and the two GitLab derives from the image name without tag or
// digest, "/" replaced by "__" and by "-" (tutum/wordpress:1 is both
// tutum__wordpress and tutum-wordpress).
func serviceAliases(sv store.ServiceSpec) []string {
	var out []string
	add := func(a string) {
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	for _, a := range strings.Fields(strings.ReplaceAll(sv.Alias, ",", " ")) {
		add(a)
	}
	name := sv.Name
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name = name[:i]
	}
	add(strings.ReplaceAll(name, "/", "__"))
	add(strings.ReplaceAll(name, "/", "-"))
	return out
}

// logWriter returns w, or a writer that drops everything when w is nil.
func logWriter(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// randomHex returns n random bytes in hexadecimal.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

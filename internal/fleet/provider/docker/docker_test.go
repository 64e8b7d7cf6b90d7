package docker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/hangar-ci/hangar/internal/executor/docker/dockertest"
	"github.com/hangar-ci/hangar/internal/fleet/provider"
	"github.com/hangar-ci/hangar/internal/fleet/provider/docker"
	"github.com/hangar-ci/hangar/internal/fleet/provider/providertest"
)

// agentImage is the instance image TestMain builds from the fresh hangar
// binary, when an engine answers; imageErr says why it could not.
var (
	agentImage = fmt.Sprintf("hangar-test/agent:provider-%d", os.Getpid())
	imageErr   error
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hangar-docker-provider-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	c, err := client.New(client.FromEnv)
	if err != nil {
		imageErr = err
		return m.Run() // the Docker tests skip, or fail as dockertest says
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err = c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	cancel()
	if err != nil {
		imageErr = err
		return m.Run()
	}
	bin, err := providertest.BuildHangar(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Minute)
	imageErr = docker.BuildAgentImage(ctx, c, bin, "", agentImage)
	cancel()
	if imageErr == nil {
		defer c.ImageRemove(context.Background(), agentImage, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	}
	return m.Run()
}

// engine returns a client of the engine once the agent image is built; it
// skips t where there is no engine (fails it under HANGAR_REQUIRE_DOCKER=1).
func engine(t *testing.T) *client.Client {
	t.Helper()
	c := dockertest.Client(t)
	if imageErr != nil {
		t.Fatalf("agent image: %v", imageErr)
	}
	return c
}

func testConfig(c *client.Client) docker.Config {
	return docker.Config{Image: agentImage, Grace: 5 * time.Second, Client: c}
}

// recorder is a provider that remembers the containers it created, so
// that the test removes them whatever happens.
type recorder struct {
	provider.Provider
	mu  *sync.Mutex
	ids *[]string
}

func (r recorder) Create(ctx context.Context, spec provider.CreateSpec, n int) ([]provider.Instance, error) {
	ins, err := r.Provider.Create(ctx, spec, n)
	r.mu.Lock()
	for _, in := range ins {
		*r.ids = append(*r.ids, in.ID)
	}
	r.mu.Unlock()
	return ins, err
}

// open returns a provider for cfg whose containers are removed when t
// ends; they is more providers over the same containers.
func open(t *testing.T, c *client.Client, cfg docker.Config) (p provider.Provider, more func() provider.Provider) {
	t.Helper()
	var (
		mu  sync.Mutex
		ids []string
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			c.ContainerRemove(context.Background(), id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		}
	})
	more = func() provider.Provider {
		p, err := docker.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return recorder{Provider: p, mu: &mu, ids: &ids}
	}
	return more(), more
}

func TestConformance(t *testing.T) {
	c := engine(t)
	providertest.Run(t, func(t *testing.T) providertest.Harness {
		_, more := open(t, c, testConfig(c))
		return providertest.Harness{
			Open: more,
			Exists: func(id string) bool {
				_, err := c.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
				if err != nil && !cerrdefs.IsNotFound(err) {
					t.Fatalf("inspect %s: %v", id, err)
				}
				return err == nil
			},
			Kill: func(id string) {
				if _, err := c.ContainerKill(context.Background(), id, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
					t.Fatalf("kill %s: %v", id, err)
				}
			},
		}
	})
}

func TestParseSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		settings map[string]any
		err      string
		want     docker.Config
	}{
		{settings: nil, err: "provider_config.image: required"},
		{settings: map[string]any{"image": "i", "work_dir_tmpfs": "big"}, err: "provider_config.work_dir_tmpfs: big is not a size"},
		{settings: map[string]any{"image": "i", "work_dir_tmpfs": -1}, err: "provider_config.work_dir_tmpfs: -1 is not a size"},
		{settings: map[string]any{"image": "i", "grace": "a while"}, err: `provider_config.grace: "a while" is not a duration`},
		{settings: map[string]any{"image": "i", "cpus": "two"}, err: "provider_config.cpus: want a number, not string two"},
		{settings: map[string]any{"image": "i", "memory": "-1g"}, err: "provider_config.memory: -1g is not a size"},
		{settings: map[string]any{"image": "i", "agent_args": []any{"--server=x"}}, err: "provider_config.agent_args[0]: --server is set by the provider"},
		{settings: map[string]any{"image": "i", "state_dir": "/s"}, err: "provider_config.state_dir: unknown setting"},
		{settings: map[string]any{"image": "i", "grace": "10 seconds", "work_dir_tmpfs": "64m", "network": "ci", "host": "unix:///d.sock",
			"agent_args": []any{"--log-level", "debug"}, "cpus": 2, "memory": "2g"},
			want: docker.Config{Image: "i", Grace: 10 * time.Second, WorkDirTmpfs: 64 << 20, Network: "ci", Host: "unix:///d.sock",
				AgentArgs: []string{"--log-level", "debug"}, CPUs: 2, Memory: 2 << 30}},
	} {
		cfg, err := docker.ParseSettings(tc.settings)
		if err == nil {
			var p *docker.Provider
			if p, err = docker.New(cfg); err == nil {
				p.Close()
			}
		}
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%v: %v", tc.settings, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: error %v, want one containing %q", tc.settings, err, tc.err)
		case tc.err == "" && (cfg.Image != tc.want.Image || cfg.Grace != tc.want.Grace || cfg.WorkDirTmpfs != tc.want.WorkDirTmpfs ||
			cfg.Network != tc.want.Network || cfg.Host != tc.want.Host || !slices.Equal(cfg.AgentArgs, tc.want.AgentArgs) ||
			cfg.CPUs != tc.want.CPUs || cfg.Memory != tc.want.Memory):
			t.Errorf("%v: parsed as %+v, want %+v", tc.settings, cfg, tc.want)
		}
	}
}

// The container is made as the package documentation says, and with
// work_dir_tmpfs the agent's work dir holds no more than its size.
func TestContainer(t *testing.T) {
	t.Parallel()
	c := engine(t)
	cfg := testConfig(c)
	cfg.WorkDirTmpfs = 4 << 20
	cfg.CPUs, cfg.Memory = 1.5, 512<<20
	p, _ := open(t, c, cfg)
	srv := providertest.StartServer(t)
	owner := providertest.NewOwner(t)
	spec := provider.CreateSpec{Owner: owner, Class: "tiny", Server: srv.URL, RegistrationToken: providertest.AgentToken,
		Labels: []string{"linux"}}
	ins, err := p.Create(context.Background(), spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	in := ins[0]
	t.Cleanup(func() { p.Delete(context.Background(), in.ID) })
	srv.WaitAgent(t, in.Name, "active", 20*time.Second)

	res, err := c.ContainerInspect(context.Background(), in.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ct := res.Container
	if name := strings.TrimPrefix(ct.Name, "/"); name != in.Name {
		t.Errorf("container name %q, want the instance's, %q", name, in.Name)
	}
	labels := ct.Config.Labels
	if labels[provider.OwnerLabel] != owner || labels[provider.ClassLabel] != "tiny" || labels[provider.InstanceLabel] != in.Name {
		t.Errorf("labels %v", labels)
	}
	if hc := ct.HostConfig; hc.RestartPolicy.Name != container.RestartPolicyDisabled || hc.NetworkMode != "host" ||
		hc.Init == nil || !*hc.Init {
		t.Errorf("restart policy %q, network %q, init %v; want no, host, true", hc.RestartPolicy.Name, hc.NetworkMode, hc.Init)
	}
	if r := ct.HostConfig.Resources; r.NanoCPUs != 1.5e9 || r.Memory != 512<<20 {
		t.Errorf("resources: %d nano CPUs, %d bytes of memory; want 1.5e9 and 512 MiB", r.NanoCPUs, r.Memory)
	}
	if ct.Config.StopTimeout == nil || *ct.Config.StopTimeout != 5 {
		t.Errorf("stop timeout %v, want the grace, 5", ct.Config.StopTimeout)
	}
	if strings.Contains(strings.Join(ct.Args, " "), providertest.AgentToken) {
		t.Errorf("the token is on the agent's command line: %q", ct.Args)
	}

	if code, out := exec(t, c, in.ID, "head -c 1048576 /dev/zero > "+docker.WorkDir+"/small"); code != 0 {
		t.Errorf("writing 1 MiB into the 4 MiB work dir: exit %d: %s", code, out)
	}
	code, out := exec(t, c, in.ID, "head -c 8388608 /dev/zero > "+docker.WorkDir+"/big")
	if code == 0 || !strings.Contains(out, "No space left on device") {
		t.Errorf("writing 8 MiB into the 4 MiB work dir: exit %d: %s; want no space left", code, out)
	}
}

// exec runs script with bash in the container id and returns its exit
// code and output.
func exec(t *testing.T, c *client.Client, id, script string) (int, string) {
	t.Helper()
	ctx := context.Background()
	ex, err := c.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: []string{"bash", "-c", script}, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	att, err := c.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, err = stdcopy.StdCopy(&out, &out, att.Reader)
	att.Close()
	if err != nil {
		t.Fatal(err)
	}
	for {
		res, err := c.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Running {
			return res.ExitCode, out.String()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Create fails, and leaves nothing, when the image is not on the host.
func TestCreateWithoutImage(t *testing.T) {
	t.Parallel()
	c := engine(t)
	cfg := testConfig(c)
	cfg.Image = "hangar-test/no-such-image:none"
	p, _ := open(t, c, cfg)
	owner := providertest.NewOwner(t)
	spec := provider.CreateSpec{Owner: owner, Class: "c", Server: "http://127.0.0.1:1", RegistrationToken: "t"}
	ins, err := p.Create(context.Background(), spec, 2)
	if err == nil || len(ins) != 0 || !strings.Contains(err.Error(), "hangar-test/no-such-image:none is not on the engine's host") {
		t.Fatalf("Create = %v, %v; want no instance and an error naming the image", ins, err)
	}
	if ids := dockertest.Containers(t, c, provider.OwnerLabel+"="+owner); len(ids) != 0 {
		t.Errorf("containers left: %v", ids)
	}
}

// Delete refuses a container that is not an instance.
func TestDeleteRefusesOthers(t *testing.T) {
	t.Parallel()
	c := engine(t)
	res, err := c.ContainerCreate(context.Background(), client.ContainerCreateOptions{
		Config: &container.Config{Image: dockertest.Image, Cmd: []string{"true"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.ContainerRemove(context.Background(), res.ID, client.ContainerRemoveOptions{Force: true})
	})
	p, _ := open(t, c, testConfig(c))
	if err := p.Delete(context.Background(), res.ID); err == nil || !strings.Contains(err.Error(), "not a fleet instance") {
		t.Errorf("Delete of a container that is no instance: %v", err)
	}
	if _, err := c.ContainerInspect(context.Background(), res.ID, client.ContainerInspectOptions{}); err != nil {
		t.Errorf("the container is gone: %v", err)
	}
}

// dryReader gives n bytes, then fails.
type dryReader struct{ n int }

func (r *dryReader) Read(b []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("no more randomness")
	}
	k := min(len(b), r.n)
	for i := range k {
		b[i] = byte(r.n - i)
	}
	r.n -= k
	return k, nil
}

// Create returns the instances it made along with the error that stopped
// it, and leaves no container of the one that failed.
func TestPartialCreate(t *testing.T) {
	t.Parallel()
	c := engine(t)
	cfg := testConfig(c)
	cfg.Rand = &dryReader{n: 6}
	p, _ := open(t, c, cfg)
	srv := providertest.StartServer(t)
	spec := provider.CreateSpec{Owner: providertest.NewOwner(t), Class: "c", Server: srv.URL, RegistrationToken: providertest.AgentToken}
	ins, err := p.Create(context.Background(), spec, 3)
	if err == nil || !strings.Contains(err.Error(), "no more randomness") || len(ins) != 1 {
		t.Fatalf("Create(3) = %v, %v; want one instance and the error", ins, err)
	}
	t.Cleanup(func() { p.Delete(context.Background(), ins[0].ID) })
	srv.WaitAgent(t, ins[0].Name, "active", 20*time.Second)
	if ids := dockertest.Containers(t, c, provider.OwnerLabel+"="+spec.Owner); len(ids) != 1 || ids[0] != ins[0].ID {
		t.Errorf("containers %v, want only %s", ids, ins[0].ID)
	}
}

package docker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/executor"
	"github.com/hangar-ci/hangar/internal/executor/docker"
	"github.com/hangar-ci/hangar/internal/executor/docker/dockertest"
	"github.com/hangar-ci/hangar/internal/executor/executortest"
	"github.com/hangar-ci/hangar/internal/store"
)

// newExecutor returns a Docker executor whose default image is the test
// image, with short waits.
func newExecutor(t *testing.T, cfg docker.Config) *docker.Executor {
	t.Helper()
	dockertest.Client(t)
	if cfg.Image == "" {
		cfg.Image = dockertest.Image
	}
	if cfg.PullPolicy == "" {
		cfg.PullPolicy = docker.PullNever
	}
	cfg.KillGrace = time.Second
	ex, err := docker.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { ex.Close() })
	return ex
}

// The suite runs in the busybox image, whose only shell is sh, and in the
// Debian one, where steps run with bash.
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, image := range []string{dockertest.Image, dockertest.DebianImage} {
		t.Run(image, func(t *testing.T) {
			t.Parallel()
			executortest.Run(t, func(t *testing.T) executor.Executor {
				return newExecutor(t, docker.Config{Image: image})
			})
		})
	}
}

func TestShellChoice(t *testing.T) {
	t.Parallel()
	tests := []struct{ image, want string }{
		{dockertest.Image, "shell=sh"},
		{dockertest.DebianImage, "shell=bash 5"},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			t.Parallel()
			s := prepare(t, newExecutor(t, docker.Config{Image: tt.image}), &executor.Job{Dir: t.TempDir()})
			res, out := run(t, s, `echo "shell=${BASH_VERSION:+bash }${BASH_VERSION:-sh}"`)
			if res.ExitCode != 0 || !strings.Contains(out, tt.want) {
				t.Errorf("result %+v, output lacks %q:\n%s", res, tt.want, out)
			}
		})
	}
}

// The agent's limits and privileges reach the containers.
func TestLimitsAndPrivileges(t *testing.T) {
	t.Parallel()
	const capAll = "000001ffffffffff" // every capability of this kernel
	tests := []struct {
		name  string
		cfg   docker.Config
		lines []string
		want  []string
	}{
		{
			name: "memory and cpu", cfg: docker.Config{Memory: 64 << 20, CPUs: 0.5},
			lines: []string{
				"cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
				"cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us | tr '\\n' ' '",
			},
			want: []string{"\n67108864\n", "50000 100000"},
		},
		{name: "unprivileged", cfg: docker.Config{}, lines: []string{"grep CapEff /proc/self/status"}, want: []string{"CapEff:\t00000000a80425fb"}},
		{name: "privileged", cfg: docker.Config{Privileged: true}, lines: []string{"grep CapEff /proc/self/status"}, want: []string{"CapEff:\t" + capAll}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := prepare(t, newExecutor(t, tt.cfg), &executor.Job{Dir: t.TempDir()})
			var b strings.Builder
			res, err := s.Run(context.Background(), executor.Step{Name: "script", Lines: tt.lines, Timeout: time.Minute}, &b)
			if err != nil && tt.cfg.Privileged && strings.Contains(err.Error(), "unable to apply caps") {
				// The engine asked runc for every capability and could not
				// grant them: it runs without them itself (in a container).
				t.Skipf("skipping: this engine cannot start privileged containers: %v", err)
			}
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			out := b.String()
			for _, w := range tt.want {
				if res.ExitCode != 0 || !strings.Contains(out, w) {
					t.Errorf("result %+v, output lacks %q:\n%s", res, w, out)
				}
			}
		})
	}
}

// prepare prepares a session for job, cleaned up with the test.
func prepare(t *testing.T, ex executor.Executor, job *executor.Job) executor.Session {
	t.Helper()
	s, err := ex.Prepare(context.Background(), job)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	t.Cleanup(func() { s.Cleanup(context.Background()) })
	return s
}

// run runs lines as one step of s and returns the result and the output.
func run(t *testing.T, s executor.Session, lines ...string) (executor.Result, string) {
	t.Helper()
	var out strings.Builder
	res, err := s.Run(context.Background(), executor.Step{Name: "script", Lines: lines, Timeout: time.Minute}, &out)
	if err != nil {
		t.Fatalf("Run: %v; output:\n%s", err, out.String())
	}
	return res, out.String()
}

func TestProjectDirAndVariables(t *testing.T) {
	t.Parallel()
	ex := newExecutor(t, docker.Config{ProjectDir: "/builds/group/app"})
	s := prepare(t, ex, &executor.Job{Dir: t.TempDir(), Variables: []store.Variable{
		{Name: "CI_PROJECT_DIR", Value: "/host/path"}, {Name: "CI_BUILDS_DIR", Value: "/host"},
	}})
	res, out := run(t, s, `echo "pwd=$(pwd) dir=$CI_PROJECT_DIR builds=$CI_BUILDS_DIR"`)
	if want := "pwd=/builds/group/app dir=/builds/group/app builds=/builds/group"; res.ExitCode != 0 || !strings.Contains(out, want) {
		t.Errorf("result %+v, output lacks %q:\n%s", res, want, out)
	}
}

func TestEntrypointAndUser(t *testing.T) {
	t.Parallel()
	ex := newExecutor(t, docker.Config{})
	tests := []struct {
		name  string
		image store.ImageSpec
		want  string
	}{
		// GitLab users give images whose entrypoint is not a shell this
		// one; the script must still run, and fail as it says.
		{"shell -c entrypoint", store.ImageSpec{Name: dockertest.Image, Entrypoint: []string{"/bin/sh", "-c"}}, "uid=0"},
		{"bash -c entrypoint", store.ImageSpec{Name: dockertest.DebianImage, Entrypoint: []string{"/bin/bash", "-c"}}, "uid=0"},
		{"cleared entrypoint", store.ImageSpec{Name: dockertest.Image, Entrypoint: []string{""}}, "uid=0"},
		// An entrypoint that runs the command it is given, after saying so.
		{"entrypoint wrapper", store.ImageSpec{Name: dockertest.Image, Entrypoint: []string{"sh", "-c", `echo from-entrypoint; exec "$@"`, "entry"}}, "from-entrypoint"},
		{"user", store.ImageSpec{Name: dockertest.Image, User: "1234:1234"}, "uid=1234"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := prepare(t, ex, &executor.Job{Dir: t.TempDir(), Image: &tt.image})
			res, out := run(t, s, "id", "cat; echo stdin-done", "exit 3")
			if res.ExitCode != 3 || !strings.Contains(out, tt.want) || !strings.Contains(out, "\nstdin-done\n") {
				t.Errorf("result %+v, want exit code 3 and %q in the output:\n%s", res, tt.want, out)
			}
		})
	}
}

func TestMissingImage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		policy docker.PullPolicy
		want   string
	}{
		{"never", docker.PullNever, `not on this host and the pull policy is "never"`},
		// No registry answers here: the pull fails, and says so.
		{"if-not-present", docker.PullIfNotPresent, "pull (policy if-not-present)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ex := newExecutor(t, docker.Config{PullPolicy: tt.policy})
			img := &store.ImageSpec{Name: "hangar-test/does-not-exist:" + fmt.Sprint(time.Now().UnixNano())}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s, err := ex.Prepare(ctx, &executor.Job{Dir: t.TempDir(), Image: img})
			if err == nil {
				s.Cleanup(ctx)
				t.Fatal("Prepare succeeded for an image that does not exist")
			}
			if !strings.Contains(err.Error(), img.Name) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Prepare error %q does not name the image and say %q", err, tt.want)
			}
		})
	}
}

func TestPullPolicyNotAllowed(t *testing.T) {
	t.Parallel()
	ex := newExecutor(t, docker.Config{PullPolicy: docker.PullNever})
	_, err := ex.Prepare(context.Background(), &executor.Job{Dir: t.TempDir(), Image: &store.ImageSpec{Name: dockertest.Image, PullPolicy: []string{"always"}}})
	if err == nil || !strings.Contains(err.Error(), `pull_policy "always" is not allowed`) {
		t.Errorf("Prepare = %v, want a refused pull policy", err)
	}
}

func TestServices(t *testing.T) {
	t.Parallel()
	c := dockertest.Client(t)
	ex := newExecutor(t, docker.Config{})
	labels := map[string]string{"hangar.test": t.Name() + fmt.Sprint(time.Now().UnixNano())}
	var log strings.Builder
	s := prepare(t, ex, &executor.Job{
		Dir: t.TempDir(), Labels: labels, Log: &log,
		Services: []store.ServiceSpec{{
			ImageSpec: store.ImageSpec{Name: dockertest.Image}, Alias: "echo",
			Command: []string{"/bin/echo-server", fmt.Sprintf("-listen=:%d", dockertest.EchoPort)},
		}},
	})
	res, out := run(t, s,
		fmt.Sprintf("echo via-alias | nc echo %d", dockertest.EchoPort),
		fmt.Sprintf("echo via-name | nc hangar-test__busybox %d", dockertest.EchoPort),
		fmt.Sprintf("echo via-dashed | nc hangar-test-busybox %d", dockertest.EchoPort))
	for _, want := range []string{"\nvia-alias\n", "\nvia-name\n", "\nvia-dashed\n"} {
		if res.ExitCode != 0 || !strings.Contains(out, want) {
			t.Errorf("result %+v, output lacks %q:\n%s", res, want, out)
		}
	}
	if !strings.Contains(log.String(), "Started service "+dockertest.Image) {
		t.Errorf("the log does not say the service started:\n%s", log.String())
	}
	label := "hangar.test=" + labels["hangar.test"]
	if n := len(dockertest.Networks(t, c, label)); n != 1 {
		t.Errorf("%d networks carry the job's labels during the job, want 1", n)
	}
	if err := s.Cleanup(context.Background()); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if ids := dockertest.Containers(t, c, label); len(ids) != 0 {
		t.Errorf("containers left after Cleanup: %v", ids)
	}
	if ids := dockertest.Networks(t, c, label); len(ids) != 0 {
		t.Errorf("networks left after Cleanup: %v", ids)
	}
}

func TestRemoveLeftovers(t *testing.T) {
	t.Parallel()
	c := dockertest.Client(t)
	ex := newExecutor(t, docker.Config{ServiceWait: 300 * time.Millisecond})
	labels := map[string]string{"hangar.agent": "leftovers-" + fmt.Sprint(time.Now().UnixNano())}
	// A session whose agent "crashes": never cleaned up, a step still
	// running. Its service never listens on the port its image exposes.
	var log strings.Builder
	s, err := ex.Prepare(context.Background(), &executor.Job{
		Dir: t.TempDir(), Labels: labels, Log: &log,
		Services: []store.ServiceSpec{{ImageSpec: store.ImageSpec{Name: dockertest.Image}, Command: []string{"sleep", "1000"}}},
	})
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if !strings.Contains(log.String(), "probably did not start properly: port 7777/tcp did not accept connections") {
		t.Errorf("the log does not warn about the silent service:\n%s", log.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx, executor.Step{Name: "script", Lines: []string{"sleep 1000"}}, &strings.Builder{})
	label := "hangar.agent=" + labels["hangar.agent"]
	deadline := time.Now().Add(30 * time.Second)
	for len(dockertest.Containers(t, c, label)) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	other := newExecutor(t, docker.Config{}) // as a restarted agent would
	n, err := other.RemoveLeftovers(context.Background(), labels)
	if err != nil {
		t.Fatalf("RemoveLeftovers: %v", err)
	}
	if n != 3 {
		t.Errorf("RemoveLeftovers removed %d objects, want 3 (two containers, one network)", n)
	}
	if ids := dockertest.Containers(t, c, label); len(ids) != 0 {
		t.Errorf("containers left: %v", ids)
	}
	if ids := dockertest.Networks(t, c, label); len(ids) != 0 {
		t.Errorf("networks left: %v", ids)
	}
}

// A step that times out or is cancelled leaves no container behind once
// Run has returned.
func TestStoppedStepLeavesNoContainer(t *testing.T) {
	t.Parallel()
	c := dockertest.Client(t)
	ex := newExecutor(t, docker.Config{})
	for _, cancel := range []bool{false, true} {
		labels := map[string]string{"hangar.test": fmt.Sprintf("%s-%v-%d", t.Name(), cancel, time.Now().UnixNano())}
		s := prepare(t, ex, &executor.Job{Dir: t.TempDir(), Labels: labels})
		ctx, stop := context.WithCancel(context.Background())
		step := executor.Step{Name: "script", Lines: []string{"sleep 1000"}}
		if cancel {
			time.AfterFunc(500*time.Millisecond, stop)
		} else {
			step.Timeout = 500 * time.Millisecond
		}
		start := time.Now()
		res, err := s.Run(ctx, step, &strings.Builder{})
		stop()
		if cancel != (err != nil) || !cancel && !res.TimedOut {
			t.Errorf("cancel %v: Run = %+v, %v", cancel, res, err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("cancel %v: Run took %v", cancel, took)
		}
		if ids := dockertest.Containers(t, c, "hangar.test="+labels["hangar.test"]); len(ids) != 0 {
			t.Errorf("cancel %v: containers left after Run returned: %v", cancel, ids)
		}
	}
}

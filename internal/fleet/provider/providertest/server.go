// Package providertest holds what the providers' tests share: the
// conformance suite every provider.Provider runs (Run), a real control
// plane for their agents to register with (StartServer), and the hangar
// binary they run (BuildHangar).
package providertest

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/scheduler"
	"github.com/hangar-ci/hangar/internal/server"
	"github.com/hangar-ci/hangar/internal/source"
	"github.com/hangar-ci/hangar/internal/store/sqlite"
)

// The control plane's tokens.
const (
	AgentToken = "agent-secret"
	APIToken   = "api-secret"
)

// Server is a real control plane (SQLite, scheduler, HTTP API) on a
// loopback socket.
type Server struct {
	URL    string
	client *api.Client
}

// StartServer starts a control plane that runs until t ends.
func StartServer(t testing.TB) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "hangar.db"))
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := source.NewBlobs(filepath.Join(dir, "sources"))
	if err != nil {
		t.Fatal(err)
	}
	sched := scheduler.New(st, scheduler.Config{LeaseTimeout: 10 * time.Second})
	srv := server.New(server.Config{Store: st, Scheduler: sched, Blobs: blobs, AgentToken: AgentToken, APIToken: APIToken})
	hs := httptest.NewServer(srv)
	var wg sync.WaitGroup
	wg.Go(func() { sched.Run(ctx) })
	wg.Go(func() { srv.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		hs.CloseClientConnections()
		hs.Close()
		st.Close()
	})
	return &Server{URL: hs.URL, client: api.NewClient(hs.URL)}
}

// Agents lists every agent the server knows, gone ones included.
func (s *Server) Agents(ctx context.Context) ([]api.Agent, error) {
	var out []api.Agent
	if _, err := s.client.Do(ctx, "GET", "/agents?all=true", APIToken, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Agent returns the latest agent named name, and whether there is one.
func (s *Server) Agent(t testing.TB, name string) (api.Agent, bool) {
	t.Helper()
	list, err := s.Agents(context.Background())
	if err != nil {
		t.Fatalf("list agents: %v", err)
	}
	var found api.Agent
	ok := false
	for _, a := range list {
		if a.Name == name && (!ok || a.ID > found.ID) {
			found, ok = a, true
		}
	}
	return found, ok
}

// WaitAgent waits up to limit until an agent named name has status
// ("active", "gone") and returns it.
func (s *Server) WaitAgent(t testing.TB, name, status string, limit time.Duration) api.Agent {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		a, ok := s.Agent(t, name)
		if ok && a.Status == status {
			return a
		}
		if time.Now().After(deadline) {
			if ok {
				t.Fatalf("agent %s is %s after %v, want %s", name, a.Status, limit, status)
			}
			names := []string{}
			list, _ := s.Agents(context.Background())
			for _, a := range list {
				names = append(names, a.Name+" ("+a.Status+")")
			}
			slices.Sort(names)
			t.Fatalf("no agent %s after %v (agents: %v)", name, limit, names)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BuildHangar builds cmd/hangar, statically (so that it runs in any
// Linux image), into dir and returns the binary's path. It is for
// TestMain, which has no testing.T.
func BuildHangar(dir string) (string, error) {
	bin := filepath.Join(dir, "hangar")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/hangar-ci/hangar/cmd/hangar")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/hangar: %v\n%s", err, out)
	}
	return bin, nil
}

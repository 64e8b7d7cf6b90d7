// Package dockertest gives tests a Docker engine and Hangar's test image,
// or skips them, saying why, where there is none. scripts/docker-up starts an
// engine and builds the image; scripts/test sets HANGAR_REQUIRE_DOCKER=1
// after it, and then a missing engine fails the tests instead.
package dockertest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// Image is the test image scripts/test-images builds: a static busybox and
// a TCP echo server, /bin/echo-server, listening on EchoPort.
const Image = "hangar-test/busybox:latest"

// DebianImage is the heavier test image: a minimal Debian root from
// debootstrap, with bash.
const DebianImage = "hangar-test/debian:bookworm"

// EchoPort is the port the test image's echo server listens on.
const EchoPort = 7777

// RequireEnv names the variable that, set to 1, turns a skip for lack of
// Docker into a failure.
const RequireEnv = "HANGAR_REQUIRE_DOCKER"

// Client returns a client of the local engine once it has checked that the
// engine answers and has Image and DebianImage; otherwise it skips t (or fails it when
// RequireEnv is set).
func Client(t testing.TB) *client.Client {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("Docker is required here ("+RequireEnv+"=1): "+format, args...)
		}
		t.Skipf("skipping: needs Docker (run scripts/docker-up): "+format, args...)
	}
	c, err := client.New(client.FromEnv)
	if err != nil {
		unavailable("client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		unavailable("no engine answers: %v", err)
	}
	for _, img := range []string{Image, DebianImage} {
		if _, err := c.ImageInspect(ctx, img); err != nil {
			unavailable("image %s: %v", img, err)
		}
	}
	return c
}

// Containers returns the IDs of the containers, running or not, that carry
// label (name=value).
func Containers(t testing.TB, c *client.Client, label string) []string {
	t.Helper()
	res, err := c.ContainerList(context.Background(), client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", label)})
	if err != nil {
		t.Fatalf("list containers with label %s: %v", label, err)
	}
	ids := make([]string, 0, len(res.Items))
	for _, it := range res.Items {
		ids = append(ids, it.ID)
	}
	return ids
}

// Networks returns the IDs of the networks that carry label (name=value).
func Networks(t testing.TB, c *client.Client, label string) []string {
	t.Helper()
	res, err := c.NetworkList(context.Background(), client.NetworkListOptions{Filters: client.Filters{}.Add("label", label)})
	if err != nil {
		t.Fatalf("list networks with label %s: %v", label, err)
	}
	ids := make([]string, 0, len(res.Items))
	for _, it := range res.Items {
		ids = append(ids, it.ID)
	}
	return ids
}

// RemoveOnCleanup removes, when t ends, the containers and networks that
// carry label (name=value): what the processes a test kills leave behind.
// Register it before them, so that it runs after they are stopped.
func RemoveOnCleanup(t testing.TB, c *client.Client, label string) {
	t.Helper()
	t.Cleanup(func() {
		ctx := context.Background()
		for _, id := range Containers(t, c, label) {
			c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		}
		for _, id := range Networks(t, c, label) {
			c.NetworkRemove(ctx, id, client.NetworkRemoveOptions{})
		}
	})
}

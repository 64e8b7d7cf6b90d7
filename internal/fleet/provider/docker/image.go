package docker

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// DefaultAgentBase is the base image BuildAgentImage uses when given none:
// the Debian test image (scripts/test-images), which has bash for the
// shell executor.
const DefaultAgentBase = "hangar-test/debian:bookworm"

// AgentDockerfile returns the Dockerfile of an agent image: base, with
// the hangar binary (named hangar in the build context) as
// /usr/local/bin/hangar. scripts/agent-image writes the same.
func AgentDockerfile(base string) string {
	return "FROM " + base + "\n" +
		"COPY hangar /usr/local/bin/hangar\n" +
		"ENTRYPOINT [\"/usr/local/bin/hangar\"]\n" +
		"CMD [\"agent\", \"--help\"]\n"
}

// BuildAgentImage builds the image tag, an instance image for the Docker
// provider, from base (default DefaultAgentBase) and the hangar binary at
// binaryPath (a static one, or one whose C library base has), through the
// Engine API. base must be on the engine's host: it is not pulled.
func BuildAgentImage(ctx context.Context, c *client.Client, binaryPath, base, tag string) error {
	if base == "" {
		base = DefaultAgentBase
	}
	if tag == "" {
		return errors.New("build agent image: the tag is empty")
	}
	if _, err := c.ImageInspect(ctx, base); err != nil {
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("build agent image %s: base image %s is not on the engine's host", tag, base)
		}
		return fmt.Errorf("build agent image %s: inspect base image %s: %w", tag, base, err)
	}
	bin, err := os.Open(binaryPath)
	if err != nil {
		return fmt.Errorf("build agent image %s: %w", tag, err)
	}
	defer bin.Close()
	fi, err := bin.Stat()
	if err != nil {
		return fmt.Errorf("build agent image %s: %w", tag, err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeContext(pw, AgentDockerfile(base), bin, fi.Size())) }()
	defer pr.Close()
	res, err := c.ImageBuild(ctx, pr, client.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true})
	if err != nil {
		return fmt.Errorf("build agent image %s: %w", tag, err)
	}
	defer res.Body.Close()
	if err := buildResult(res.Body); err != nil {
		return fmt.Errorf("build agent image %s: %w", tag, err)
	}
	return nil
}

// writeContext writes the build context: the Dockerfile and the binary.
func writeContext(w io.Writer, dockerfile string, bin io.Reader, size int64) error {
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile))}); err != nil {
		return err
	}
	if _, err := io.WriteString(tw, dockerfile); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "hangar", Mode: 0o755, Size: size}); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, bin, size); err != nil {
		return err
	}
	return tw.Close()
}

// buildResult reads the engine's build output, a stream of JSON
// messages, and returns the error it reports, with the last lines of the
// build's output.
func buildResult(r io.Reader) error {
	var tail []string
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read the build's output: %w", err)
		}
		if line := strings.TrimSpace(m.Stream); line != "" {
			tail = append(tail, line)
			if len(tail) > 10 {
				tail = tail[1:]
			}
		}
		msg := m.ErrorDetail.Message
		if msg == "" {
			msg = m.Error
		}
		if msg != "" {
			return fmt.Errorf("%s (output: %s)", msg, strings.Join(tail, " | "))
		}
	}
}

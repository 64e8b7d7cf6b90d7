package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/source"
)

// tarEntry is one entry of a test archive.
type tarEntry struct {
	name, body, link string
	mode             int64
}

func tarGz(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		switch {
		case e.link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.link, 0
		case strings.HasSuffix(e.name, "/"):
			h.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// serveControlPlane runs a control plane on loopback until the test ends
// and returns its URL and tokens.
func serveControlPlane(t *testing.T) (string, tokens) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cp, err := openControlPlane(ctx, controlPlaneConfig{dataDir: t.TempDir(), logger: slog.New(slog.DiscardHandler), ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { cp.Serve(ctx, ln) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		cp.Close()
	})
	return "http://" + ln.Addr().String(), cp.tokens
}

func TestArtifactsCommand(t *testing.T) {
	url, tok := serveControlPlane(t)
	ctx := context.Background()
	client := api.NewClient(url)

	// A pipeline whose jobs an agent driven by hand runs, uploading the
	// archives the test wants.
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, ".gitlab-ci.yml"), []byte(`
build: {script: [x], artifacts: {name: bin, paths: [bin/]}}
evil: {script: [x], artifacts: {paths: [out/]}}
lint: {script: [x]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var snap bytes.Buffer
	if err := source.Snapshot(ctx, src, &snap); err != nil {
		t.Fatal(err)
	}
	var up api.SourceResponse
	if _, err := client.Do(ctx, "POST", "/sources", tok.API, snap.Bytes(), &up); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Do(ctx, "POST", "/projects/p/pipelines", tok.API, api.CreatePipelineRequest{Archive: up.Archive}, nil); err != nil {
		t.Fatal(err)
	}
	var reg api.RegisterResponse
	if _, err := client.Do(ctx, "POST", "/agents", tok.Agent, api.RegisterRequest{Name: "hand"}, &reg); err != nil {
		t.Fatal(err)
	}
	archives := map[string][]byte{
		"build": tarGz(t, tarEntry{name: "bin/", mode: 0o755}, tarEntry{name: "bin/app", body: "#!/bin/sh\n", mode: 0o755},
			tarEntry{name: "bin/latest", link: "app", mode: 0o777}, tarEntry{name: "bin/notes.txt", body: "notes\n", mode: 0o644}),
		"evil": tarGz(t, tarEntry{name: "out/ok", body: "fine", mode: 0o644}, tarEntry{name: "../escape", body: "gotcha", mode: 0o644}),
	}
	jobs := map[string]int64{}
	for range 3 {
		var as api.Assignment
		if _, err := client.Do(ctx, "POST", "/agent/claim", reg.Token, api.ClaimRequest{WaitSeconds: 5}, &as); err != nil {
			t.Fatal(err)
		}
		jobs[as.JobName] = as.JobID
		if b, ok := archives[as.JobName]; ok {
			if _, err := client.UploadArtifacts(ctx, as.AttemptID, as.Token, bytes.NewReader(b), int64(len(b))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := client.Do(ctx, "POST", fmt.Sprintf("/attempts/%d/complete", as.AttemptID), as.Token, api.CompleteRequest{Status: "success"}, nil); err != nil {
			t.Fatal(err)
		}
	}

	work := t.TempDir()
	full := filepath.Join(work, "full")
	if err := os.MkdirAll(filepath.Join(full, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	id := func(name string) string { return fmt.Sprint(jobs[name]) }
	flags := []string{"artifacts", "--server", url, "--token", tok.API}
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		out, err []string
		check    func(t *testing.T)
	}{
		{
			name: "list",
			args: []string{id("build")},
			code: exitOK,
			out: []string{
				fmt.Sprintf(`job %s (build): artifacts "bin", %d bytes, sha256:`, id("build"), len(archives["build"])),
				"drwxr-xr-x          0  bin/\n",
				"-rwxr-xr-x         10  bin/app\n",
				"Lrwxrwxrwx          0  bin/latest -> app\n",
				"-rw-r--r--          6  bin/notes.txt\n",
			},
		},
		{
			name: "save the archive",
			args: []string{"--archive", filepath.Join(work, "build.tar.gz"), id("build")},
			code: exitOK,
			out:  []string{"saved the artifacts of job " + id("build")},
			check: func(t *testing.T) {
				got, err := os.ReadFile(filepath.Join(work, "build.tar.gz"))
				if err != nil || !bytes.Equal(got, archives["build"]) {
					t.Errorf("saved archive: %d bytes, %v; want the %d uploaded", len(got), err, len(archives["build"]))
				}
			},
		},
		{
			name: "extract",
			args: []string{"--download", filepath.Join(work, "new", "dir"), id("build")},
			code: exitOK,
			out:  []string{"extracted the artifacts of job " + id("build")},
			check: func(t *testing.T) {
				dir := filepath.Join(work, "new", "dir")
				app, err := os.Stat(filepath.Join(dir, "bin", "app"))
				if err != nil || app.Mode()&0o100 == 0 {
					t.Errorf("bin/app: %v, %v; want an executable file", app, err)
				}
				notes, err := os.ReadFile(filepath.Join(dir, "bin", "latest", "..", "notes.txt"))
				if err != nil || string(notes) != "notes\n" {
					t.Errorf("bin/notes.txt: %q, %v", notes, err)
				}
				if target, err := os.Readlink(filepath.Join(dir, "bin", "latest")); err != nil || target != "app" {
					t.Errorf("bin/latest links to %q, %v; want app", target, err)
				}
			},
		},
		{
			name: "extract into a full directory",
			args: []string{"--download", full, id("build")},
			code: exitTrouble,
			err:  []string{"not empty"},
		},
		{
			name: "unsafe archive",
			args: []string{"--download", filepath.Join(work, "evil"), id("evil")},
			code: exitTrouble,
			err:  []string{"unsafe path", "../escape"},
			check: func(t *testing.T) {
				for _, p := range []string{filepath.Join(work, "evil"), filepath.Join(work, "escape")} {
					if _, err := os.Lstat(p); !os.IsNotExist(err) {
						t.Errorf("%s after refusing the archive: %v, want it absent", p, err)
					}
				}
			},
		},
		{
			name: "no artifacts",
			args: []string{id("lint")},
			code: exitFailed,
			err:  []string{fmt.Sprintf("job %s has no artifacts", id("lint"))},
		},
		{
			name: "no artifacts to download",
			args: []string{"--archive", filepath.Join(work, "lint.tar.gz"), id("lint")},
			code: exitFailed,
			err:  []string{"has no artifacts"},
			check: func(t *testing.T) {
				if _, err := os.Stat(filepath.Join(work, "lint.tar.gz")); !os.IsNotExist(err) {
					t.Errorf("lint.tar.gz after a failed download: %v, want it absent", err)
				}
			},
		},
		{
			name: "a failed download keeps the file there",
			args: []string{"--archive", filepath.Join(work, "build.tar.gz"), id("lint")},
			code: exitFailed,
			err:  []string{"has no artifacts"},
			check: func(t *testing.T) {
				got, err := os.ReadFile(filepath.Join(work, "build.tar.gz"))
				if err != nil || !bytes.Equal(got, archives["build"]) {
					t.Errorf("build.tar.gz after a failed download over it: %d bytes, %v; want the %d saved before", len(got), err, len(archives["build"]))
				}
				if tmp, _ := filepath.Glob(filepath.Join(work, ".hangar-artifacts-*")); len(tmp) > 0 {
					t.Errorf("temporary files left: %v", tmp)
				}
			},
		},
		{name: "no job", args: nil, code: exitUsage, err: []string{"want one job ID"}},
		{name: "help", args: []string{"--help"}, code: exitOK, err: []string{"Usage: hangar artifacts", "-download DIR", "-archive FILE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(ctx, append(append([]string{}, flags...), tc.args...), &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.code, stderr.String())
			}
			for _, want := range tc.out {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			for _, want := range tc.err {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
}

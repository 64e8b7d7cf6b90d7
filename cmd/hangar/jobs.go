package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
)

// serverFlags are the flags of the commands that talk to a running server.
type serverFlags struct {
	server, token string
}

func (s *serverFlags) register(fs *flag.FlagSet) {
	def := os.Getenv("HANGAR_SERVER")
	if def == "" {
		def = "http://127.0.0.1:8420"
	}
	fs.StringVar(&s.server, "server", def, "the server's URL (default $HANGAR_SERVER or http://127.0.0.1:8420)")
	fs.StringVar(&s.token, "token", os.Getenv("HANGAR_TOKEN"), "the server's API token (default $HANGAR_TOKEN)")
}

func (s *serverFlags) cli(stdout, stderr io.Writer) *cli {
	return &cli{client: api.NewClient(s.server), token: s.token, stdout: stdout, stderr: stderr}
}

// oneID parses the one ID argument of a command.
func oneID(fs *flag.FlagSet, what string, stderr io.Writer) (int64, bool) {
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "hangar %s: want one %s ID\n", fs.Name(), what)
		return 0, false
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil || id <= 0 {
		fmt.Fprintf(stderr, "hangar %s: %q is not a %s ID\n", fs.Name(), fs.Arg(0), what)
		return 0, false
	}
	return id, true
}

// idCommand parses the command line of a command that talks to a server
// about one pipeline or job: the server flags, any flags extra adds, and one
// ID argument. code is -1 when the command should go on.
func idCommand(name, usage, help, what string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (sf serverFlags, id int64, code int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	sf.register(fs)
	if extra != nil {
		extra(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: hangar %s\n\n%s\n\nFlags:\n", usage, help)
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return sf, 0, code
	}
	id, ok := oneID(fs, what, stderr)
	if !ok {
		return sf, 0, exitUsage
	}
	return sf, id, -1
}

func runLogs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var follow bool
	sf, id, code := idCommand("logs", "logs [-f] [flags] JOB", "Print a job's log: every attempt, in order.", "job", args, stderr,
		func(fs *flag.FlagSet) {
			fs.BoolVar(&follow, "f", false, "follow: keep printing as the job writes, until it finishes")
		})
	if code >= 0 {
		return code
	}
	c := sf.cli(stdout, stderr)
	if !follow {
		if err := c.call(ctx, http.MethodGet, fmt.Sprintf("/jobs/%d/log", id), nil, stdout); err != nil {
			fmt.Fprintf(stderr, "hangar logs: %v\n", err)
			return exitTrouble
		}
		return exitOK
	}
	status, err := c.stream(ctx, id, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "hangar logs: %v\n", err)
		return exitTrouble
	}
	if status != "success" {
		return exitFailed
	}
	return exitOK
}

// stream follows a job's log over Server-Sent Events, reconnecting from
// the last event it saw, and returns the job's final status.
func (c *cli) stream(ctx context.Context, jobID int64, w io.Writer) (string, error) {
	last := ""
	b := api.Backoff{Min: 100 * time.Millisecond, Max: 3 * time.Second}
	for {
		status, err := c.streamOnce(ctx, jobID, w, &last)
		if err == nil {
			return status, nil
		}
		if !api.Retryable(err) {
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(b.Next()):
		}
	}
}

var errStreamCut = errors.New("log stream cut")

func (c *cli) streamOnce(ctx context.Context, jobID int64, w io.Writer, last *string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s%s/jobs/%d/log/stream", c.client.BaseURL, api.Prefix, jobID), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if *last != "" {
		req.Header.Set("Last-Event-ID", *last)
	}
	resp, err := c.client.HTTP.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return "", &api.StatusError{Method: "GET", Path: req.URL.Path, Code: resp.StatusCode, Body: api.Error{Error: strings.TrimSpace(string(body))}}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var event, id, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			switch event {
			case "log":
				var ev api.LogEvent
				if err := json.Unmarshal([]byte(data), &ev); err != nil {
					return "", fmt.Errorf("log event: %w", err)
				}
				io.WriteString(w, ev.Text)
				*last = id
			case "end":
				var end struct{ Status string }
				json.Unmarshal([]byte(data), &end)
				return end.Status, nil
			}
			event, id, data = "", "", ""
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		case strings.HasPrefix(line, "id: "):
			id = line[len("id: "):]
		case strings.HasPrefix(line, "data: "):
			data += line[len("data: "):]
		}
	}
	return "", errStreamCut
}

func runCancel(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sf, id, code := idCommand("cancel", "cancel [flags] PIPELINE",
		"Cancel a pipeline: waiting jobs are canceled at once, running ones at their\nagent's next heartbeat.", "pipeline", args, stderr, nil)
	if code >= 0 {
		return code
	}
	var p api.Pipeline
	if _, err := sf.cli(stdout, stderr).client.Do(ctx, http.MethodPost, fmt.Sprintf("/pipelines/%d/cancel", id), sf.token, nil, &p); err != nil {
		fmt.Fprintf(stderr, "hangar cancel: %v\n", err)
		return exitTrouble
	}
	fmt.Fprintf(stdout, "pipeline %d: %s\n", p.ID, p.Status)
	return exitOK
}

// jobCommand returns a command that does one action to a job (retry, play)
// through POST /jobs/{id}/ACTION.
func jobCommand(action, help string) func(context.Context, []string, io.Writer, io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		sf, id, code := idCommand(action, action+" [flags] JOB", help, "job", args, stderr, nil)
		if code >= 0 {
			return code
		}
		var j api.Job
		_, err := sf.cli(stdout, stderr).client.Do(ctx, http.MethodPost, fmt.Sprintf("/jobs/%d/%s", id, action), sf.token, nil, &j)
		if api.StatusCode(err) == http.StatusConflict {
			fmt.Fprintf(stderr, "hangar %s: %v\n", action, err)
			return exitFailed
		}
		if err != nil {
			fmt.Fprintf(stderr, "hangar %s: %v\n", action, err)
			return exitTrouble
		}
		fmt.Fprintf(stdout, "job %d (%s): %s\n", j.ID, j.Name, j.Status)
		return exitOK
	}
}

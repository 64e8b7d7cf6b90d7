// Command hangar is Hangar's one binary: the all-in-one runner (hangar run),
// the control plane (hangar server), the agent (hangar agent), the pipeline
// linter and the commands that talk to a server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// exit codes shared by every command.
const (
	exitOK      = 0
	exitFailed  = 1 // the command ran and the answer is "no" (invalid pipeline, failed job)
	exitUsage   = 2 // the command line is wrong
	exitTrouble = 3 // something outside the input went wrong (a file cannot be read)
)

// command is one subcommand of hangar.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "run a directory's pipeline now, on an embedded server and agents (or --server)", runRun},
		{"lint", "check a pipeline file and show the jobs a pipeline run would hold", runLint},
		{"server", "run the control plane: API, durable queue, scheduler", runServer},
		{"agent", "run jobs for a server", runAgent},
		{"logs", "print (or follow) a job's log", runLogs},
		{"cancel", "cancel a pipeline", runCancel},
		{"retry", "run a finished job again", jobCommand("retry", "Run a finished job again; the jobs skipped because of it are reconsidered.")},
		{"play", "start a manual job", jobCommand("play", "Start a manual job (when: manual).")},
		{"artifacts", "list, download or save a job's artifacts", runArtifacts},
		{"runners", "list the fleet's runner classes and their pools", fleetCommand("runners",
			"List the runner classes of the server's fleet: pending jobs, the warm pool the\npolicy wants, instances by state, and whether the class is degraded.", true)},
		{"instances", "list the fleet's instances", fleetCommand("instances",
			"List the instances of the server's fleet: state, age, attempts running and\nrun, disk use, and why one drains.", false)},
		{"sim", "simulate runner classes on a job trace and compare their waits and costs", runSim},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to a subcommand; it is main without the process around it,
// so tests can call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" && len(args) == 1 {
		usage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	name, rest := args[0], args[1:]
	if name == "help" {
		name, rest = rest[0], []string{"--help"}
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, rest, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "hangar: unknown command %q\n\n", name)
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Hangar runs GitLab CI pipelines on a self-managing fleet.\n\nUsage:\n  hangar <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'hangar <command> --help' for a command's flags.\n")
}

// parseFlags parses args with fs and maps the outcome to an exit code: -1
// to go on, exitOK after --help, exitUsage on a bad flag.
func parseFlags(fs *flag.FlagSet, args []string) int {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case err != nil:
		return exitUsage
	}
	return -1
}

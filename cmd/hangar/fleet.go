package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/fleet/autoscaler"
)

// fleetCommand returns `hangar runners` (classes: true) or `hangar
// instances`: what GET /fleet shows, as a table or as JSON.
func fleetCommand(name, help string, classes bool) func(context.Context, []string, io.Writer, io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		var (
			sf     serverFlags
			asJSON bool
		)
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(stderr)
		sf.register(fs)
		fs.BoolVar(&asJSON, "json", false, "print GET /api/v1/fleet's answer as it is")
		fs.Usage = func() {
			fmt.Fprintf(stderr, "Usage: hangar %s [flags]\n\n%s\n\nFlags:\n", name, help)
			fs.PrintDefaults()
		}
		if code := parseFlags(fs, args); code >= 0 {
			return code
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "hangar %s: unexpected argument %q\n", name, fs.Arg(0))
			return exitUsage
		}
		var out struct {
			Classes []autoscaler.ClassStatus `json:"classes"`
		}
		_, err := sf.cli(stdout, stderr).client.Do(ctx, http.MethodGet, "/fleet", sf.token, nil, &out)
		if err != nil {
			if api.StatusCode(err) == http.StatusNotFound {
				fmt.Fprintf(stderr, "hangar %s: the server has no fleet (start it with --config)\n", name)
				return exitFailed
			}
			fmt.Fprintf(stderr, "hangar %s: %v\n", name, err)
			return exitTrouble
		}
		if asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			enc.Encode(out)
			return exitOK
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		now := time.Now()
		if classes {
			fmt.Fprintln(tw, "CLASS\tPROVIDER\tPOLICY\tLABELS\tPENDING\tWARM\tBOOTING\tREADY\tIDLE\tDRAINING\tSTATE")
			for _, c := range out.Classes {
				n := map[string]int{}
				for _, in := range c.Instances {
					n[in.State]++
					if in.State == "ready" && in.Running == 0 {
						n["idle"]++
					}
				}
				state := "ok"
				if c.Degraded {
					state = "degraded: instances fail to boot"
					if c.BreakerUntil != nil {
						state += fmt.Sprintf(", retry in %s", c.BreakerUntil.Sub(now).Round(time.Second))
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", c.Name, c.Provider, c.Policy, strings.Join(c.Labels, ","),
					c.Pending, c.Warm, n["booting"], n["ready"], n["idle"], n["draining"], state)
			}
		} else {
			fmt.Fprintln(tw, "CLASS\tINSTANCE\tSTATE\tAGE\tRUNNING\tJOBS RUN\tDISK\tNOTE")
			for _, c := range out.Classes {
				for _, in := range c.Instances {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%.0f%%\t%s\n", c.Name, in.Name, in.State,
						now.Sub(in.CreatedAt).Round(time.Second), in.Running, in.JobsRun, in.DiskUsedPercent, in.Reason)
				}
			}
		}
		tw.Flush()
		return exitOK
	}
}

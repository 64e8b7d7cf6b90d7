// Package provider is how the fleet creates and deletes instances. An
// instance is something that runs one `hangar agent` registered with the
// server under a name and labels the fleet chose: a process (local), a
// container (docker), and later a pod or a virtual machine.
//
// A Provider is small on purpose, so that Kubernetes and cloud providers
// fit it: Create starts agents, Delete stops them gracefully and removes
// what they leave, List finds the instances an installation owns (after a
// restart too: the provider, not the server's memory, is the truth about
// which instances exist), and Interruptions tells of instances that go away
// on their own.
//
// Every instance carries an ownership label naming the installation
// (CreateSpec.Owner) and its class, so that two installations sharing a
// provider account never touch each other's instances.
//
// The implementations live in packages named after what they wrap
// (provider/local, provider/docker); provider/builtin picks one by the name
// a class's configuration gives; provider/providertest is the conformance
// suite every implementation runs.
package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Provider creates, lists and deletes instances. Implementations are safe
// for concurrent use. One that holds connections (to an engine, to a cloud
// API) also implements io.Closer.
type Provider interface {
	// Create starts n instances of spec and returns them once each has
	// been asked to start (their agents register with the server on their
	// own, later). It may succeed in part: it then returns the instances
	// it created and an error, and leaves nothing behind of the one that
	// failed. Instances outlive ctx and the provider value.
	Create(ctx context.Context, spec CreateSpec, n int) ([]Instance, error)
	// Delete removes the instance id: it stops the agent gracefully
	// (SIGTERM or the platform's equivalent, so that the agent stops
	// claiming, lets its attempts finish or hands them back, and
	// deregisters), forces it after the provider's grace, and removes what
	// the instance leaves (work dir, container, disk). Deleting an
	// instance that is gone is not an error. An instance being deleted
	// never appears in Interruptions.
	Delete(ctx context.Context, id string) error
	// List returns the instances that carry the ownership label of owner
	// and class ("" means every class of owner), in whatever state,
	// stopped ones included, ordered by CreatedAt.
	List(ctx context.Context, owner, class string) ([]Instance, error)
	// Interruptions returns a stream of notices about owner's instances
	// that are about to go away (a spot reclaim) or went away without
	// Delete (a crash, an OOM kill). Each call starts a stream of its own,
	// which begins when Interruptions returns and ends, its channel
	// closed, when ctx does; the caller must keep reading it. A provider
	// that never has such notices returns nil. Instances that went away
	// while nobody listened show up in List as StateStopped.
	Interruptions(ctx context.Context, owner string) <-chan Interruption
}

// State is where an instance is, as the provider sees it.
type State string

// The instance states.
const (
	// StatePending: created, not running yet (a container created and not
	// started, a VM booting, a process being started).
	StatePending State = "pending"
	// StateRunning: the agent's process runs; whether it has registered
	// is the server's business.
	StateRunning State = "running"
	// StateStopping: on its way out.
	StateStopping State = "stopping"
	// StateStopped: nothing runs any more; only Delete is left to do.
	StateStopped State = "stopped"
)

// Instance is one instance as its provider sees it.
type Instance struct {
	// ID is the provider's ID for it, stable for its whole life and
	// across restarts of the server; Delete takes it.
	ID string
	// Owner and Class are the values of its ownership label.
	Owner, Class string
	// Name is its agent's name: the server matches agents to instances by
	// it. It is unique (see InstanceName).
	Name      string
	CreatedAt time.Time
	State     State
}

// CreateSpec says what to create. The provider's own settings (the class's
// provider_config) are given to its constructor, so that a bad one fails
// when the configuration is read rather than at the first Create.
type CreateSpec struct {
	// Owner names the installation and Class the runner class; both go
	// into every instance's ownership label. Required.
	Owner, Class string
	// Server is the URL the agent registers with and RegistrationToken the
	// server's agent token. Required.
	Server, RegistrationToken string
	// Labels are the agent's labels (--labels).
	Labels []string
	// Capacity is how many attempts the agent runs at once
	// (--concurrency); 0 means 1.
	Capacity int
	// MaxJobs is how many attempts the agent takes before it claims no
	// more (--max-jobs): the class's max_use_count; 0 means no limit.
	MaxJobs int
}

// Validate reports the first missing or bad field of s.
func (s *CreateSpec) Validate() error {
	switch {
	case s.Owner == "":
		return errors.New("create spec: Owner is empty")
	case s.Class == "":
		return errors.New("create spec: Class is empty")
	case s.Server == "":
		return errors.New("create spec: Server is empty")
	case s.RegistrationToken == "":
		return errors.New("create spec: RegistrationToken is empty")
	case s.Capacity < 0:
		return fmt.Errorf("create spec: Capacity is %d, want 0 or more", s.Capacity)
	case s.MaxJobs < 0:
		return fmt.Errorf("create spec: MaxJobs is %d, want 0 or more", s.MaxJobs)
	}
	for _, l := range s.Labels {
		if l == "" || strings.ContainsAny(l, ", \t\n") {
			return fmt.Errorf("create spec: label %q is empty or holds a comma or space", l)
		}
	}
	return nil
}

// AgentArgs returns the arguments of `hangar agent` (after "agent") for an
// instance of s named name with its work dir at workDir. The registration
// token is not among them: it goes in the agent's environment, as
// TokenEnv, so that it does not show in process lists. grace is the
// provider's grace: the agent gets three quarters of it to finish its
// attempts before it hands them back, so that they are handed back before
// it is killed.
func (s *CreateSpec) AgentArgs(name, workDir string, grace time.Duration) []string {
	args := []string{
		"--server=" + s.Server,
		"--name=" + name,
		"--concurrency=" + fmt.Sprint(max(s.Capacity, 1)),
		"--work-dir=" + workDir,
	}
	if len(s.Labels) > 0 {
		args = append(args, "--labels="+strings.Join(s.Labels, ","))
	}
	if grace > 0 {
		args = append(args, "--shutdown-timeout="+(grace*3/4).String())
	}
	if s.MaxJobs > 0 {
		args = append(args, "--max-jobs="+fmt.Sprint(s.MaxJobs))
	}
	return args
}

// TokenEnv is the environment variable `hangar agent` reads its
// registration token from.
const TokenEnv = "HANGAR_AGENT_TOKEN"

// The labels (or tags) that mark an instance: OwnerLabel and ClassLabel
// are its ownership label, InstanceLabel holds its name.
const (
	OwnerLabel    = "hangar.fleet.owner"
	ClassLabel    = "hangar.fleet.class"
	InstanceLabel = "hangar.fleet.instance"
)

// InterruptionKind says whether an instance is going away or has gone.
type InterruptionKind string

// The interruption kinds.
const (
	// InterruptionWarning: the instance will be taken away at Deadline
	// (a spot reclaim notice); its agent should be drained now.
	InterruptionWarning InterruptionKind = "warning"
	// InterruptionGone: the instance stopped without Delete (it crashed,
	// was killed, ran out of memory); its attempts are lost.
	InterruptionGone InterruptionKind = "gone"
)

// Interruption is a notice about an instance that goes away on its own.
type Interruption struct {
	// ID, Owner, Class and Name are the instance's, as in Instance.
	ID, Owner, Class, Name string
	Kind                   InterruptionKind
	// Reason says what happened, for people: "exited with code 137",
	// "killed: out of memory".
	Reason string
	// At is when the provider noticed.
	At time.Time
	// Deadline is, for a warning, when the instance goes away; zero when
	// unknown.
	Deadline time.Time
}

// InstanceName returns the name of an instance of owner's class whose
// unique part is suffix: "owner-class-suffix", with every character that
// is not a letter, a digit, '.', '_' or '-' replaced by '-', so that it
// can name a container, a pod or a host as well as an agent.
func InstanceName(owner, class, suffix string) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
				return r
			}
			return '-'
		}, s)
	}
	return clean(owner) + "-" + clean(class) + "-" + clean(suffix)
}

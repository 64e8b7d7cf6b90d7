package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hangar-ci/hangar/internal/store/internal/codec"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/hangar-ci/hangar/internal/store"
	"github.com/hangar-ci/hangar/internal/store/internal/stepjson"
)

// jobs implements store.Jobs: jobs and their attempts.
type jobs tx

const jobCols = `id, pipeline_id, name, stage, stage_index, status, run_when, allow_failure,
	allow_failure_exit_codes, tags, needs, spec, reason, failure_reason, attempts, lost_attempts,
	exit_code, run_after, created_at, pending_at, started_at, finished_at`

func scanJob(r scanner) (*store.Job, error) {
	var (
		j                                             store.Job
		allowFailure                                  bool
		exitCodes, tags, needs, spec                  string
		runAfter, created, pending, started, finished int64
	)
	err := r.Scan(&j.ID, &j.PipelineID, &j.Name, &j.Stage, &j.StageIndex, &j.Status, &j.When, &allowFailure,
		&exitCodes, &tags, &needs, &spec, &j.Reason, &j.FailureReason, &j.Attempts, &j.LostAttempts,
		&j.ExitCode, &runAfter, &created, &pending, &started, &finished)
	if err != nil {
		return nil, dbErr(err)
	}
	j.AllowFailure = allowFailure
	for _, c := range []struct {
		name string
		text string
		v    any
	}{
		{"allow_failure_exit_codes", exitCodes, &j.AllowFailureExitCodes},
		{"tags", tags, &j.Tags},
		{"needs", needs, &j.Needs},
		{"spec", spec, &j.Spec},
	} {
		if err := codec.FromJSON(c.text, c.v); err != nil {
			return nil, fmt.Errorf("decode job %d %s: %w", j.ID, c.name, err)
		}
	}
	j.RunAfter = codec.FromMicros(runAfter)
	j.CreatedAt = codec.FromMicros(created)
	j.PendingAt = codec.FromMicros(pending)
	j.StartedAt = codec.FromMicros(started)
	j.FinishedAt = codec.FromMicros(finished)
	return &j, nil
}

func scanJobs(rows pgx.Rows, err error) ([]*store.Job, error) {
	return collect(rows, err, scanJob)
}

// Create inserts j; when it is pending, the jobs_pending trigger adds its
// pending_jobs row in the same statement.
func (x jobs) Create(ctx context.Context, j *store.Job) error {
	var cols [4]string
	for i, v := range []any{j.AllowFailureExitCodes, j.Tags, j.Needs, j.Spec} {
		s, err := codec.ToJSON(v)
		if err != nil {
			return fmt.Errorf("create job %q: encode: %w", j.Name, err)
		}
		cols[i] = s
	}
	err := tx(x).queryRow(ctx, `INSERT INTO jobs (pipeline_id, name, stage, stage_index, status, run_when,
			allow_failure, allow_failure_exit_codes, tags, needs, spec, reason, failure_reason, attempts,
			lost_attempts, exit_code, run_after, created_at, pending_at, started_at, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) RETURNING id`,
		j.PipelineID, j.Name, j.Stage, j.StageIndex, j.Status, j.When,
		j.AllowFailure, cols[0], cols[1], cols[2], cols[3], j.Reason, j.FailureReason, j.Attempts,
		j.LostAttempts, j.ExitCode, codec.Micros(j.RunAfter), codec.Micros(j.CreatedAt), codec.Micros(j.PendingAt),
		codec.Micros(j.StartedAt), codec.Micros(j.FinishedAt)).Scan(&j.ID)
	if err != nil {
		return fmt.Errorf("create job %q in pipeline %d: %w", j.Name, j.PipelineID, dbErr(err))
	}
	return nil
}

func (x jobs) Get(ctx context.Context, id int64) (*store.Job, error) {
	j, err := scanJob(tx(x).queryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = $1`, id))
	if err != nil {
		return nil, fmt.Errorf("get job %d: %w", id, err)
	}
	return j, nil
}

func (x jobs) ListByPipeline(ctx context.Context, pipelineID int64) ([]*store.Job, error) {
	js, err := scanJobs(tx(x).query(ctx,
		`SELECT `+jobCols+` FROM jobs WHERE pipeline_id = $1 ORDER BY id`, pipelineID))
	if err != nil {
		return nil, fmt.Errorf("list jobs of pipeline %d: %w", pipelineID, err)
	}
	return js, nil
}

// jobStateCols are jobCols without the spec, which is most of a job's
// bytes and none of its state.
var jobStateCols = strings.Replace(jobCols, "spec,", "'null' AS spec,", 1)

// jobColsJ and jobStateColsJ are jobCols and jobStateCols of jobs aliased
// j, for the queries that join pending_jobs (whose pending_at, run_after
// and tags would otherwise be ambiguous).
var (
	jobColsJ      = qualify("j", jobCols)
	jobStateColsJ = strings.Replace(jobColsJ, "j.spec,", "'null' AS spec,", 1)
)

// qualify prefixes each column of the comma-separated cols with alias.
func qualify(alias, cols string) string {
	fields := strings.Split(cols, ",")
	for i, f := range fields {
		fields[i] = alias + "." + strings.TrimSpace(f)
	}
	return strings.Join(fields, ", ")
}

// pendingJobsJ joins the pending jobs, oldest first, to their jobs j: the
// narrow table is walked on its (pending_at, job_id) index.
const pendingJobsJ = ` FROM pending_jobs p JOIN jobs j ON j.id = p.job_id `

func (x jobs) ListStates(ctx context.Context, pipelineID int64) ([]*store.Job, error) {
	js, err := scanJobs(tx(x).query(ctx,
		`SELECT `+jobStateCols+` FROM jobs WHERE pipeline_id = $1 ORDER BY id`, pipelineID))
	if err != nil {
		return nil, fmt.Errorf("list job states of pipeline %d: %w", pipelineID, err)
	}
	return js, nil
}

// ListPendingTagged returns the pending jobs with tags, oldest first,
// without their spec.
func (x jobs) ListPendingTagged(ctx context.Context) ([]*store.Job, error) {
	js, err := scanJobs(tx(x).query(ctx, `SELECT `+jobStateColsJ+pendingJobsJ+`
		WHERE p.tags <> '{}' ORDER BY p.pending_at, p.job_id`))
	if err != nil {
		return nil, fmt.Errorf("list pending jobs with tags: %w", err)
	}
	return js, nil
}

// ListPending returns every pending job, oldest first, without its spec.
func (x jobs) ListPending(ctx context.Context) ([]*store.Job, error) {
	js, err := scanJobs(tx(x).query(ctx, `SELECT `+jobStateColsJ+pendingJobsJ+`
		ORDER BY p.pending_at, p.job_id`))
	if err != nil {
		return nil, fmt.Errorf("list pending jobs: %w", err)
	}
	return js, nil
}

// ListPendingSince returns the jobs that became pending after since.
func (x jobs) ListPendingSince(ctx context.Context, since time.Time) ([]*store.Job, error) {
	js, err := scanJobs(tx(x).query(ctx, `SELECT `+jobStateCols+` FROM jobs
		WHERE pending_at > $1 ORDER BY pending_at, id`, codec.Micros(since)))
	if err != nil {
		return nil, fmt.Errorf("list jobs pending since %s: %w", since, err)
	}
	return js, nil
}

// ListByStatus returns up to limit jobs in status, oldest first; a limit
// of 0 or less returns them all. The pending jobs come from pending_jobs,
// in its index's order.
func (x jobs) ListByStatus(ctx context.Context, status store.JobStatus, limit int) ([]*store.Job, error) {
	var lim *int // LIMIT NULL: no limit
	if limit > 0 {
		lim = &limit
	}
	var (
		rows pgx.Rows
		err  error
	)
	if status == store.JobPending {
		rows, err = tx(x).query(ctx, `SELECT `+jobColsJ+pendingJobsJ+`
			ORDER BY p.pending_at, p.job_id LIMIT $1`, lim)
	} else {
		rows, err = tx(x).query(ctx, `SELECT `+jobCols+` FROM jobs
			WHERE status = $1 ORDER BY id LIMIT $2`, status, lim)
	}
	js, err := scanJobs(rows, err)
	if err != nil {
		return nil, fmt.Errorf("list %s jobs: %w", status, err)
	}
	return js, nil
}

// Update writes j's mutable fields; the jobs_pending trigger adds,
// changes or removes its pending_jobs row in the same statement.
func (x jobs) Update(ctx context.Context, j *store.Job) error {
	tags, err := codec.ToJSON(j.Tags)
	if err != nil {
		return fmt.Errorf("update job %d: %w", j.ID, err)
	}
	err = tx(x).exec(ctx, true, `UPDATE jobs SET status = $1, allow_failure = $2, reason = $3, failure_reason = $4,
			attempts = $5, lost_attempts = $6, exit_code = $7, run_after = $8, created_at = $9, pending_at = $10,
			started_at = $11, finished_at = $12, tags = $13
		WHERE id = $14`,
		j.Status, j.AllowFailure, j.Reason, j.FailureReason, j.Attempts, j.LostAttempts, j.ExitCode,
		codec.Micros(j.RunAfter), codec.Micros(j.CreatedAt), codec.Micros(j.PendingAt), codec.Micros(j.StartedAt), codec.Micros(j.FinishedAt), tags, j.ID)
	if err != nil {
		return fmt.Errorf("update job %d: %w", j.ID, err)
	}
	return nil
}

// nextPendingSQL claims a job: $1 is now in Unix microseconds, $2 the
// agent's labels. The inner query walks pending_jobs on its (pending_at,
// job_id) index, oldest first, to the first row that is due and whose
// tags the labels contain (an empty array is contained in any), and locks
// that row FOR UPDATE SKIP LOCKED; the outer one reads the job by its
// primary key. The walk stops at once when untagged jobs are pending
// (they fit any agent); its worst case, an agent that fits none of a long
// backlog, reads every row: ~2 ms for 20,000 (BenchmarkClaimQuery). When
// the statistics say the labels fit very few pending jobs, the planner
// finds those on the tags' GIN index instead and sorts them.
//
// The lock is on the pending_jobs row, not on the job's: it is the claim.
// Whatever takes the job out of the pending set, or changes what a claim
// matches on, writes that row through the jobs_pending trigger and so
// waits for the claim, and a concurrent claimer passes over it. The
// claimer's own Jobs.Update locks the job's row moments later.
const nextPendingSQL = `SELECT ` + jobCols + ` FROM jobs
	WHERE id = (SELECT job_id FROM pending_jobs
		WHERE run_after <= $1 AND tags <@ $2::text[]
		ORDER BY pending_at, job_id
		LIMIT 1
		FOR UPDATE SKIP LOCKED)`

// NextPending returns the oldest pending job that is due and whose tags
// are all among labels, locking its pending_jobs row FOR UPDATE SKIP
// LOCKED (see nextPendingSQL): a job another transaction is claiming is
// passed over, not waited for.
func (x jobs) NextPending(ctx context.Context, labels []string, now time.Time) (*store.Job, error) {
	if labels == nil {
		labels = []string{} // a NULL array would contain no tags, not even none
	}
	j, err := scanJob(tx(x).queryRow(ctx, nextPendingSQL, codec.Micros(now), labels))
	if err != nil {
		return nil, fmt.Errorf("next pending job for labels %v: %w", labels, err)
	}
	return j, nil
}

func (x jobs) CountPipeline(ctx context.Context, pipelineID int64) (store.JobCounts, error) {
	c := store.JobCounts{ByStatus: map[store.JobStatus]int{}}
	rows, err := tx(x).query(ctx, `SELECT status, allow_failure, count(*) FROM jobs
		WHERE pipeline_id = $1 GROUP BY status, allow_failure`, pipelineID)
	if err != nil {
		return c, fmt.Errorf("count jobs of pipeline %d: %w", pipelineID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			s     store.JobStatus
			allow bool
			n     int
		)
		if err := rows.Scan(&s, &allow, &n); err != nil {
			return c, fmt.Errorf("count jobs of pipeline %d: %w", pipelineID, err)
		}
		c.ByStatus[s] += n
		if s == store.JobFailed && !allow {
			c.FailedBlocking += n
		}
	}
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("count jobs of pipeline %d: %w", pipelineID, err)
	}
	return c, nil
}

func (x jobs) CountByStatus(ctx context.Context) (map[store.JobStatus]int, error) {
	rows, err := tx(x).query(ctx, `SELECT status, count(*) FROM jobs GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	defer rows.Close()
	counts := make(map[store.JobStatus]int)
	for rows.Next() {
		var (
			s store.JobStatus
			n int
		)
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("count jobs: %w", err)
		}
		counts[s] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	return counts, nil
}

// finishedStatuses lists the final job statuses, for SQL.
var finishedStatuses = fmt.Sprintf(`'%s', '%s', '%s', '%s'`,
	store.JobSuccess, store.JobFailed, store.JobCanceled, store.JobSkipped)

// listFinishedSQL is ListFinished's query: the jobs finished since $1 (from
// jobs_finished_at when the range is narrow), each joined with its last
// attempt, found by (job_id, number), and that attempt's agent; the
// attempt's steps are NULL when it has none ('null').
var listFinishedSQL = `SELECT j.id, j.pipeline_id, j.name, j.status, j.pending_at, j.started_at,
		j.finished_at, j.attempts, g.labels, nullif(t.steps, 'null')
	FROM jobs j
	LEFT JOIN attempts t ON t.job_id = j.id AND t.number = j.attempts
	LEFT JOIN agents g ON g.id = t.agent_id
	WHERE j.finished_at >= $1 AND j.status IN (` + finishedStatuses + `)
	ORDER BY j.finished_at, j.id`

// ListFinished runs listFinishedSQL. Jobs run by one agent share its
// labels' JSON text, which is decoded once; an attempt's steps are
// decoded only when it has some, from the driver's buffer, by a
// stepjson.Decoder (steps in blocks, names shared). The records are
// allocated in blocks.
func (x jobs) ListFinished(ctx context.Context, since time.Time) ([]*store.JobTiming, error) {
	rows, err := tx(x).query(ctx, listFinishedSQL, codec.SinceMicros(since))
	if err != nil {
		return nil, fmt.Errorf("list jobs finished since %s: %w", since, err)
	}
	defer rows.Close()
	var (
		out    []*store.JobTiming
		slab   []store.JobTiming       // allocated 256 at a time
		labels = map[string][]string{} // decoded, by JSON text
		// Scanned into, declared once: Scan's arguments escape.
		status                     string
		pending, started, finished int64
		text                       *string
		steps                      pgtype.DriverBytes // nil for none; valid until Next
		stepDec                    stepjson.Decoder
	)
	for rows.Next() {
		if len(slab) == 0 {
			slab = make([]store.JobTiming, 256)
		}
		jt := &slab[0]
		slab = slab[1:]
		if err := rows.Scan(&jt.JobID, &jt.PipelineID, &jt.Name, &status, &pending, &started, &finished,
			&jt.Attempts, &text, &steps); err != nil {
			return nil, fmt.Errorf("list jobs finished since %s: %w", since, err)
		}
		if steps != nil {
			if jt.Steps, err = stepDec.Decode(steps); err != nil {
				return nil, fmt.Errorf("list jobs finished since %s: decode the steps of job %d's last attempt: %w", since, jt.JobID, err)
			}
		}
		jt.Status = store.JobStatus(status)
		jt.PendingAt, jt.StartedAt, jt.FinishedAt = codec.FromMicros(pending), codec.FromMicros(started), codec.FromMicros(finished)
		if text != nil {
			ls, ok := labels[*text]
			if !ok {
				if err := codec.FromJSON(*text, &ls); err != nil {
					return nil, fmt.Errorf("list jobs finished since %s: decode the labels of job %d's agent: %w", since, jt.JobID, err)
				}
				if ls == nil {
					ls = []string{} // an attempt ran: not nil
				}
				labels[*text] = ls
			}
			jt.AgentLabels = slices.Clone(ls)
		}
		out = append(out, jt)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list jobs finished since %s: %w", since, err)
	}
	return out, nil
}

const attemptCols = `id, job_id, number, agent_id, token_hash, status, lease_expires_at, cancel_requested,
	exit_code, failure_reason, created_at, started_at, finished_at, steps`

func scanAttempt(r scanner) (*store.Attempt, error) {
	var (
		a                                 store.Attempt
		lease, created, started, finished int64
		steps                             string
	)
	err := r.Scan(&a.ID, &a.JobID, &a.Number, &a.AgentID, &a.TokenHash, &a.Status, &lease, &a.CancelRequested,
		&a.ExitCode, &a.FailureReason, &created, &started, &finished, &steps)
	if err != nil {
		return nil, dbErr(err)
	}
	if err := codec.FromJSON(steps, &a.Steps); err != nil {
		return nil, fmt.Errorf("decode attempt %d steps: %w", a.ID, err)
	}
	if len(a.Steps) == 0 {
		a.Steps = nil // none, however stored
	}
	a.LeaseExpiresAt = codec.FromMicros(lease)
	a.CreatedAt = codec.FromMicros(created)
	a.StartedAt = codec.FromMicros(started)
	a.FinishedAt = codec.FromMicros(finished)
	return &a, nil
}

func scanAttempts(rows pgx.Rows, err error) ([]*store.Attempt, error) {
	return collect(rows, err, scanAttempt)
}

// CreateAttempt inserts a; a second attempt with the same job and Number
// is refused with store.ErrConflict.
func (x jobs) CreateAttempt(ctx context.Context, a *store.Attempt) error {
	steps, err := codec.StepsJSON(a.Steps)
	if err != nil {
		return fmt.Errorf("create attempt %d of job %d: encode steps: %w", a.Number, a.JobID, err)
	}
	err = tx(x).queryRow(ctx, `INSERT INTO attempts (job_id, number, agent_id, token_hash, status,
			lease_expires_at, cancel_requested, exit_code, failure_reason, created_at, started_at, finished_at,
			steps)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id`,
		a.JobID, a.Number, a.AgentID, codec.NonNil(a.TokenHash), a.Status, codec.Micros(a.LeaseExpiresAt),
		a.CancelRequested, a.ExitCode, a.FailureReason, codec.Micros(a.CreatedAt), codec.Micros(a.StartedAt),
		codec.Micros(a.FinishedAt), steps).Scan(&a.ID)
	if err != nil {
		return fmt.Errorf("create attempt %d of job %d: %w", a.Number, a.JobID, dbErr(err))
	}
	return nil
}

func (x jobs) GetAttempt(ctx context.Context, id int64) (*store.Attempt, error) {
	a, err := scanAttempt(tx(x).queryRow(ctx, `SELECT `+attemptCols+` FROM attempts WHERE id = $1`, id))
	if err != nil {
		return nil, fmt.Errorf("get attempt %d: %w", id, err)
	}
	return a, nil
}

func (x jobs) ListAttempts(ctx context.Context, jobID int64) ([]*store.Attempt, error) {
	as, err := scanAttempts(tx(x).query(ctx,
		`SELECT `+attemptCols+` FROM attempts WHERE job_id = $1 ORDER BY number`, jobID))
	if err != nil {
		return nil, fmt.Errorf("list attempts of job %d: %w", jobID, err)
	}
	return as, nil
}

func (x jobs) ListAttemptsOfPipeline(ctx context.Context, pipelineID int64) ([]*store.Attempt, error) {
	as, err := scanAttempts(tx(x).query(ctx, `SELECT `+attemptCols+` FROM attempts
		WHERE job_id IN (SELECT id FROM jobs WHERE pipeline_id = $1) ORDER BY job_id, number`, pipelineID))
	if err != nil {
		return nil, fmt.Errorf("list attempts of pipeline %d: %w", pipelineID, err)
	}
	return as, nil
}

func (x jobs) UpdateAttempt(ctx context.Context, a *store.Attempt) error {
	steps, err := codec.StepsJSON(a.Steps)
	if err != nil {
		return fmt.Errorf("update attempt %d: encode steps: %w", a.ID, err)
	}
	err = tx(x).exec(ctx, true, `UPDATE attempts SET status = $1, lease_expires_at = $2, started_at = $3,
			finished_at = $4, exit_code = $5, failure_reason = $6, cancel_requested = $7, steps = $8
		WHERE id = $9`,
		a.Status, codec.Micros(a.LeaseExpiresAt), codec.Micros(a.StartedAt), codec.Micros(a.FinishedAt), a.ExitCode,
		a.FailureReason, a.CancelRequested, steps, a.ID)
	if err != nil {
		return fmt.Errorf("update attempt %d: %w", a.ID, err)
	}
	return nil
}

// ExpiredAttempts returns running attempts whose lease ended before now,
// ordered by ID.
func (x jobs) ExpiredAttempts(ctx context.Context, now time.Time) ([]*store.Attempt, error) {
	as, err := scanAttempts(tx(x).query(ctx, `SELECT `+attemptCols+` FROM attempts
		WHERE status = 'running' AND lease_expires_at < $1 ORDER BY id`, codec.Micros(now)))
	if err != nil {
		return nil, fmt.Errorf("list expired attempts: %w", err)
	}
	return as, nil
}

// CountAgentAttempts counts the attempts an agent has been given.
func (x jobs) CountAgentAttempts(ctx context.Context, agentID int64) (int, error) {
	var n int
	if err := tx(x).queryRow(ctx, `SELECT count(*) FROM attempts WHERE agent_id = $1`, agentID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count attempts of agent %d: %w", agentID, err)
	}
	return n, nil
}

// RunningAttempts returns the running attempts held by an agent, ordered
// by ID.
func (x jobs) RunningAttempts(ctx context.Context, agentID int64) ([]*store.Attempt, error) {
	as, err := scanAttempts(tx(x).query(ctx, `SELECT `+attemptCols+` FROM attempts
		WHERE agent_id = $1 AND status = 'running' ORDER BY id`, agentID))
	if err != nil {
		return nil, fmt.Errorf("list running attempts of agent %d: %w", agentID, err)
	}
	return as, nil
}

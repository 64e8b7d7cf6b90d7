package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hangar-ci/hangar/internal/store/internal/codec"

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

func scanJobs(rows *sql.Rows, err error) ([]*store.Job, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var js []*store.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		js = append(js, j)
	}
	return js, rows.Err()
}

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
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		j.PipelineID, j.Name, j.Stage, j.StageIndex, j.Status, j.When,
		boolInt(j.AllowFailure), cols[0], cols[1], cols[2], cols[3], j.Reason, j.FailureReason, j.Attempts,
		j.LostAttempts, j.ExitCode, codec.Micros(j.RunAfter), codec.Micros(j.CreatedAt), codec.Micros(j.PendingAt),
		codec.Micros(j.StartedAt), codec.Micros(j.FinishedAt)).Scan(&j.ID)
	if err != nil {
		return fmt.Errorf("create job %q in pipeline %d: %w", j.Name, j.PipelineID, dbErr(err))
	}
	return nil
}

func (x jobs) Get(ctx context.Context, id int64) (*store.Job, error) {
	j, err := scanJob(tx(x).queryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get job %d: %w", id, err)
	}
	return j, nil
}

func (x jobs) ListByPipeline(ctx context.Context, pipelineID int64) ([]*store.Job, error) {
	js, err := scanJobs(tx(x).query(ctx,
		`SELECT `+jobCols+` FROM jobs WHERE pipeline_id = ? ORDER BY id`, pipelineID))
	if err != nil {
		return nil, fmt.Errorf("list jobs of pipeline %d: %w", pipelineID, err)
	}
	return js, nil
}

// jobStateCols are jobCols without the spec, which is most of a job's
// bytes and none of its state.
var jobStateCols = strings.Replace(jobCols, "spec,", "'null' AS spec,", 1)

func (x jobs) ListStates(ctx context.Context, pipelineID int64) ([]*store.Job, error) {
	js, err := scanJobs(tx(x).query(ctx,
		`SELECT `+jobStateCols+` FROM jobs WHERE pipeline_id = ? ORDER BY id`, pipelineID))
	if err != nil {
		return nil, fmt.Errorf("list job states of pipeline %d: %w", pipelineID, err)
	}
	return js, nil
}

func (x jobs) ListPendingTagged(ctx context.Context) ([]*store.Job, error) {
	js, err := scanJobs(tx(x).query(ctx, `SELECT `+jobStateCols+` FROM jobs
		WHERE status = 'pending' AND tags NOT IN ('null', '[]') ORDER BY pending_at, id`))
	if err != nil {
		return nil, fmt.Errorf("list pending jobs with tags: %w", err)
	}
	return js, nil
}

// ListPending returns every pending job, oldest first, without its spec.
func (x jobs) ListPending(ctx context.Context) ([]*store.Job, error) {
	js, err := scanJobs(tx(x).query(ctx, `SELECT `+jobStateCols+` FROM jobs
		WHERE status = 'pending' ORDER BY pending_at, id`))
	if err != nil {
		return nil, fmt.Errorf("list pending jobs: %w", err)
	}
	return js, nil
}

// ListPendingSince returns the jobs that became pending after since.
func (x jobs) ListPendingSince(ctx context.Context, since time.Time) ([]*store.Job, error) {
	js, err := scanJobs(tx(x).query(ctx, `SELECT `+jobStateCols+` FROM jobs
		WHERE pending_at > ? ORDER BY pending_at, id`, codec.Micros(since)))
	if err != nil {
		return nil, fmt.Errorf("list jobs pending since %s: %w", since, err)
	}
	return js, nil
}

// ListByStatus returns up to limit jobs in status, oldest first; a limit
// of 0 or less returns them all.
func (x jobs) ListByStatus(ctx context.Context, status store.JobStatus, limit int) ([]*store.Job, error) {
	order := `id`
	if status == store.JobPending {
		order = `pending_at, id`
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	js, err := scanJobs(tx(x).query(ctx,
		`SELECT `+jobCols+` FROM jobs WHERE status = ? ORDER BY `+order+` LIMIT ?`, status, limit))
	if err != nil {
		return nil, fmt.Errorf("list %s jobs: %w", status, err)
	}
	return js, nil
}

func (x jobs) Update(ctx context.Context, j *store.Job) error {
	tags, err := codec.ToJSON(j.Tags)
	if err != nil {
		return fmt.Errorf("update job %d: %w", j.ID, err)
	}
	res, err := tx(x).exec(ctx, `UPDATE jobs SET status = ?, allow_failure = ?, reason = ?, failure_reason = ?,
			attempts = ?, lost_attempts = ?, exit_code = ?, run_after = ?, created_at = ?, pending_at = ?,
			started_at = ?, finished_at = ?, tags = ?
		WHERE id = ?`,
		j.Status, boolInt(j.AllowFailure), j.Reason, j.FailureReason, j.Attempts, j.LostAttempts, j.ExitCode,
		codec.Micros(j.RunAfter), codec.Micros(j.CreatedAt), codec.Micros(j.PendingAt), codec.Micros(j.StartedAt), codec.Micros(j.FinishedAt), tags, j.ID)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("update job %d: %w", j.ID, dbErr(err))
	}
	return nil
}

// NextPending walks the pending jobs in (pending_at, id) order on their
// index and returns the first whose tags are all among labels. SQLite
// needs no row lock: an Update holds the database's write lock throughout.
func (x jobs) NextPending(ctx context.Context, labels []string, now time.Time) (*store.Job, error) {
	if labels == nil {
		labels = []string{} // JSON null would make every tag look matched
	}
	have, err := codec.ToJSON(labels)
	if err != nil {
		return nil, fmt.Errorf("next pending job: encode labels: %w", err)
	}
	j, err := scanJob(tx(x).queryRow(ctx, `SELECT `+jobCols+` FROM jobs
		WHERE status = 'pending' AND run_after <= ?
			AND NOT EXISTS (
				SELECT 1 FROM json_each(jobs.tags) AS tag -- null tags: one row of type null
				WHERE tag.type = 'text' AND tag.value NOT IN (SELECT label.value FROM json_each(?) AS label))
		ORDER BY pending_at, id
		LIMIT 1`, codec.Micros(now), have))
	if err != nil {
		return nil, fmt.Errorf("next pending job for labels %v: %w", labels, err)
	}
	return j, nil
}

func (x jobs) CountPipeline(ctx context.Context, pipelineID int64) (store.JobCounts, error) {
	c := store.JobCounts{ByStatus: map[store.JobStatus]int{}}
	rows, err := tx(x).query(ctx, `SELECT status, allow_failure, count(*) FROM jobs
		WHERE pipeline_id = ? GROUP BY status, allow_failure`, pipelineID)
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

// ListFinished walks jobs_finished_at from since, in order (no sort), and
// joins each job with its last attempt, found by (job_id, number), and that
// attempt's agent, by its ID. The status test is kept off the indexes
// (+j.status): on jobs_status_pending the planner would read every
// finished job ever and sort them. Jobs run by one agent share its labels'
// JSON text, which is decoded once; an attempt's steps come as NULL when
// it has none ('null'), and are decoded only when it has some, by a
// stepjson.Decoder (steps in blocks, names shared). The records are
// allocated in blocks.
func (x jobs) ListFinished(ctx context.Context, since time.Time) ([]*store.JobTiming, error) {
	rows, err := tx(x).query(ctx, `SELECT j.id, j.pipeline_id, j.name, j.status, j.pending_at, j.started_at,
			j.finished_at, j.attempts, g.labels, nullif(t.steps, 'null')
		FROM jobs j
		LEFT JOIN attempts t ON t.job_id = j.id AND t.number = j.attempts
		LEFT JOIN agents g ON g.id = t.agent_id
		WHERE j.finished_at >= ? AND +j.status IN (`+finishedStatuses+`)
		ORDER BY j.finished_at, j.id`, codec.SinceMicros(since))
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
		text                       sql.NullString
		steps                      sql.RawBytes // nil for none; valid until Next
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
		if text.Valid {
			ls, ok := labels[text.String]
			if !ok {
				if err := codec.FromJSON(text.String, &ls); err != nil {
					return nil, fmt.Errorf("list jobs finished since %s: decode the labels of job %d's agent: %w", since, jt.JobID, err)
				}
				if ls == nil {
					ls = []string{} // an attempt ran: not nil
				}
				labels[text.String] = ls
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

func scanAttempts(rows *sql.Rows, err error) ([]*store.Attempt, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var as []*store.Attempt
	for rows.Next() {
		a, err := scanAttempt(rows)
		if err != nil {
			return nil, err
		}
		as = append(as, a)
	}
	return as, rows.Err()
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
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		a.JobID, a.Number, a.AgentID, codec.NonNil(a.TokenHash), a.Status, codec.Micros(a.LeaseExpiresAt),
		boolInt(a.CancelRequested), a.ExitCode, a.FailureReason, codec.Micros(a.CreatedAt), codec.Micros(a.StartedAt),
		codec.Micros(a.FinishedAt), steps).Scan(&a.ID)
	if err != nil {
		return fmt.Errorf("create attempt %d of job %d: %w", a.Number, a.JobID, dbErr(err))
	}
	return nil
}

func (x jobs) GetAttempt(ctx context.Context, id int64) (*store.Attempt, error) {
	a, err := scanAttempt(tx(x).queryRow(ctx, `SELECT `+attemptCols+` FROM attempts WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get attempt %d: %w", id, err)
	}
	return a, nil
}

func (x jobs) ListAttempts(ctx context.Context, jobID int64) ([]*store.Attempt, error) {
	as, err := scanAttempts(tx(x).query(ctx,
		`SELECT `+attemptCols+` FROM attempts WHERE job_id = ? ORDER BY number`, jobID))
	if err != nil {
		return nil, fmt.Errorf("list attempts of job %d: %w", jobID, err)
	}
	return as, nil
}

func (x jobs) ListAttemptsOfPipeline(ctx context.Context, pipelineID int64) ([]*store.Attempt, error) {
	as, err := scanAttempts(tx(x).query(ctx, `SELECT `+attemptCols+` FROM attempts
		WHERE job_id IN (SELECT id FROM jobs WHERE pipeline_id = ?) ORDER BY job_id, number`, pipelineID))
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
	res, err := tx(x).exec(ctx, `UPDATE attempts SET status = ?, lease_expires_at = ?, started_at = ?,
			finished_at = ?, exit_code = ?, failure_reason = ?, cancel_requested = ?, steps = ?
		WHERE id = ?`,
		a.Status, codec.Micros(a.LeaseExpiresAt), codec.Micros(a.StartedAt), codec.Micros(a.FinishedAt), a.ExitCode,
		a.FailureReason, boolInt(a.CancelRequested), steps, a.ID)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("update attempt %d: %w", a.ID, dbErr(err))
	}
	return nil
}

// ExpiredAttempts returns running attempts whose lease ended before now,
// ordered by ID.
func (x jobs) ExpiredAttempts(ctx context.Context, now time.Time) ([]*store.Attempt, error) {
	as, err := scanAttempts(tx(x).query(ctx, `SELECT `+attemptCols+` FROM attempts
		WHERE status = 'running' AND lease_expires_at < ? ORDER BY id`, codec.Micros(now)))
	if err != nil {
		return nil, fmt.Errorf("list expired attempts: %w", err)
	}
	return as, nil
}

// CountAgentAttempts counts the attempts an agent has been given.
func (x jobs) CountAgentAttempts(ctx context.Context, agentID int64) (int, error) {
	var n int
	if err := tx(x).queryRow(ctx, `SELECT count(*) FROM attempts WHERE agent_id = ?`, agentID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count attempts of agent %d: %w", agentID, err)
	}
	return n, nil
}

// RunningAttempts returns the running attempts held by an agent, ordered
// by ID.
func (x jobs) RunningAttempts(ctx context.Context, agentID int64) ([]*store.Attempt, error) {
	as, err := scanAttempts(tx(x).query(ctx, `SELECT `+attemptCols+` FROM attempts
		WHERE agent_id = ? AND status = 'running' ORDER BY id`, agentID))
	if err != nil {
		return nil, fmt.Errorf("list running attempts of agent %d: %w", agentID, err)
	}
	return as, nil
}

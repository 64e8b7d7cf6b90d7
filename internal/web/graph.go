package web

import (
	"fmt"

	"github.com/hangar-ci/hangar/internal/api"
)

// Graph is a pipeline drawn as SVG: a column per stage, a box per job,
// and a curve from each job to every job that needs it.
type Graph struct {
	Width, Height int
	Stages        []GraphStage
	Nodes         []GraphNode
	Edges         []GraphEdge
}

// GraphStage is a stage's column heading.
type GraphStage struct {
	Name string
	X    int
}

// GraphNode is a job's box.
type GraphNode struct {
	Job                   api.Job
	X, Y, W, H            int
	TextX, TextY, StatusY int
	// Duration is how long the job ran (or runs), "" when it has not
	// started.
	Duration string
}

// GraphEdge is a curve from a needed job to the job that needs it, as an
// SVG path.
type GraphEdge struct {
	From, To string
	Path     string
}

// The graph's geometry, in pixels.
const (
	nodeW, nodeH   = 180, 44
	columnGap      = 70
	rowGap         = 14
	headerH        = 28
	margin         = 8
	textInset      = 10
	durationInside = 4
)

// Layout places a pipeline's jobs: stages in the order their first job
// comes (jobs are created stage by stage), jobs in a stage in their
// order. durations gives each job's duration text (nil: none).
func Layout(jobs []api.Job, durations func(api.Job) string) Graph {
	var g Graph
	column := map[string]int{}
	rows := []int{}
	pos := map[string]GraphNode{}
	for _, j := range jobs {
		c, ok := column[j.Stage]
		if !ok {
			c = len(g.Stages)
			column[j.Stage] = c
			g.Stages = append(g.Stages, GraphStage{Name: j.Stage, X: margin + c*(nodeW+columnGap)})
			rows = append(rows, 0)
		}
		n := GraphNode{Job: j, X: margin + c*(nodeW+columnGap), Y: headerH + rows[c]*(nodeH+rowGap), W: nodeW, H: nodeH}
		n.TextX, n.TextY, n.StatusY = n.X+textInset, n.Y+18, n.Y+36-durationInside
		if durations != nil {
			n.Duration = durations(j)
		}
		rows[c]++
		g.Nodes = append(g.Nodes, n)
		pos[j.Name] = n
	}
	for _, n := range g.Nodes {
		for _, need := range n.Job.Needs {
			from, ok := pos[need]
			if !ok {
				continue // an optional need the pipeline does not have
			}
			x1, y1 := from.X+from.W, from.Y+from.H/2
			x2, y2 := n.X, n.Y+n.H/2
			if from.X >= n.X { // same stage or later: loop around the left
				x1, x2 = from.X, n.X
			}
			mid := (x1 + x2) / 2
			if x1 == x2 {
				mid = x1 - columnGap/2
			}
			g.Edges = append(g.Edges, GraphEdge{From: need, To: n.Job.Name,
				Path: fmt.Sprintf("M%d,%d C%d,%d %d,%d %d,%d", x1, y1, mid, y1, mid, y2, x2, y2)})
		}
	}
	most := 0
	for _, r := range rows {
		most = max(most, r)
	}
	g.Width = 2*margin + max(1, len(g.Stages))*(nodeW+columnGap) - columnGap
	g.Height = headerH + most*(nodeH+rowGap) + margin
	return g
}

// jobActions pairs a job with the form token, for the job-actions
// template.
func jobActions(j api.Job, csrf string) struct {
	Job  api.Job
	CSRF string
} {
	return struct {
		Job  api.Job
		CSRF string
	}{j, csrf}
}

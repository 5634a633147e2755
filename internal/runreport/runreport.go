// Package runreport renders one run of fleet as a self-contained HTML
// page: a timeline with a row per host and a bar per step, the critical
// path marked, failures first, and per step and host the commands it ran
// with their exit codes, durations and the tail of their stderr. The page
// has no external assets and no script: it opens offline, anywhere.
// Everything it is given must already be redacted.
package runreport

import (
	"cmp"
	"html/template"
	"io"
	"slices"
	"strings"
	"time"
)

// Task is one step on one host ("" for a step that runs once).
type Task struct {
	Step, Host string
	Start, End time.Time
	Outcome    string // succeeded, already-done, failed, blocked, cancelled, would-run
	Detail     string // the error, or why it was skipped or already done
}

// Command is one remote command, with the task it ran for.
type Command struct {
	Step, Host string // the task's ("" step: outside every step)
	RanOn      string // the host it ran on
	Command    string
	Start      time.Time
	Duration   time.Duration
	ExitCode   int
	StderrTail string
	Error      string
}

// Run is what a report shows.
type Run struct {
	Title      string
	Started    time.Time
	Ended      time.Time
	Error      string              // the run's error, if it failed
	Tasks      []Task              //
	Commands   []Command           //
	After      map[string][]string // step → the steps it runs after
	SerialStep map[string]bool     // steps whose hosts run one at a time
}

// CriticalPath returns the indices of the tasks on the run's critical
// path, last first: from the task that ended last, back through what each
// waited for (the latest-ending task of a step it runs after, on its host
// where that step ran there, or the previous host of a serial step).
func CriticalPath(r Run) []int {
	if len(r.Tasks) == 0 {
		return nil
	}
	const slack = 50 * time.Millisecond // the engine's own latency between a finish and the next start
	last := 0                           // the task that ended last; of a tie, the one that started last
	for i, t := range r.Tasks {
		l := r.Tasks[last]
		if t.End.After(l.End) || (t.End.Equal(l.End) && !t.Start.Before(l.Start)) {
			last = i
		}
	}
	path := []int{last}
	// Tasks skipped at the same instant all "end before" each other within
	// the slack: a task on the path is never taken again, so the walk ends.
	onPath := map[int]bool{last: true}
	for cur := last; ; {
		c := r.Tasks[cur]
		best := -1
		consider := func(i int) {
			t := r.Tasks[i]
			if onPath[i] || t.Start.After(c.Start) || t.End.After(c.Start.Add(slack)) {
				return
			}
			if best < 0 || t.End.After(r.Tasks[best].End) {
				best = i
			}
		}
		for _, dep := range r.After[c.Step] {
			onHost := false
			for i, t := range r.Tasks {
				if t.Step == dep && t.Host == c.Host && c.Host != "" {
					consider(i)
					onHost = true
				}
			}
			if !onHost {
				for i, t := range r.Tasks {
					if t.Step == dep {
						consider(i)
					}
				}
			}
		}
		if r.SerialStep[c.Step] {
			for i, t := range r.Tasks {
				if t.Step == c.Step {
					consider(i)
				}
			}
		}
		if best < 0 {
			return path
		}
		path = append(path, best)
		onPath[best] = true
		cur = best
	}
}

// Render writes the page.
func Render(w io.Writer, r Run) error {
	return page.Execute(w, layout(r))
}

type bar struct {
	Step, Host, Outcome, Title string
	Left, Width                float64 // percent of the run
	Critical                   bool
}

type row struct {
	Host string // as shown: "(cluster)" for steps run once
	Bars []bar
}

type detail struct {
	Task     Task
	Took     string
	Critical bool
	Commands []shownCommand
}

type shownCommand struct {
	Command, Took, StderrTail, Error, RanOn string
	ExitCode                                int
}

type view struct {
	Title, Took, Error string
	Started            string
	Rows               []row
	Failures           []detail
	Details            []detail
	CriticalSteps      []string
	Outside            []shownCommand
}

// minWidth keeps a task that took no time visible as a sliver.
const minWidth = 0.4

func layout(r Run) view {
	start, end := r.Started, r.Ended
	for _, t := range r.Tasks {
		if start.IsZero() || t.Start.Before(start) {
			start = t.Start
		}
		if t.End.After(end) {
			end = t.End
		}
	}
	span := end.Sub(start)
	if span <= 0 {
		span = time.Millisecond
	}
	v := view{Title: r.Title, Took: round(end.Sub(start)), Error: r.Error, Started: start.UTC().Format(time.RFC3339)}
	critical := map[int]bool{}
	path := CriticalPath(r)
	for i := len(path) - 1; i >= 0; i-- {
		critical[path[i]] = true
		t := r.Tasks[path[i]]
		v.CriticalSteps = append(v.CriticalSteps, strings.TrimSpace(t.Step+" "+t.Host))
	}
	rowOf := map[string]int{}
	commands := map[[2]string][]shownCommand{}
	for _, c := range r.Commands {
		sc := shownCommand{Command: c.Command, Took: round(c.Duration), StderrTail: c.StderrTail, Error: c.Error, ExitCode: c.ExitCode, RanOn: c.RanOn}
		if c.Step == "" {
			v.Outside = append(v.Outside, sc)
			continue
		}
		commands[[2]string{c.Step, c.Host}] = append(commands[[2]string{c.Step, c.Host}], sc)
	}
	order := make([]int, len(r.Tasks))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return r.Tasks[a].Start.Compare(r.Tasks[b].Start) })
	for _, i := range order {
		t := r.Tasks[i]
		host := cmp.Or(t.Host, "(cluster)")
		ri, ok := rowOf[host]
		if !ok {
			ri = len(v.Rows)
			rowOf[host] = ri
			v.Rows = append(v.Rows, row{Host: host})
		}
		left := 100 * float64(t.Start.Sub(start)) / float64(span)
		width := max(minWidth, 100*float64(t.End.Sub(t.Start))/float64(span))
		left = min(left, 100-minWidth)
		v.Rows[ri].Bars = append(v.Rows[ri].Bars, bar{Step: t.Step, Host: host, Outcome: t.Outcome, Left: left, Width: min(width, 100-left),
			Critical: critical[i], Title: t.Step + " on " + host + ": " + t.Outcome + " in " + round(t.End.Sub(t.Start))})
		d := detail{Task: t, Took: round(t.End.Sub(t.Start)), Critical: critical[i], Commands: commands[[2]string{t.Step, t.Host}]}
		if t.Outcome == "failed" {
			v.Failures = append(v.Failures, d)
		}
		v.Details = append(v.Details, d)
	}
	return v
}

func round(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.meta{color:#57606a}.err{background:#ffebe9;border:1px solid #ff8182;padding:8px 12px;border-radius:6px;white-space:pre-wrap}
.timeline{border:1px solid #d0d7de;border-radius:6px;padding:8px}
.row{display:flex;align-items:center;height:26px;border-bottom:1px solid #f0f2f4}
.row:last-child{border-bottom:0}
.host{width:140px;flex:none;font-weight:600;overflow:hidden;text-overflow:ellipsis}
.lane{position:relative;flex:1;height:18px}
.bar{position:absolute;top:0;height:18px;border-radius:3px;font-size:11px;line-height:18px;color:#fff;overflow:hidden;white-space:nowrap;padding-left:2px;box-sizing:border-box}
.succeeded{background:#2da44e}.already-done{background:#8c959f}.failed{background:#cf222e}
.blocked,.cancelled{background:#d4a72c}.would-run{background:#0969da}
.critical{outline:2px solid #8250df;outline-offset:1px;z-index:1}
table{border-collapse:collapse;width:100%;margin:4px 0 8px}td,th{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top}
code,pre{font:12px ui-monospace,monospace}pre{margin:0;white-space:pre-wrap}
details{margin:2px 0}summary{cursor:pointer}.exit-nonzero{color:#cf222e;font-weight:600}
.legend span{display:inline-block;padding:0 6px;margin-right:6px;border-radius:3px;color:#fff;font-size:12px}
</style></head><body>
<h1>{{.Title}}</h1>
<div class="meta">started {{.Started}} · took {{.Took}}</div>
{{if .Error}}<h2>Error</h2><div class="err" id="run-error">{{.Error}}</div>{{end}}
{{if .Failures}}<h2>Failures</h2>
<div id="failures">{{range .Failures}}
<div class="failure" data-step="{{.Task.Step}}" data-host="{{.Task.Host}}"><b>{{.Task.Step}}</b> on <b>{{if .Task.Host}}{{.Task.Host}}{{else}}(cluster){{end}}</b> after {{.Took}}
<div class="err">{{.Task.Detail}}</div>
{{range .Commands}}{{if ne .ExitCode 0}}<div>last command: <code>{{.Command}}</code> exited <span class="exit-nonzero">{{.ExitCode}}</span>{{if .StderrTail}}<pre class="stderr">{{.StderrTail}}</pre>{{end}}</div>{{end}}{{end}}
</div>{{end}}
</div>{{end}}
<h2>Timeline</h2>
<div class="legend"><span class="succeeded">ran</span><span class="already-done">already done</span><span class="failed">failed</span><span class="blocked">skipped</span><span style="background:#fff;color:#1b1f24;outline:2px solid #8250df">critical path</span></div>
<div class="timeline" id="timeline">{{range .Rows}}
<div class="row"><div class="host">{{.Host}}</div><div class="lane">{{range .Bars}}<div class="bar {{.Outcome}}{{if .Critical}} critical{{end}}" data-step="{{.Step}}" data-host="{{.Host}}" style="left:{{printf "%.3f" .Left}}%;width:{{printf "%.3f" .Width}}%" title="{{.Title}}">{{.Step}}</div>{{end}}</div></div>{{end}}
</div>
<div class="meta">critical path: {{range $i, $s := .CriticalSteps}}{{if $i}} → {{end}}{{$s}}{{end}}</div>
<h2>Steps and commands</h2>
{{range .Details}}<details{{if eq .Task.Outcome "failed"}} open{{end}}><summary>{{.Task.Step}} · {{if .Task.Host}}{{.Task.Host}}{{else}}(cluster){{end}} · {{.Task.Outcome}} · {{.Took}}{{if .Critical}} · critical path{{end}}{{if .Task.Detail}} — {{.Task.Detail}}{{end}}</summary>
{{if .Commands}}<table><tr><th>command</th><th>on</th><th>exit</th><th>took</th><th>stderr (last lines)</th></tr>
{{range .Commands}}<tr><td><code>{{.Command}}</code></td><td>{{.RanOn}}</td><td{{if ne .ExitCode 0}} class="exit-nonzero"{{end}}>{{.ExitCode}}</td><td>{{.Took}}</td><td><pre>{{.StderrTail}}{{if .Error}}{{if .StderrTail}}
{{end}}{{.Error}}{{end}}</pre></td></tr>
{{end}}</table>{{else}}<div class="meta">no remote command</div>{{end}}
</details>{{end}}
{{if .Outside}}<h2>Commands outside the steps</h2><table><tr><th>command</th><th>on</th><th>exit</th><th>took</th></tr>
{{range .Outside}}<tr><td><code>{{.Command}}</code></td><td>{{.RanOn}}</td><td>{{.ExitCode}}</td><td>{{.Took}}</td></tr>
{{end}}</table>{{end}}
</body></html>
`))

package bench

import (
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
)

// Sample is one timed run of one tool.
type Sample struct {
	Hosts   int
	Tool    string
	Run     int
	Wall    time.Duration
	PeakRSS int64 // KiB, of the tool's process (0: not measured)
}

// Summary is the statistics of one tool at one size.
type Summary struct {
	Tool             string
	Runs             int
	Median, Min, Max time.Duration
	PeakRSS          int64 // KiB, highest of the runs
}

// Summarise groups samples by tool for one host count, in tools' order.
func Summarise(samples []Sample, hosts int, tools []string) []Summary {
	var out []Summary
	for _, tool := range tools {
		var walls []time.Duration
		var rss int64
		for _, s := range samples {
			if s.Hosts == hosts && s.Tool == tool {
				walls = append(walls, s.Wall)
				rss = max(rss, s.PeakRSS)
			}
		}
		if len(walls) == 0 {
			continue
		}
		slices.Sort(walls)
		out = append(out, Summary{Tool: tool, Runs: len(walls), Median: median(walls), Min: walls[0], Max: walls[len(walls)-1], PeakRSS: rss})
	}
	return out
}

// median of sorted durations; the mean of the middle two for an even count.
// Median of durations in any order.
func Median(d []time.Duration) time.Duration {
	sorted := slices.Clone(d)
	slices.Sort(sorted)
	return median(sorted)
}

func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// WriteCSV writes the raw samples.
func WriteCSV(w io.Writer, samples []Sample) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"hosts", "tool", "run", "wall_seconds", "peak_rss_kib"})
	for _, s := range samples {
		cw.Write([]string{strconv.Itoa(s.Hosts), s.Tool, strconv.Itoa(s.Run), fmt.Sprintf("%.3f", s.Wall.Seconds()), strconv.FormatInt(s.PeakRSS, 10)})
	}
	cw.Flush()
	return cw.Error()
}

// Ratio is a/b as "12.3×", or "-" when either was not measured.
func Ratio(a, b time.Duration) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

package sqldbtest

import (
	"testing"
	"time"
)

// ReportRows reports a benchmark's throughput as rows/s (wall clock) and, when cpu > 0, as
// cpu-µs/row: cpu is the process CPU time (CPUTime differences, GC and C code included)
// spent on the rows, which stays comparable on a loaded machine where the wall clock does not.
func ReportRows(b *testing.B, rows int, cpu time.Duration) {
	b.Helper()
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu)/float64(rows)/1e3, "cpu-µs/row")
	}
}

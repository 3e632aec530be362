package fleet

import (
	"testing"
	"time"
)

// BenchmarkSyncPlatforms200 runs Sync Platforms against 200 fake agents served over TLS on
// loopback ports from this one process, with the default concurrency bound. It reports the
// time of one run (the first run enrolls every agent) and the peak number of requests in
// flight across all agents.
func BenchmarkSyncPlatforms200(b *testing.B) {
	tf := newTestFleet(b, 200, true)
	var counter inFlight
	for _, a := range tf.agents {
		a.set(func(a *fakeAgent) { a.inFlight = &counter })
	}
	s := NewSyncer(tf.catalog, tf.secrets, SyncerOptions{})
	b.Cleanup(s.Close)
	var worst time.Duration
	for b.Loop() {
		start := time.Now()
		rep, err := s.SyncPlatforms(b.Context(), SyncOptions{})
		if err != nil || rep.OK != 200 {
			b.Fatalf("report: ok %d failed %d unreachable %d, err %v", rep.OK, rep.Failed, rep.Unreachable, err)
		}
		worst = max(worst, time.Since(start))
	}
	b.ReportMetric(float64(counter.peak.Load()), "peak-in-flight")
	b.ReportMetric(worst.Seconds(), "worst-s")
}

package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"
)

// result is what one pass observed.
type result struct {
	// latency[i] is the duration of the request for token i; zero when it
	// was not sent.
	latency []time.Duration
	// accepted[i] reports whether token i was accepted.
	accepted []bool
	elapsed  time.Duration

	mu       sync.Mutex
	sent     int
	status   map[int]int
	errors   int
	firstErr error
}

func newResult(n int) *result {
	return &result{latency: make([]time.Duration, n), accepted: make([]bool, n), status: map[int]int{}}
}

// record notes the outcome of the request for token i. Each i is recorded
// by one worker only, so the slices need no lock.
func (r *result) record(i int, d time.Duration, status int, err error, acceptedStatus int) {
	r.latency[i] = d
	r.accepted[i] = err == nil && status == acceptedStatus
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent++
	if err != nil {
		r.errors++
		if r.firstErr == nil {
			r.firstErr = err
		}
		return
	}
	r.status[status]++
}

func (r *result) acceptedCount() int {
	n := 0
	for _, ok := range r.accepted {
		if ok {
			n++
		}
	}
	return n
}

// throughput is requests answered per second of the pass.
func (r *result) throughput() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.sent-r.errors) / r.elapsed.Seconds()
}

// percentile returns the q-quantile (0 < q <= 1) of the latencies of the
// requests sent, by the nearest-rank method.
func (r *result) percentile(q float64) time.Duration {
	return nearestRank(sentLatencies(r.latency), q)
}

func sentLatencies(all []time.Duration) []time.Duration {
	var d []time.Duration
	for _, v := range all {
		if v > 0 {
			d = append(d, v)
		}
	}
	slices.Sort(d)
	return d
}

// nearestRank returns the smallest value of sorted with at least a share q
// of the values at or below it.
func nearestRank(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q*float64(len(sorted)) + 0.999999999)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func (r *result) print(w io.Writer) {
	d := sentLatencies(r.latency)
	fmt.Fprintf(w, "  sent %d of %d in %v: %.0f req/s\n", r.sent, len(r.latency), r.elapsed.Round(time.Millisecond), r.throughput())
	if len(d) > 0 {
		fmt.Fprintf(w, "  latency p50 %v  p90 %v  p99 %v  max %v\n",
			nearestRank(d, 0.50).Round(time.Microsecond), nearestRank(d, 0.90).Round(time.Microsecond),
			nearestRank(d, 0.99).Round(time.Microsecond), d[len(d)-1].Round(time.Microsecond))
	}
	for _, s := range slices.Sorted(maps.Keys(r.status)) {
		fmt.Fprintf(w, "  status %d: %d\n", s, r.status[s])
	}
	if r.errors > 0 {
		fmt.Fprintf(w, "  transport errors: %d (first: %v)\n", r.errors, r.firstErr)
	}
	if unsent := len(r.latency) - r.sent; unsent > 0 {
		fmt.Fprintf(w, "  not sent (duration cap): %d\n", unsent)
	}
}

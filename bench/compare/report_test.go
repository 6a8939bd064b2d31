package main

import (
	"strings"
	"testing"
	"time"
)

func TestBest(t *testing.T) {
	id := func(v float64) float64 { return v }
	if got := best([]float64{170, 307}, id, false); got != 170 {
		t.Fatalf("best CPU = %v, want the least, 170", got)
	}
	if got := best([]float64{1254, 1827}, id, true); got != 1827 {
		t.Fatalf("best req/s = %v, want the most, 1827", got)
	}
}

func TestReport_MarksGoals(t *testing.T) {
	m := func(cpu, p99 float64, doubles int) []measurement {
		s := summary{ServerCPUPerRequestUS: cpu, ReqPerSec: 1000, P99ms: p99, RawPerCPUSecond: 25000, DoubleAcceptances: doubles}
		return []measurement{{Peak: s, Half: s}}
	}
	services := []service{{"SERVER2", "memory"}, {"peer", "memory"}, {"floor", "memory"}, {"SERVER2", "redis"}, {"peer", "redis"}}
	tests := []struct {
		name     string
		give     map[string][]measurement
		wantRows []string
	}{
		{
			name: "ok/all_met",
			give: map[string][]measurement{
				"SERVER2/memory": m(90, 2, 0), "peer/memory": m(100, 3, 0), "floor/memory": m(80, 1, 0),
				"SERVER2/redis": m(110, 4, 0), "peer/redis": m(130, 4, 0),
			},
			wantRows: []string{
				"| SERVER2 ≤ 1.00x the peer's CPU per handoff, memory | 0.90x (90 / 100 µs) | **met** |",
				"| SERVER2 ≤ 1.25x the floor, memory | 1.12x (90 / 80 µs) | **met** |",
				"| SERVER2 ≤ 1.50x the floor, Redis | 1.38x (110 / 80 µs) | **met** |",
				"| SERVER2 p99 < 5 ms at half peak, Redis | 4.00 ms | **met** |",
				"| zero double acceptances (SERVER2 and peer, every run) | 0 | **met** |",
			},
		},
		{
			name: "fail/missed",
			give: map[string][]measurement{
				"SERVER2/memory": m(123, 6, 0), "peer/memory": m(103, 3, 1), "floor/memory": m(78, 1, 0),
				"SERVER2/redis": m(179, 4, 0), "peer/redis": m(131, 4, 0),
			},
			wantRows: []string{
				"| SERVER2 ≤ 1.00x the peer's CPU per handoff, memory | 1.19x (123 / 103 µs) | **missed** |",
				"| SERVER2 ≤ 1.50x the floor, Redis | 2.29x (179 / 78 µs) | **missed** |",
				"| SERVER2 p99 < 5 ms at half peak, memory | 6.00 ms | **missed** |",
				"| zero double acceptances (SERVER2 and peer, every run) | 2 | **missed** |",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			pages := []summary{{ServerCPUPerRequestUS: 50, ReqPerSec: 2000, RawPerCPUSecond: 50000}}
			report(&out, options{Root: ".", Rounds: 1, N: 100, Concurrency: 1}, services, tt.give, pages, nil, time.Second)

			for _, row := range tt.wantRows {
				if !strings.Contains(out.String(), row+"\n") {
					t.Errorf("no row %q in:\n%s", row, out.String())
				}
			}
		})
	}
}

package brokertest

import "sync"

// FetchLog records the results a fetcher reports to its OnFetch callback
// (fetch.ResultOK, ...). It is safe for concurrent use.
type FetchLog struct {
	mu      sync.Mutex
	results []string
}

// Record is an OnFetch callback.
func (l *FetchLog) Record(result string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.results = append(l.results, result)
}

// Results returns the results recorded so far, oldest first.
func (l *FetchLog) Results() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.results...)
}

// Last returns the latest result recorded, "" for none.
func (l *FetchLog) Last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.results) == 0 {
		return ""
	}
	return l.results[len(l.results)-1]
}

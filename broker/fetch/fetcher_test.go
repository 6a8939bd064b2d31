package fetch_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handoffbroker/handoff/broker/brokertest"
	"github.com/handoffbroker/handoff/broker/fetch"
	"github.com/handoffbroker/handoff/broker/internal/fixture"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// docServer serves one text document under httptest, with an ETag that
// honours If-None-Match, counting requests and recording each request's
// If-None-Match. override swaps in another behaviour.
type docServer struct {
	srv          *httptest.Server
	hits         atomic.Int64
	body         atomic.Pointer[string]
	cacheControl atomic.Pointer[string]
	override     atomic.Pointer[http.HandlerFunc]

	mu     sync.Mutex
	ifNone []string
}

func newDocServer(t testing.TB, body string) *docServer {
	t.Helper()
	d := &docServer{}
	d.setBody(body)
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.hits.Add(1)
		d.mu.Lock()
		d.ifNone = append(d.ifNone, r.Header.Get("If-None-Match"))
		d.mu.Unlock()
		if h := d.override.Load(); h != nil {
			(*h)(w, r)
			return
		}
		d.serve(w, r)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *docServer) url() string { return d.srv.URL + "/doc" }

func (d *docServer) setBody(b string) { d.body.Store(&b) }

func (d *docServer) setCacheControl(v string) { d.cacheControl.Store(&v) }

func (d *docServer) set(h http.HandlerFunc) { d.override.Store(&h) }

func (d *docServer) lastIfNoneMatch() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ifNone[len(d.ifNone)-1]
}

func (d *docServer) serve(w http.ResponseWriter, r *http.Request) {
	body := *d.body.Load()
	if cc := d.cacheControl.Load(); cc != nil {
		w.Header().Set("Cache-Control", *cc)
	}
	etag := fmt.Sprintf(`"%d-%x"`, len(body), body)
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write([]byte(body))
}

// parseText accepts any body but "bad".
func parseText(_ context.Context, body []byte, _ *fetch.Snapshot[string]) (string, error) {
	if string(body) == "bad" {
		return "", errors.New("bad document")
	}
	return string(body), nil
}

// newTestFetcher builds a text fetcher of url on clock, recording OnFetch
// results in results (if not nil), after edit adjusts the config.
func newTestFetcher(t testing.TB, url string, clock *brokertest.Clock, results *fixture.FetchLog, edit func(*fetch.Config[string])) *fetch.Fetcher[string] {
	t.Helper()
	cfg := fetch.Config[string]{URL: url, Parse: parseText, Now: clock.Now}
	if results != nil {
		cfg.OnFetch = results.Record
	}
	if edit != nil {
		edit(&cfg)
	}
	f, err := fetch.New(cfg)
	require.NoError(t, err)
	return f
}

func TestNew(t *testing.T) {
	const u = "https://issuer.test/doc"
	tests := []struct {
		name         string
		give         fetch.Config[string]
		wantProblems int
	}{
		{name: "ok/defaults", give: fetch.Config[string]{URL: u, Parse: parseText}},
		{name: "ok/fixed_interval", give: fetch.Config[string]{URL: u, Parse: parseText, MinRefresh: time.Second, MaxRefresh: time.Second, DefaultRefresh: time.Second}},
		{name: "ok/min_refresh_above_default", give: fetch.Config[string]{URL: u, Parse: parseText, MinRefresh: 10 * time.Minute}},
		{name: "fail/missing_url", give: fetch.Config[string]{Parse: parseText}, wantProblems: 1},
		{name: "fail/credentials_in_url", give: fetch.Config[string]{URL: "https://u:pw@issuer.test/doc", Parse: parseText}, wantProblems: 1},
		{name: "fail/missing_parse", give: fetch.Config[string]{URL: u}, wantProblems: 1},
		{name: "fail/negative_timeout", give: fetch.Config[string]{URL: u, Parse: parseText, Timeout: -1}, wantProblems: 1},
		{name: "fail/negative_max_response", give: fetch.Config[string]{URL: u, Parse: parseText, MaxResponseBytes: -1}, wantProblems: 1},
		{name: "fail/default_refresh_out_of_range", give: fetch.Config[string]{URL: u, Parse: parseText, DefaultRefresh: 2 * time.Hour}, wantProblems: 1},
		{name: "fail/retry_max_below_first", give: fetch.Config[string]{URL: u, Parse: parseText, Retry: fetch.Backoff{First: time.Second, Max: time.Millisecond}}, wantProblems: 1},
		{
			name:         "fail/every_problem_reported",
			give:         fetch.Config[string]{URL: "ftp://issuer.test/doc", Timeout: -1, MinRefresh: 2 * time.Hour, MaxRefresh: time.Hour, DefaultRefresh: 2 * time.Hour},
			wantProblems: 5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := fetch.New(tt.give)
			if tt.wantProblems == 0 {
				require.NoError(t, err)
				require.NotNil(t, f)
				return
			}
			var ce *fetch.ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Len(t, ce.Problems, tt.wantProblems, "%v", err)
			assert.Equal(t, ce.Problems, fetch.Problems(err))
			assert.NotContains(t, err.Error(), "pw")
		})
	}
}

func TestProblems(t *testing.T) {
	other := errors.New("not a config error")
	assert.Nil(t, fetch.Problems(nil))
	assert.Equal(t, []error{other}, fetch.Problems(other))
}

func TestFetcher_Refresh(t *testing.T) {
	tests := []struct {
		name       string
		giveBody   string
		wantValue  string
		wantResult string
	}{
		{name: "ok/first_fetch", giveBody: "v1", wantValue: "v1", wantResult: fetch.ResultOK},
		{name: "ok/empty_body_is_parsed", giveBody: "", wantValue: "", wantResult: fetch.ResultOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDocServer(t, tt.giveBody)
			d.setCacheControl("max-age=600")
			var results fixture.FetchLog
			f := newTestFetcher(t, d.url(), brokertest.NewClock(fixture.Now), &results, nil)
			require.Nil(t, f.Load())

			s, err := f.Refresh(t.Context())

			require.NoError(t, err)
			assert.Same(t, f.Load(), s)
			assert.Equal(t, tt.wantValue, s.Value)
			assert.NotEmpty(t, s.ETag)
			assert.Equal(t, fixture.Now, s.FetchedAt)
			assert.Equal(t, fixture.Now.Add(10*time.Minute), s.RefreshAt)
			assert.Equal(t, fetch.Status{FetchedAt: fixture.Now, RefreshAt: s.RefreshAt}, f.Status())
			assert.Equal(t, []string{tt.wantResult}, results.All())
			assert.Empty(t, d.lastIfNoneMatch(), "the first request is unconditional")
		})
	}
}

func TestFetcher_RefreshFails(t *testing.T) {
	const maxBytes = 64
	tooLong := strings.Repeat("x", maxBytes+1)
	tests := []struct {
		name        string
		giveHandler http.HandlerFunc
		giveTimeout time.Duration
	}{
		{name: "fail/status_500", giveHandler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }},
		{name: "fail/status_404", giveHandler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) }},
		{name: "fail/larger_than_limit", giveHandler: func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(tooLong)) }},
		{
			name: "fail/larger_than_limit_without_length",
			giveHandler: func(w http.ResponseWriter, _ *http.Request) {
				w.(http.Flusher).Flush() // chunked: no Content-Length to check up front
				_, _ = w.Write([]byte(tooLong))
			},
		},
		{name: "fail/parse_error", giveHandler: func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("bad")) }},
		{
			name: "fail/connection_dropped",
			giveHandler: func(w http.ResponseWriter, _ *http.Request) {
				if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
					conn.Close()
				}
			},
		},
		{
			name:        "fail/slower_than_timeout",
			giveHandler: func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
			giveTimeout: 100 * time.Millisecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDocServer(t, "good")
			var results fixture.FetchLog
			clock := brokertest.NewClock(fixture.Now)
			f := newTestFetcher(t, d.url(), clock, &results, func(c *fetch.Config[string]) {
				c.MaxResponseBytes = maxBytes
				c.Timeout = tt.giveTimeout
			})
			good, err := f.Refresh(t.Context())
			require.NoError(t, err)

			d.set(tt.giveHandler)
			clock.Advance(time.Minute)
			s, err := f.Refresh(t.Context())

			require.Error(t, err)
			assert.Nil(t, s)
			assert.Same(t, good, f.Load(), "a failed fetch keeps the held snapshot")
			st := f.Status()
			assert.Equal(t, fixture.Now, st.FetchedAt)
			assert.Equal(t, err.Error(), st.LastError)
			assert.Equal(t, []string{fetch.ResultOK, fetch.ResultError}, results.All())

			d.override.Store(nil)
			_, err = f.Refresh(t.Context())
			require.NoError(t, err)
			assert.Empty(t, f.Status().LastError, "a success clears the last error")
		})
	}
}

// TestFetcher_RefreshInterval clamps max-age to configured bounds (the
// defaults are keys.Remote's spec, in its own tests).
func TestFetcher_RefreshInterval(t *testing.T) {
	const (
		lo, def, hi = 30 * time.Second, 2 * time.Minute, 20 * time.Minute
	)
	tests := []struct {
		name             string
		giveCacheControl []string
		wantInterval     time.Duration
	}{
		{name: "ok/absent", wantInterval: def},
		{name: "ok/within_bounds", giveCacheControl: []string{"private, max-age=300"}, wantInterval: 5 * time.Minute},
		{name: "ok/quoted", giveCacheControl: []string{`max-age="300"`}, wantInterval: 5 * time.Minute},
		{name: "ok/name_case_ignored", giveCacheControl: []string{"MAX-AGE=300"}, wantInterval: 5 * time.Minute},
		{name: "ok/second_header_line", giveCacheControl: []string{"no-store", "max-age=300"}, wantInterval: 5 * time.Minute},
		{name: "ok/zero_raised_to_min", giveCacheControl: []string{"max-age=0"}, wantInterval: lo},
		{name: "ok/day_cut_to_max", giveCacheControl: []string{"max-age=86400"}, wantInterval: hi},
		{name: "ok/beyond_uint64_cut_to_max", giveCacheControl: []string{"max-age=184467440737095516160"}, wantInterval: hi},
		{name: "ok/negative_is_absent", giveCacheControl: []string{"max-age=-5"}, wantInterval: def},
		{name: "ok/without_value_is_absent", giveCacheControl: []string{"max-age"}, wantInterval: def},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDocServer(t, "doc")
			d.set(func(w http.ResponseWriter, r *http.Request) {
				for _, v := range tt.giveCacheControl {
					w.Header().Add("Cache-Control", v)
				}
				d.serve(w, r)
			})
			f := newTestFetcher(t, d.url(), brokertest.NewClock(fixture.Now), nil, func(c *fetch.Config[string]) {
				c.MinRefresh, c.DefaultRefresh, c.MaxRefresh = lo, def, hi
			})

			s, err := f.Refresh(t.Context())

			require.NoError(t, err)
			assert.Equal(t, fixture.Now.Add(tt.wantInterval), s.RefreshAt)
		})
	}
}

func TestFetcher_NotModified(t *testing.T) {
	errExpired := errors.New("expired")
	tests := []struct {
		name        string
		giveConfirm func(*fetch.Snapshot[string], time.Time) error
		giveNoETag  bool
		wantResult  string
	}{
		{name: "ok/confirms_held_snapshot", wantResult: fetch.ResultNotModified},
		{
			name:        "ok/confirm_hook_accepts",
			giveConfirm: func(*fetch.Snapshot[string], time.Time) error { return nil },
			wantResult:  fetch.ResultNotModified,
		},
		{
			name:        "fail/confirm_hook_refuses",
			giveConfirm: func(*fetch.Snapshot[string], time.Time) error { return errExpired },
			wantResult:  fetch.ResultError,
		},
		{name: "fail/held_snapshot_has_no_etag", giveNoETag: true, wantResult: fetch.ResultError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDocServer(t, "v1")
			if tt.giveNoETag {
				d.set(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("v1")) })
			}
			clock := brokertest.NewClock(fixture.Now)
			var results fixture.FetchLog
			f := newTestFetcher(t, d.url(), clock, &results, func(c *fetch.Config[string]) { c.ConfirmNotModified = tt.giveConfirm })
			first, err := f.Refresh(t.Context())
			require.NoError(t, err)
			if tt.giveNoETag {
				d.set(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotModified) })
			}

			clock.Advance(10 * time.Minute)
			s, err := f.Refresh(t.Context())

			assert.Equal(t, []string{fetch.ResultOK, tt.wantResult}, results.All())
			if tt.wantResult == fetch.ResultError {
				require.Error(t, err)
				if tt.giveConfirm != nil {
					require.ErrorIs(t, err, errExpired)
				}
				assert.Equal(t, fixture.Now, f.Status().FetchedAt, "a refused 304 is not a fresh fetch")
				assert.Equal(t, "v1", f.Load().Value, "the held document stays")
				d.override.Store(nil)
				_, err := f.Refresh(t.Context())
				require.NoError(t, err)
				assert.Empty(t, d.lastIfNoneMatch(), "after a refused 304 the next request is unconditional")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, first.ETag, d.lastIfNoneMatch(), "the held ETag is sent")
			assert.Equal(t, first.Value, s.Value)
			assert.Equal(t, first.ETag, s.ETag)
			assert.Equal(t, clock.Now(), s.FetchedAt, "a 304 counts as a fresh fetch")
			assert.Equal(t, clock.Now().Add(5*time.Minute), s.RefreshAt)
			assert.Equal(t, fixture.Now, first.FetchedAt, "snapshots are never modified")
		})
	}
}

func TestFetcher_OnChange(t *testing.T) {
	d := newDocServer(t, "v1")
	clock := brokertest.NewClock(fixture.Now)
	type change struct{ prev, cur string }
	var changes []change
	var failNext atomic.Bool
	errShare := errors.New("share failed")
	var results fixture.FetchLog
	f := newTestFetcher(t, d.url(), clock, &results, func(c *fetch.Config[string]) {
		c.OnChange = func(_ context.Context, prev, cur *fetch.Snapshot[string]) error {
			ch := change{cur: cur.Value}
			if prev != nil {
				ch.prev = prev.Value
			}
			changes = append(changes, ch)
			if failNext.Swap(false) {
				return errShare
			}
			return nil
		}
	})

	steps := []struct {
		name        string
		giveBody    string
		giveFail    bool
		wantErr     error
		wantChanges []change
	}{
		{name: "ok/first_document", giveBody: "v1", wantChanges: []change{{"", "v1"}}},
		{name: "ok/not_modified_is_no_change", giveBody: "v1", wantChanges: []change{{"", "v1"}}},
		{name: "ok/new_document", giveBody: "v2", wantChanges: []change{{"", "v1"}, {"v1", "v2"}}},
		{name: "fail/hook_error_returned", giveBody: "v3", giveFail: true, wantErr: errShare, wantChanges: []change{{"", "v1"}, {"v1", "v2"}, {"v2", "v3"}}},
	}
	for _, st := range steps {
		d.setBody(st.giveBody)
		failNext.Store(st.giveFail)
		_, err := f.Refresh(t.Context())
		if st.wantErr != nil {
			require.ErrorIs(t, err, st.wantErr, st.name)
		} else {
			require.NoError(t, err, st.name)
		}
		assert.Equal(t, st.wantChanges, changes, st.name)
	}
	assert.Equal(t, "v3", f.Load().Value, "the hook's error does not undo the new document")
	assert.Empty(t, f.Status().LastError, "nor does it count as a failed fetch")
	assert.Equal(t, []string{fetch.ResultOK, fetch.ResultNotModified, fetch.ResultOK, fetch.ResultOK}, results.All())
}

func TestFetcher_ConcurrentRefreshesShareOneFetch(t *testing.T) {
	const callers = 20
	d := newDocServer(t, "v1")
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	d.set(func(w http.ResponseWriter, r *http.Request) {
		<-release
		d.serve(w, r)
	})
	f := newTestFetcher(t, d.url(), brokertest.NewClock(fixture.Now), nil, nil)

	got := make(chan *fetch.Snapshot[string], callers)
	var wg, started sync.WaitGroup
	started.Add(callers)
	for range callers {
		wg.Go(func() {
			started.Done()
			s, err := f.Refresh(context.Background())
			if err != nil {
				t.Errorf("Refresh: %v", err)
			}
			got <- s
		})
	}
	started.Wait()
	require.Eventually(t, func() bool { return d.hits.Load() == 1 }, 10*time.Second, 5*time.Millisecond)
	releaseOnce.Do(func() { close(release) })
	wg.Wait()
	close(got)

	distinct := make(map[*fetch.Snapshot[string]]bool)
	for s := range got {
		require.NotNil(t, s)
		distinct[s] = true
	}
	assert.Len(t, distinct, int(d.hits.Load()), "the callers of one fetch share its snapshot")
	assert.LessOrEqual(t, d.hits.Load(), int64(2), "one fetch, or two when a caller came after the first landed")
}

// TestFetcher_RefreshFromReplacedSnapshot: a caller that found a snapshot
// wanting, and whose refresh starts only after another one replaced it,
// gets the replacement without a fetch (the freshness re-check).
func TestFetcher_RefreshFromReplacedSnapshot(t *testing.T) {
	d := newDocServer(t, "v1")
	f := newTestFetcher(t, d.url(), brokertest.NewClock(fixture.Now), nil, nil)
	seen, err := f.Refresh(t.Context())
	require.NoError(t, err)
	d.setBody("v2")
	cur, err := f.Refresh(t.Context())
	require.NoError(t, err)
	require.EqualValues(t, 2, d.hits.Load())

	got, err := f.RefreshFrom(t.Context(), seen)

	require.NoError(t, err)
	assert.Same(t, cur, got)
	assert.Equal(t, "v2", got.Value)
	assert.EqualValues(t, 2, d.hits.Load(), "no third fetch")

	got, err = f.RefreshFrom(t.Context(), cur)
	require.NoError(t, err)
	assert.NotSame(t, cur, got, "a caller holding the current snapshot gets a new fetch")
	assert.EqualValues(t, 3, d.hits.Load())
}

func TestFetcher_CallerGivingUpDoesNotCancelTheFetch(t *testing.T) {
	d := newDocServer(t, "v1")
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	d.set(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
			d.serve(w, r)
		case <-r.Context().Done():
		}
	})
	f := newTestFetcher(t, d.url(), brokertest.NewClock(fixture.Now), nil, nil)

	ctx, cancel := context.WithCancel(t.Context())
	errs := make(chan error, 1)
	go func() {
		_, err := f.Refresh(ctx)
		errs <- err
	}()
	require.Eventually(t, func() bool { return d.hits.Load() == 1 }, 10*time.Second, 5*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-errs, context.Canceled)

	releaseOnce.Do(func() { close(release) })
	require.Eventually(t, func() bool { return f.Load() != nil }, 10*time.Second, 5*time.Millisecond,
		"the shared fetch outlives the caller that gave up on it")
	assert.EqualValues(t, 1, d.hits.Load())
}

func TestFetcher_Policy(t *testing.T) {
	d := newDocServer(t, "v1")
	other := newDocServer(t, "other")
	d.set(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-other":
			http.Redirect(w, r, other.url(), http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/same-host":
			http.Redirect(w, r, "/doc", http.StatusFound)
		default:
			d.serve(w, r)
		}
	})
	tests := []struct {
		name       string
		givePath   string
		wantReason fetch.URLReason
		wantHits   int64
	}{
		{name: "ok/redirect_on_the_same_host", givePath: "/same-host", wantHits: 2},
		{name: "fail/redirect_to_other_host", givePath: "/to-other", wantReason: fetch.URLOtherHost, wantHits: 1},
		{name: "fail/redirect_loop", givePath: "/loop", wantReason: fetch.URLTooManyRedirects, wantHits: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := d.hits.Load()
			f := newTestFetcher(t, d.srv.URL+tt.givePath, brokertest.NewClock(fixture.Now), nil, nil)

			_, err := f.Refresh(t.Context())

			assert.Equal(t, tt.wantHits, d.hits.Load()-before)
			assert.Zero(t, other.hits.Load(), "the refused host was requested")
			if tt.wantReason == "" {
				require.NoError(t, err)
				return
			}
			assert.Equal(t, tt.wantReason, fetch.URLReasonOf(err), "%v", err)
		})
	}

	t.Run("fail/url_on_other_host_than_policy", func(t *testing.T) {
		p, err := fetch.NewPolicy(fetch.PolicyConfig{Issuer: d.srv.URL})
		require.NoError(t, err)
		_, err = fetch.New(fetch.Config[string]{URL: "http://other.test/doc", Policy: p, Parse: parseText})
		assert.Equal(t, fetch.URLOtherHost, fetch.URLReasonOf(err), "%v", err)
	})
}

func TestFetcher_Start(t *testing.T) {
	d := newDocServer(t, "v1")
	d.set(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	f := newTestFetcher(t, d.url(), brokertest.NewClock(time.Now()), nil, func(c *fetch.Config[string]) {
		c.Now = time.Now
		c.MinRefresh, c.MaxRefresh, c.DefaultRefresh = 20*time.Millisecond, 20*time.Millisecond, 20*time.Millisecond
		c.Retry = fetch.Backoff{First: time.Millisecond, Max: 10 * time.Millisecond}
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	f.Start(ctx)
	f.Start(ctx)
	require.Eventually(t, func() bool { return d.hits.Load() >= 3 }, 10*time.Second, 5*time.Millisecond,
		"the loop fetches at once and retries after failures")
	assert.Nil(t, f.Load())
	assert.NotEmpty(t, f.Status().LastError)

	d.override.Store(nil)
	require.Eventually(t, func() bool { return f.Load() != nil }, 10*time.Second, 5*time.Millisecond, "the loop recovers")
	hits := d.hits.Load()
	require.Eventually(t, func() bool { return d.hits.Load() >= hits+3 }, 10*time.Second, 5*time.Millisecond,
		"the loop refreshes at each RefreshAt")
}

func TestBackoff_Wait(t *testing.T) {
	b := fetch.Backoff{First: time.Second, Max: time.Minute}
	tests := []struct {
		name         string
		giveFailures int
		want         time.Duration
	}{
		{name: "ok/first_failure", giveFailures: 1, want: time.Second},
		{name: "ok/doubles", giveFailures: 2, want: 2 * time.Second},
		{name: "ok/doubles_again", giveFailures: 4, want: 8 * time.Second},
		{name: "ok/capped_at_max", giveFailures: 7, want: time.Minute},
		{name: "ok/no_overflow_after_many_failures", giveFailures: 10_000, want: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 20 {
				got := b.Wait(tt.giveFailures)
				assert.GreaterOrEqual(t, got, tt.want-tt.want/10, "jitter stays within -10%%")
				assert.LessOrEqual(t, got, tt.want+tt.want/10, "jitter stays within +10%%")
			}
		})
	}
}

func TestCooldown(t *testing.T) {
	const period = 10 * time.Second
	c := fetch.NewCooldown(period)
	// Each step runs in order on the same Cooldown.
	steps := []struct {
		name      string
		giveAt    time.Duration
		wantClaim bool
	}{
		{name: "ok/first_claim", wantClaim: true},
		{name: "fail/same_instant", wantClaim: false},
		{name: "fail/just_before_the_end", giveAt: period - time.Nanosecond, wantClaim: false},
		{name: "ok/period_over", giveAt: period, wantClaim: true},
		{name: "fail/new_period", giveAt: period + period/2, wantClaim: false},
		{name: "ok/clock_went_backwards", giveAt: -time.Hour, wantClaim: true},
	}
	for _, st := range steps {
		assert.Equal(t, st.wantClaim, c.Claim(fixture.Now.Add(st.giveAt)), st.name)
	}

	t.Run("ok/zero_period_allows_every_claim", func(t *testing.T) {
		c := fetch.NewCooldown(0)
		for range 3 {
			assert.True(t, c.Claim(fixture.Now))
		}
	})
	t.Run("ok/one_winner_among_concurrent_claims", func(t *testing.T) {
		c := fetch.NewCooldown(period)
		var wins atomic.Int64
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				if c.Claim(fixture.Now) {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		assert.EqualValues(t, 1, wins.Load())
	})
}

func TestSleep(t *testing.T) {
	assert.True(t, fetch.Sleep(t.Context(), time.Millisecond))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.False(t, fetch.Sleep(ctx, time.Hour), "a done context ends the wait")
}

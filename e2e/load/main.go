// Command load measures how many handoff tokens a running SERVER2 verifies
// and consumes per second, and at what latency.
//
// It mints --n distinct tokens ahead of time, straight from SERVER1's key
// directory with the broker package (so minting costs nothing during the
// run), then fires them at SERVER2's POST /handoff (form POST, redirects not
// followed) or at its task API (Bearer) with --concurrency workers over
// keep-alive connections, optionally held to --rate requests per second. It
// reports throughput, latency percentiles and the count of each status.
//
// Before the run it measures, in the same process, how many Ed25519
// signatures one core verifies per second (crypto/ed25519.Verify in a loop),
// and prints the throughput as a share of that limit times --server-cores:
// signature verification is the floor of SERVER2's cost per token, so the
// ratio shows how much the rest (HTTP, parsing, claims, replay store,
// session, logging) costs.
//
// With --server-pid it also reads SERVER2's CPU time from /proc before and
// after the first pass, and reports requests per CPU-second against the
// raw verifies per CPU-second: a ratio that holds on a machine shared with
// other work, where wall-clock rates do not.
//
// A second pass resubmits every token the first pass got accepted; each
// must be refused with 409. The tool exits 1 on any double acceptance, on
// any other answer to a resubmission, and on transport errors.
//
// With --mode page it measures SERVER1 instead: it signs in through
// SERVER1's real login form (as --user, with the password from the
// LOAD_PASSWORD environment variable, by default the demo user's), then
// sends --n signed-in POST /handoffs, each of which mints a token and
// renders the auto-submit page; an answer counts as accepted when it is a
// 200 page carrying a token. Those requests carry the session's cookies in
// one fixed Cookie header, as a browser would send them, without a cookie
// jar to lock and update per response: the jar made the load tool, not
// SERVER1, the limit of a run. Its baseline is raw ed25519.Sign over a
// signing input of the same length, and --server-pid is SERVER1's. SERVER1
// must be started with handoff limits (--handoff-burst,
// --handoffs-per-minute) that allow --n handoffs for one user. There is no
// second pass.
//
// With --json FILE it also writes the run's summary as a JSON object (see
// summary), for scripts such as bench/compare.
//
// It talks to loopback addresses only, and its work is bounded by --n and
// --duration.
//
// Usage:
//
//	load --keys-dir .data/server1/keys --target http://127.0.0.1:8082 --n 20000 --concurrency 32
//
// SERVER2 keeps at most 100,000 sessions (each accepted handoff opens one,
// for --session-ttl): restart it between handoff runs that add up to more.
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/handoffbroker/handoff/broker/keys"
	"github.com/handoffbroker/handoff/broker/token"
	"golang.org/x/time/rate"
)

// Bounds that keep a run finite whatever the flags say.
const (
	maxTokens      = 1_000_000
	maxDuration    = 10 * time.Minute
	maxConcurrency = 1024
	requestTimeout = 10 * time.Second
)

// The task every token is minted for: the demo transfer.
var (
	demoTask   = "transfer-123"
	demoAction = "approve"
	demoParams = map[string]string{"amount": "250.00", "currency": "EUR", "payee": "ACME Corp"}
)

// Modes of --mode.
const (
	modeHandoff = "handoff"
	modeAPI     = "api"
	modePage    = "page"
)

// demoPassword is the demo user alice's password, documented in the
// README; LOAD_PASSWORD overrides it for --mode page.
const demoPassword = "alice-demo-pw"

// config is the command line.
type config struct {
	KeysDir     string
	Issuer      string
	Audience    string
	Target      string
	N           int
	Concurrency int
	Mode        string
	Duration    time.Duration
	Rate        float64
	ServerCores float64
	VerifyTime  time.Duration
	TTL         time.Duration
	Replay      bool
	ServerPID   int
	JSON        string
	User        string
	Password    string
}

func parseFlags(args []string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.KeysDir, "keys-dir", "", "SERVER1's key directory (required)")
	fs.StringVar(&c.Issuer, "issuer", "http://localhost:8081", "the \"iss\" to mint with: SERVER2's trusted issuer")
	fs.StringVar(&c.Audience, "audience", "http://127.0.0.1:8082", "the \"aud\" to mint with: SERVER2's audience")
	fs.StringVar(&c.Target, "target", "http://127.0.0.1:8082", "SERVER2's base URL (loopback only)")
	fs.IntVar(&c.N, "n", 20000, "tokens to mint and send")
	fs.IntVar(&c.Concurrency, "concurrency", 16, "requests in flight")
	fs.StringVar(&c.Mode, "mode", modeHandoff, "handoff (form POST /handoff), api (Bearer POST /api/v1/tasks/...) or page (SERVER1's signed-in POST /handoffs)")
	fs.DurationVar(&c.Duration, "duration", time.Minute, "cap on the first pass; tokens not sent by then are counted as unsent")
	fs.Float64Var(&c.Rate, "rate", 0, "hold the first pass to this many requests per second (0: as fast as possible)")
	fs.Float64Var(&c.ServerCores, "server-cores", 2, "cores SERVER2 may use, for the ratio to the raw verify limit")
	fs.DurationVar(&c.VerifyTime, "verify-time", 2*time.Second, "how long to measure the raw Ed25519 verify rate")
	fs.DurationVar(&c.TTL, "ttl", 5*time.Minute, "lifetime of the minted tokens; must outlast minting and the run")
	fs.BoolVar(&c.Replay, "replay", true, "resubmit every accepted token and check each is refused")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "the target's process id: report its CPU time per request, read from /proc (0: do not)")
	fs.StringVar(&c.JSON, "json", "", "also write the run's summary as JSON to this file")
	fs.StringVar(&c.User, "user", "alice", "--mode page: the user to sign in to SERVER1 as (password from LOAD_PASSWORD)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.Password = os.Getenv("LOAD_PASSWORD")
	if c.Password == "" {
		c.Password = demoPassword
	}
	if c.Mode == modePage {
		c.Replay = false
	}
	return c, c.validate()
}

// validate reports every problem at once.
func (c config) validate() error {
	var errs []error
	if c.KeysDir == "" && c.Mode != modePage {
		errs = append(errs, errors.New("--keys-dir is required"))
	}
	if c.Issuer == "" || c.Audience == "" {
		errs = append(errs, errors.New("--issuer and --audience are required"))
	}
	if err := checkLoopback(c.Target); err != nil {
		errs = append(errs, fmt.Errorf("--target: %w", err))
	}
	if c.N < 1 || c.N > maxTokens {
		errs = append(errs, fmt.Errorf("--n must be between 1 and %d", maxTokens))
	}
	if c.Concurrency < 1 || c.Concurrency > maxConcurrency {
		errs = append(errs, fmt.Errorf("--concurrency must be between 1 and %d", maxConcurrency))
	}
	if c.Mode != modeHandoff && c.Mode != modeAPI && c.Mode != modePage {
		errs = append(errs, fmt.Errorf("--mode must be %s, %s or %s", modeHandoff, modeAPI, modePage))
	}
	if c.Mode == modePage && c.User == "" {
		errs = append(errs, errors.New("--user is required with --mode page"))
	}
	if c.Duration <= 0 || c.Duration > maxDuration {
		errs = append(errs, fmt.Errorf("--duration must be positive and at most %v", maxDuration))
	}
	if c.Rate < 0 {
		errs = append(errs, errors.New("--rate must not be negative"))
	}
	if c.ServerCores <= 0 {
		errs = append(errs, errors.New("--server-cores must be positive"))
	}
	if c.ServerPID < 0 {
		errs = append(errs, errors.New("--server-pid must not be negative"))
	}
	if c.VerifyTime <= 0 || c.VerifyTime > time.Minute {
		errs = append(errs, errors.New("--verify-time must be positive and at most 1m"))
	}
	if c.TTL < time.Second || c.TTL > token.DefaultMaxTTL {
		errs = append(errs, fmt.Errorf("--ttl must be between 1s and %v", token.DefaultMaxTTL))
	}
	return errors.Join(errs...)
}

// checkLoopback accepts an http URL whose host is a loopback address or
// "localhost": the tool is for measuring a local server, not for loading
// anyone else's.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("%q is not an http:// base URL", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("host %q is not a loopback address", host)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "load: %v\n", err)
		}
		return 2
	}
	cores := runtime.GOMAXPROCS(0)

	client := newClient(cfg.Concurrency)
	defer client.CloseIdleConnections()
	f := &firer{cfg: cfg, client: client}

	var (
		tokens   []string
		sigInput int
		target   = "SERVER2"
	)
	start := time.Now()
	if cfg.Mode == modePage {
		target = "SERVER1"
		if sigInput, err = f.signIn(ctx); err != nil {
			fmt.Fprintf(stderr, "load: sign in to SERVER1: %v\n", err)
			return 1
		}
		tokens = make([]string, cfg.N)
		fmt.Fprintf(stdout, "signed in to %s as %s in %v\n", cfg.Target, cfg.User, time.Since(start).Round(time.Millisecond))
	} else {
		if tokens, sigInput, err = mintTokens(cfg); err != nil {
			fmt.Fprintf(stderr, "load: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "minted %d tokens in %v (%s, aud %s, ttl %v)\n", len(tokens), time.Since(start).Round(time.Millisecond), cfg.Issuer, cfg.Audience, cfg.TTL)
	}

	baseline := "ed25519.Verify"
	if cfg.Mode == modePage {
		baseline = "ed25519.Sign"
	}
	vr := rawRate(sigInput, cfg.VerifyTime, cfg.Mode == modePage)
	limit := vr.Wall * cfg.ServerCores
	fmt.Fprintf(stdout, "raw %s, one core, %d-byte message, %v: %.0f/s of wall time, %.0f per CPU-second\n",
		baseline, sigInput, cfg.VerifyTime, vr.Wall, vr.CPU)
	fmt.Fprintf(stdout, "raw %s limit for %g server cores: %.0f/s\n", baseline, cfg.ServerCores, limit)

	var limiter *rate.Limiter
	if cfg.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(cfg.Rate), 1)
	}
	var serverCPU0 time.Duration
	if cfg.ServerPID != 0 {
		if serverCPU0, err = processCPU(cfg.ServerPID); err != nil {
			fmt.Fprintf(stderr, "load: --server-pid: %v\n", err)
			return 1
		}
	}
	passCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	first := f.pass(passCtx, tokens, limiter)
	cancel()
	fmt.Fprintf(stdout, "\npass 1 (%s, concurrency %d, rate %s, load tool GOMAXPROCS %d):\n", cfg.Mode, cfg.Concurrency, rateString(cfg.Rate), cores)
	first.print(stdout)
	ratio := first.throughput() / limit
	fmt.Fprintf(stdout, "  ratio to raw %s limit (%g cores): %.1f%%\n", baseline, cfg.ServerCores, 100*ratio)
	sum := summary{
		Mode: cfg.Mode, Concurrency: cfg.Concurrency, Rate: cfg.Rate,
		Sent: first.sent, Accepted: first.acceptedCount(), Errors: first.errors, Status: first.status,
		ReqPerSec: first.throughput(),
		P50ms:     ms(first.percentile(0.50)), P90ms: ms(first.percentile(0.90)), P99ms: ms(first.percentile(0.99)),
		RawPerCPUSecond: vr.CPU,
	}
	cpuRatio := "-"
	if cfg.ServerPID != 0 {
		serverCPU1, err := processCPU(cfg.ServerPID)
		if err != nil {
			fmt.Fprintf(stderr, "load: --server-pid: %v\n", err)
			return 1
		}
		if used, answered := serverCPU1-serverCPU0, first.sent-first.errors; used > 0 && answered > 0 && vr.CPU > 0 {
			perCPUSecond := float64(answered) / used.Seconds()
			cpuRatio = fmt.Sprintf("%.1f%%", 100*perCPUSecond/vr.CPU)
			perRequest := used / time.Duration(answered)
			sum.ServerCPUPerRequestUS = float64(perRequest) / float64(time.Microsecond)
			fmt.Fprintf(stdout, "  %s CPU: %v for %d requests = %v per request, %.0f requests per CPU-second = %s of raw %s per CPU-second\n",
				target, used, answered, perRequest.Round(time.Microsecond), perCPUSecond, cpuRatio, baseline)
		}
	}

	failed := false
	if first.errors > 0 {
		failed = true
	}
	doubles := 0
	if cfg.Replay {
		var used []string
		for i, ok := range first.accepted {
			if ok {
				used = append(used, tokens[i])
			}
		}
		second := f.pass(ctx, used, nil)
		fmt.Fprintf(stdout, "\npass 2 (resubmit the %d accepted tokens):\n", len(used))
		second.print(stdout)
		doubles = second.acceptedCount()
		sum.Resubmitted, sum.Refused409 = len(used), second.status[http.StatusConflict]
		if other := len(used) - second.status[http.StatusConflict] - doubles; other != 0 {
			fmt.Fprintf(stdout, "  %d resubmissions were refused, but not with 409 replayed (none accepted)\n", other)
			failed = true
		}
	}
	sum.DoubleAcceptances = doubles
	sum.Failed = doubles > 0 || failed
	fmt.Fprintf(stdout, "\ndouble acceptances: %d\n", doubles)
	fmt.Fprintf(stdout, "| %s | %d | %s | %.0f | %.2f | %.2f | %.2f | %.1f%% | %s | %d |\n",
		cfg.Mode, cfg.Concurrency, rateString(cfg.Rate), first.throughput(),
		ms(first.percentile(0.50)), ms(first.percentile(0.90)), ms(first.percentile(0.99)), 100*ratio, cpuRatio, doubles)
	if cfg.JSON != "" {
		if err := writeSummary(cfg.JSON, sum); err != nil {
			fmt.Fprintf(stderr, "load: --json: %v\n", err)
			return 1
		}
	}
	if sum.Failed {
		return 1
	}
	return 0
}

// summary is the run's outcome as --json writes it. Times are in
// milliseconds (latencies) and microseconds (CPU).
type summary struct {
	Mode        string  `json:"mode"`
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"rate"`
	Sent        int     `json:"sent"`
	Accepted    int     `json:"accepted"`
	Errors      int     `json:"transport_errors"`
	// Status counts the first pass's answers by HTTP status.
	Status    map[int]int `json:"status"`
	ReqPerSec float64     `json:"req_per_sec"`
	P50ms     float64     `json:"p50_ms"`
	P90ms     float64     `json:"p90_ms"`
	P99ms     float64     `json:"p99_ms"`
	// ServerCPUPerRequestUS is the target's CPU time per answered request
	// (--server-pid); zero when not measured.
	ServerCPUPerRequestUS float64 `json:"server_cpu_per_request_us"`
	// RawPerCPUSecond is the baseline: raw Ed25519 verifies (sign, for
	// --mode page) per CPU-second of one core.
	RawPerCPUSecond   float64 `json:"raw_per_cpu_second"`
	Resubmitted       int     `json:"resubmitted"`
	Refused409        int     `json:"refused_409"`
	DoubleAcceptances int     `json:"double_acceptances"`
	// Failed is the exit status: a transport error, a double acceptance or
	// a resubmission refused other than with 409.
	Failed bool `json:"failed"`
}

func writeSummary(path string, s summary) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func rateString(r float64) string {
	if r == 0 {
		return "max"
	}
	return fmt.Sprintf("%.0f/s", r)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// mintTokens signs cfg.N distinct tokens with the current key of the key
// directory, in parallel. It also returns the length of a token's signing
// input, the message the raw verify baseline signs.
func mintTokens(cfg config) ([]string, int, error) {
	ring, err := keys.Open(keys.KeyringConfig{Dir: cfg.KeysDir})
	if err != nil {
		return nil, 0, err
	}
	m, err := token.NewMinter(token.MinterConfig{Issuer: cfg.Issuer, Keys: ring, DefaultTTL: cfg.TTL})
	if err != nil {
		return nil, 0, err
	}
	req := token.MintRequest{
		Subject:  "alice",
		Audience: cfg.Audience,
		Task:     token.Task{ID: demoTask, Action: demoAction, Params: demoParams},
	}
	tokens := make([]string, cfg.N)
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		mintErr error
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(tokens) {
					return
				}
				t, err := m.Mint(req)
				if err != nil {
					errOnce.Do(func() { mintErr = fmt.Errorf("mint: %w", err) })
					next.Store(int64(len(tokens)))
					return
				}
				tokens[i] = t.Token
			}
		})
	}
	wg.Wait()
	if mintErr != nil {
		return nil, 0, mintErr
	}
	return tokens, strings.LastIndexByte(tokens[0], '.'), nil
}

// primitiveRate is how fast one goroutine, locked to its thread, verified
// (or made) Ed25519 signatures: per second of wall time, and per second of
// the thread's own CPU time. On a machine shared with other work the
// second is the one that stays put.
type primitiveRate struct {
	Wall, CPU float64
}

// rawRate measures, for about d, how many Ed25519 signatures over a
// msgLen-byte message one goroutine verifies, or with sign, makes.
func rawRate(msgLen int, d time.Duration, sign bool) primitiveRate {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	msg := make([]byte, msgLen)
	_, _ = rand.Read(msg)
	sig := ed25519.Sign(priv, msg)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var n int
	cpu0, start := threadCPU(), time.Now()
	for time.Since(start) < d {
		for range 100 {
			if sign {
				sig = ed25519.Sign(priv, msg)
			} else if !ed25519.Verify(pub, msg, sig) {
				panic("ed25519: own signature does not verify")
			}
		}
		n += 100
	}
	wall, cpu := time.Since(start), threadCPU()-cpu0
	r := primitiveRate{Wall: float64(n) / wall.Seconds()}
	if cpu > 0 {
		r.CPU = float64(n) / cpu.Seconds()
	}
	return r
}

// rusageThread is Linux's RUSAGE_THREAD, which package syscall does not
// name.
const rusageThread = 1

// threadCPU returns the CPU time the calling thread has used; zero where
// the platform cannot say.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat: fixed at 100 by
// the Linux ABI on the architectures this runs on.
const userHZ = 100

// processCPU returns the CPU time (user + system) process pid has used,
// read from /proc/<pid>/stat.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name in parentheses may hold spaces: fields are counted
	// from after its closing parenthesis, where field 3 (state) starts.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// newClient returns a client that keeps one idle connection per worker, so
// every request after the first reuses a connection, and never follows
// redirects: the 303 of an accepted handoff is the result.
func newClient(concurrency int) *http.Client {
	return &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        concurrency,
			MaxIdleConnsPerHost: concurrency,
			MaxConnsPerHost:     concurrency,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// firer sends tokens to SERVER2.
type firer struct {
	cfg    config
	client *http.Client
	// csrf is SERVER1's CSRF token, for --mode page.
	csrf string
	// pageBody and pageCookie are the form and the Cookie header of every
	// --mode page request after sign-in: the same for each, so they are
	// made once, and no cookie jar is locked and updated per request.
	pageBody, pageCookie string
}

// pass sends every token once, with cfg.Concurrency workers, until the
// tokens run out or ctx ends. Requests in flight when ctx ends are let
// finish (within requestTimeout), so that every token sent has a known
// outcome.
func (f *firer) pass(ctx context.Context, tokens []string, limiter *rate.Limiter) *result {
	r := newResult(len(tokens))
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	apiBody, err := json.Marshal(demoParams)
	if err != nil {
		panic(err)
	}
	start := time.Now()
	for range f.cfg.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(tokens) {
					return
				}
				if limiter != nil && limiter.Wait(ctx) != nil {
					return
				}
				t0 := time.Now()
				status, err := f.send(context.WithoutCancel(ctx), tokens[i], apiBody)
				r.record(i, time.Since(t0), status, err, f.acceptedStatus())
			}
		})
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	return r
}

func (f *firer) acceptedStatus() int {
	if f.cfg.Mode == modeAPI || f.cfg.Mode == modePage {
		return http.StatusOK
	}
	return http.StatusSeeOther
}

// errNoToken is a --mode page answer that is 200 but not an auto-submit
// page carrying a token.
var errNoToken = errors.New("SERVER1 answered 200 without a token in the page")

// tokenField opens the hidden input of SERVER1's auto-submit page.
const tokenField = `name="token" value="`

// signIn signs in to SERVER1 through its login form (the CSRF cookie and
// field first, as a browser gets them), keeps the session in the client's
// cookie jar, and mints one handoff page to check the flow works. It
// returns the length of that token's signing input.
func (f *firer) signIn(ctx context.Context) (int, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return 0, err
	}
	f.client.Jar = jar
	status, _, err := f.do(ctx, http.MethodGet, "/login", nil)
	if err != nil {
		return 0, err
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("GET /login: status %d", status)
	}
	if f.csrf, err = f.csrfCookie(jar); err != nil {
		return 0, fmt.Errorf("GET /login: %w", err)
	}
	status, _, err = f.do(ctx, http.MethodPost, "/login", url.Values{
		"_csrf": {f.csrf}, "username": {f.cfg.User}, "password": {f.cfg.Password},
	})
	if err != nil {
		return 0, err
	}
	if status != http.StatusSeeOther {
		return 0, fmt.Errorf("POST /login: status %d (wrong user or password?)", status)
	}
	// Signing in rotates the CSRF token.
	if f.csrf, err = f.csrfCookie(jar); err != nil {
		return 0, fmt.Errorf("POST /login: %w", err)
	}
	status, body, err := f.do(ctx, http.MethodPost, "/handoffs", f.pageForm())
	if err != nil {
		return 0, err
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("POST /handoffs: status %d", status)
	}
	tok, ok := pageToken(body)
	if !ok {
		return 0, errNoToken
	}
	u, err := url.Parse(f.cfg.Target)
	if err != nil {
		return 0, err
	}
	var cookies []string
	for _, c := range jar.Cookies(u) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	f.pageCookie, f.pageBody = strings.Join(cookies, "; "), f.pageForm().Encode()
	f.client.Jar = nil
	return strings.LastIndexByte(tok, '.'), nil
}

// csrfCookie is SERVER1's CSRF cookie, whose value its forms echo back.
const csrfCookieName = "_csrf"

// csrfCookie returns the value of SERVER1's CSRF cookie in jar.
func (f *firer) csrfCookie(jar http.CookieJar) (string, error) {
	u, err := url.Parse(f.cfg.Target)
	if err != nil {
		return "", err
	}
	for _, c := range jar.Cookies(u) {
		if c.Name == csrfCookieName {
			return c.Value, nil
		}
	}
	return "", fmt.Errorf("no %s cookie set", csrfCookieName)
}

func (f *firer) pageForm() url.Values {
	return url.Values{"_csrf": {f.csrf}, "audience": {f.cfg.Audience}, "task_id": {demoTask}}
}

// pageToken returns the token in an auto-submit page.
func pageToken(page []byte) (string, bool) {
	_, rest, ok := bytes.Cut(page, []byte(tokenField))
	if !ok {
		return "", false
	}
	tok, _, ok := bytes.Cut(rest, []byte(`"`))
	return string(tok), ok && bytes.Count(tok, []byte(".")) == 2
}

// maxPage bounds the page body --mode page reads.
const maxPage = 1 << 20

// do sends one request to the target (a form when form is not nil) and
// returns its status and body (at most maxPage bytes).
func (f *firer) do(ctx context.Context, method, path string, form url.Values) (int, []byte, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, f.cfg.Target+path, body)
	if err != nil {
		return 0, nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPage))
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	return resp.StatusCode, b, err
}

// sendPage asks SERVER1 for one handoff page, with the session's cookies,
// and checks it carries a token.
func (f *firer) sendPage(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.cfg.Target+"/handoffs", strings.NewReader(f.pageBody))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", f.pageCookie)
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	page, err := io.ReadAll(io.LimitReader(resp.Body, maxPage))
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	if err == nil && resp.StatusCode == http.StatusOK {
		if _, ok := pageToken(page); !ok {
			err = errNoToken
		}
	}
	return resp.StatusCode, err
}

// send posts one token and drains the answer, so the connection is reused.
func (f *firer) send(ctx context.Context, token string, apiBody []byte) (int, error) {
	if f.cfg.Mode == modePage {
		return f.sendPage(ctx)
	}
	var req *http.Request
	var err error
	switch f.cfg.Mode {
	case modeAPI:
		req, err = http.NewRequestWithContext(ctx, http.MethodPost,
			f.cfg.Target+"/api/v1/tasks/"+demoTask+"/"+demoAction, strings.NewReader(string(apiBody)))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+token)
		}
	default:
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, f.cfg.Target+"/handoff",
			strings.NewReader(url.Values{"token": {token}}.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if err != nil {
		return 0, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

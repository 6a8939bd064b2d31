// Command compare measures SERVER2 against the two benchmark peers of this
// module (the hand-written peer and the floor) and SERVER1's handoff page
// against raw Ed25519 sign, in one run, and prints the table of
// docs/BENCHMARKS.md ("SERVER2 against a hand-written peer and the floor").
// `make compare` runs it from the repository root.
//
// It builds server1, server2, e2e/load, floor and peer into a temporary
// directory, generates SERVER1's keys there, and starts SERVER1 and its own
// redis-server (without persistence) on free loopback ports, both pinned
// to core 0 with the load tool. Each relying service (SERVER2 with the
// memory store, SERVER2 with Redis, the peer with each, the floor) is then
// started fresh for each measurement, pinned to core 1 with GOMAXPROCS=1,
// and driven by e2e/load: once as fast as it goes (peak) and once at half
// of that rate, in --rounds rounds whose order alternates. CPU per request
// is the service's CPU time read from /proc by the load tool
// (--server-pid). A second SERVER1, pinned to core 1 the same way, is
// driven with signed-in POST /handoffs (e2e/load --mode page).
//
// SERVER2 runs with --handoff-binding off: the load tool's tokens are
// minted ahead of time, not bound to a browser, and the peers do not
// check a binding either. Every other SERVER2 setting is its default.
//
// Any piece that fails (a build, a process that does not start or dies, a
// load run that exits non-zero, a request not accepted, a double
// acceptance) stops the run with the log of that piece; no table is
// printed then.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options is the command line.
type options struct {
	Root        string
	Rounds      int
	N           int
	HalfSeconds float64
	PageN       int
	Concurrency int
	ProfileDir  string
	ProfileSecs int
	Keep        bool
	Nice        int
	Retries     int
}

// Goals of issue 13.
const (
	goalPeer        = 1.0
	goalFloorMemory = 1.25
	goalFloorRedis  = 1.5
	goalP99ms       = 5.0
)

func main() {
	var o options
	flag.StringVar(&o.Root, "root", "..", "the repository root")
	flag.IntVar(&o.Rounds, "rounds", 2, "measurements of each configuration; the table shows the best (least disturbed) of them")
	flag.IntVar(&o.N, "n", 10000, "tokens per peak run")
	flag.Float64Var(&o.HalfSeconds, "half-seconds", 3, "length of each half-peak run, in seconds of tokens at that rate")
	flag.IntVar(&o.PageN, "page-n", 5000, "SERVER1 handoff pages per run")
	flag.IntVar(&o.Concurrency, "concurrency", 32, "requests in flight")
	flag.StringVar(&o.ProfileDir, "profile-dir", "", "save a CPU profile of SERVER2 during each peak run here, if SERVER2 has --pprof-addr")
	flag.IntVar(&o.ProfileSecs, "profile-seconds", 10, "length of each CPU profile, from the start of the load tool (which mints and measures raw verify for a few seconds first)")
	flag.BoolVar(&o.Keep, "keep", false, "keep the temporary directory (binaries, logs, load outputs)")
	flag.IntVar(&o.Retries, "retries", 1, "times a run that saw a refusal other than a double acceptance (a 503 from a missed store timeout on a busy machine) is repeated with a fresh service before the command fails")
	flag.IntVar(&o.Nice, "nice", 0, "run every measured process under nice -n this (negative, as root: ahead of other work on a shared machine; CPU per request is unchanged)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ncompare: FAILED: %v\n", err)
		os.Exit(1)
	}
}

// service is one relying service configuration under test.
type service struct {
	Name  string // "SERVER2", "peer", "floor"
	Store string // "memory", "redis"
}

func (s service) key() string { return s.Name + "/" + s.Store }

// measurement is one round's result for a service.
type measurement struct {
	Peak, Half summary
}

// summary is what e2e/load --json writes (the fields used here).
type summary struct {
	Sent                  int     `json:"sent"`
	Accepted              int     `json:"accepted"`
	Errors                int     `json:"transport_errors"`
	ReqPerSec             float64 `json:"req_per_sec"`
	P50ms                 float64 `json:"p50_ms"`
	P99ms                 float64 `json:"p99_ms"`
	ServerCPUPerRequestUS float64 `json:"server_cpu_per_request_us"`
	RawPerCPUSecond       float64 `json:"raw_per_cpu_second"`
	Resubmitted           int     `json:"resubmitted"`
	Refused409            int     `json:"refused_409"`
	DoubleAcceptances     int     `json:"double_acceptances"`
	Failed                bool    `json:"failed"`
}

type bench struct {
	o        options
	dir, bin string
	s1URL    string
	s1PID    int
	redisURL string
	rpAddr   string
	pprof    bool
	started  []*proc
	// retried names the runs that were repeated.
	retried []string
}

func run(ctx context.Context, o options) (err error) {
	if o.Rounds < 1 || o.N < 100 || o.PageN < 100 || o.HalfSeconds <= 0 || o.Concurrency < 1 || o.ProfileSecs < 1 {
		return errors.New("--rounds must be at least 1, --n and --page-n at least 100, --half-seconds, --concurrency and --profile-seconds positive")
	}
	if runtime.NumCPU() < 2 {
		return fmt.Errorf("needs at least 2 cores, this machine has %d", runtime.NumCPU())
	}
	for _, tool := range []string{"taskset", "redis-server", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not on PATH: %w", tool, err)
		}
	}
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return err
	}
	o.Root = root
	dir, err := os.MkdirTemp("", "handoff-compare-")
	if err != nil {
		return err
	}
	b := &bench{o: o, dir: dir, bin: filepath.Join(dir, "bin")}
	defer func() {
		b.stopAll()
		if o.Keep || err != nil {
			fmt.Fprintf(os.Stderr, "compare: logs and binaries kept in %s\n", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	began := time.Now()
	if err := b.build(ctx); err != nil {
		return err
	}
	if err := b.startIssuer(ctx); err != nil {
		return err
	}
	services := []service{
		{"SERVER2", "memory"}, {"peer", "memory"}, {"floor", "memory"},
		{"SERVER2", "redis"}, {"peer", "redis"},
	}
	results := map[string][]measurement{}
	var pages []summary
	for round := range o.Rounds {
		order := slices.Clone(services)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, s := range order {
			m, err := b.measure(ctx, s, round)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", s.key(), round+1, err)
			}
			results[s.key()] = append(results[s.key()], m)
		}
		p, err := b.measurePage(ctx, round)
		if err != nil {
			return fmt.Errorf("SERVER1 handoff page, round %d: %w", round+1, err)
		}
		pages = append(pages, p)
	}
	report(os.Stdout, o, services, results, pages, b.retried, time.Since(began))
	return nil
}

// build compiles every binary into b.bin.
func (b *bench) build(ctx context.Context) error {
	steps := []struct {
		dir  string
		args []string
	}{
		{b.o.Root, []string{"build", "-o", b.bin + "/", "./server1", "./server2", "./e2e/load"}},
		{filepath.Join(b.o.Root, "bench"), []string{"build", "-o", b.bin + "/", "./floor", "./peer"}},
	}
	for _, s := range steps {
		cmd := exec.CommandContext(ctx, "go", s.args...)
		cmd.Dir = s.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s in %s: %w\n%s", strings.Join(s.args, " "), s.dir, err, out)
		}
	}
	help, _ := exec.CommandContext(ctx, filepath.Join(b.bin, "server2"), "serve", "-h").CombinedOutput()
	b.pprof = bytes.Contains(help, []byte("-pprof-addr"))
	if b.o.ProfileDir != "" && !b.pprof {
		fmt.Fprintln(os.Stderr, "compare: this SERVER2 has no --pprof-addr; no profiles are saved")
	}
	return nil
}

// startIssuer generates SERVER1's keys and starts SERVER1 and redis-server
// on core 0.
func (b *bench) startIssuer(ctx context.Context) error {
	keys := filepath.Join(b.dir, "keys")
	if out, err := exec.CommandContext(ctx, filepath.Join(b.bin, "server1"), "keys", "generate", "--keys-dir", keys).CombinedOutput(); err != nil {
		return fmt.Errorf("server1 keys generate: %w\n%s", err, out)
	}
	s1Port, err := freePort()
	if err != nil {
		return err
	}
	rpPort, err := freePort()
	if err != nil {
		return err
	}
	b.s1URL = "http://localhost:" + s1Port
	b.rpAddr = "127.0.0.1:" + rpPort
	s1, err := b.start("server1", "0", false, filepath.Join(b.bin, "server1"), b.issuerArgs("localhost:"+s1Port, "revocations")...)
	if err != nil {
		return err
	}
	b.s1PID = s1.cmd.Process.Pid
	if err := s1.waitReady(ctx, b.s1URL+"/readyz"); err != nil {
		return err
	}
	redisPort, err := freePort()
	if err != nil {
		return err
	}
	redisDir := filepath.Join(b.dir, "redis")
	if err := os.Mkdir(redisDir, 0o700); err != nil {
		return err
	}
	r, err := b.start("redis", "0", false, "redis-server", "--port", redisPort, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", redisDir)
	if err != nil {
		return err
	}
	if err := r.waitTCP(ctx, "127.0.0.1:"+redisPort); err != nil {
		return err
	}
	b.redisURL = "redis://127.0.0.1:" + redisPort + "/0"
	return nil
}

// issuerArgs are SERVER1's flags: handoff limits raised so that one user
// can ask for every page of the SERVER1 run (defaults are for people, not
// load tools; live tokens stay within what SERVER1 records).
func (b *bench) issuerArgs(addr, revocations string) []string {
	return []string{"serve", "--addr", addr, "--issuer", b.s1URL,
		"--keys-dir", filepath.Join(b.dir, "keys"), "--revocation-dir", filepath.Join(b.dir, revocations),
		"--audience", "http://" + b.rpAddr, "--handoff-url", "http://" + b.rpAddr + "/handoff",
		"--handoff-burst", "20000", "--handoffs-per-minute", "60000"}
}

// measure runs one round of s: a peak run and a half-peak run, each
// against a freshly started service.
func (b *bench) measure(ctx context.Context, s service, round int) (measurement, error) {
	var m measurement
	var err error
	label := fmt.Sprintf("%s-%s-%d", s.Name, s.Store, round+1)
	if m.Peak, err = b.retry(ctx, s, label+"-peak", b.o.N, 0); err != nil {
		return m, err
	}
	half := m.Peak.ReqPerSec / 2
	n := max(100, int(half*b.o.HalfSeconds))
	if m.Half, err = b.retry(ctx, s, label+"-half", n, half); err != nil {
		return m, err
	}
	fmt.Fprintf(os.Stderr, "compare: %-7s %-6s round %d: peak %6.0f req/s %6.1f µs/req; half %6.0f req/s %6.1f µs/req p99 %.2f ms\n",
		s.Name, s.Store, round+1, m.Peak.ReqPerSec, m.Peak.ServerCPUPerRequestUS, m.Half.ReqPerSec, m.Half.ServerCPUPerRequestUS, m.Half.P99ms)
	return m, nil
}

// errDoubleAcceptance marks a run in which a token was accepted twice:
// never retried.
var errDoubleAcceptance = errors.New("a token was accepted twice")

// retry runs drive up to 1 + --retries times, until one run is clean. A
// double acceptance is never retried.
func (b *bench) retry(ctx context.Context, s service, label string, n int, rate float64) (summary, error) {
	for attempt := 0; ; attempt++ {
		sum, err := b.drive(ctx, s, fmt.Sprintf("%s-try%d", label, attempt+1), n, rate)
		if err == nil || errors.Is(err, errDoubleAcceptance) || attempt >= b.o.Retries || ctx.Err() != nil {
			return sum, err
		}
		b.retried = append(b.retried, label)
		fmt.Fprintf(os.Stderr, "compare: %s: %v\ncompare: %s: running it again with a fresh %s\n", label, firstLine(err), label, s.Name)
	}
}

func firstLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}

// drive starts s on core 1, runs the load tool at rate (0: as fast as it
// goes) with n tokens, stops s, and checks the run.
func (b *bench) drive(ctx context.Context, s service, label string, n int, rate float64) (summary, error) {
	var args []string
	var bin string
	store := "memory"
	if s.Store == "redis" {
		store = b.redisURL
	}
	var pprofAddr string
	switch s.Name {
	case "SERVER2":
		bin = "server2"
		args = []string{"serve", "--addr", b.rpAddr, "--audience", "http://" + b.rpAddr,
			"--trusted-issuer", b.s1URL, "--replay-store", store, "--handoff-binding", "off"}
		if b.pprof && b.o.ProfileDir != "" && rate == 0 {
			port, err := freePort()
			if err != nil {
				return summary{}, err
			}
			pprofAddr = "127.0.0.1:" + port
			args = append(args, "--pprof-addr", pprofAddr)
		}
	case "peer":
		bin = "peer"
		args = []string{"--addr", b.rpAddr, "--issuer", b.s1URL, "--audience", "http://" + b.rpAddr,
			"--jwks-url", b.s1URL + "/.well-known/jwks.json"}
		if s.Store == "redis" {
			args = append(args, "--redis", b.redisURL)
		}
	case "floor":
		bin = "floor"
		args = []string{"--addr", b.rpAddr, "--jwks-url", b.s1URL + "/.well-known/jwks.json"}
	}
	p, err := b.start(label, "1", true, filepath.Join(b.bin, bin), args...)
	if err != nil {
		return summary{}, err
	}
	defer p.stop()
	if err := p.waitReady(ctx, "http://"+b.rpAddr+"/readyz"); err != nil {
		return summary{}, err
	}
	// SERVER2's memory store refuses tokens issued in the second it
	// started.
	time.Sleep(1100 * time.Millisecond)
	loadArgs := []string{"--keys-dir", filepath.Join(b.dir, "keys"), "--issuer", b.s1URL,
		"--audience", "http://" + b.rpAddr, "--target", "http://" + b.rpAddr, "--server-cores", "1",
		"--n", strconv.Itoa(n), "--concurrency", strconv.Itoa(b.o.Concurrency),
		"--server-pid", strconv.Itoa(p.cmd.Process.Pid), "--verify-time", "1s", "--duration", "2m"}
	if rate > 0 {
		loadArgs = append(loadArgs, "--rate", fmt.Sprintf("%.0f", rate))
	}
	if s.Name == "floor" {
		loadArgs = append(loadArgs, "--replay=false")
	}
	var profile chan error
	if pprofAddr != "" {
		profile = make(chan error, 1)
		go func() {
			profile <- saveProfile(ctx, pprofAddr, b.o.ProfileSecs, filepath.Join(b.o.ProfileDir, label+".pprof"))
		}()
	}
	sum, err := b.load(ctx, label, loadArgs)
	if profile != nil {
		if perr := <-profile; perr != nil {
			return sum, fmt.Errorf("CPU profile: %w", perr)
		}
	}
	if err != nil {
		return sum, err
	}
	if err := p.alive(); err != nil {
		return sum, err
	}
	if sum.Accepted != n {
		return sum, fmt.Errorf("%d of %d tokens accepted (see %s)", sum.Accepted, n, b.logPath(label+"-load"))
	}
	if s.Name != "floor" && (sum.Resubmitted != n || sum.Refused409 != n) {
		return sum, fmt.Errorf("%d of %d resubmissions refused with 409", sum.Refused409, sum.Resubmitted)
	}
	return sum, nil
}

// saveProfile saves SERVER2's CPU profile over the load run.
func saveProfile(ctx context.Context, addr string, seconds int, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", req.URL, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	fmt.Fprintf(os.Stderr, "compare: CPU profile saved to %s\n", path)
	return f.Close()
}

// measurePage starts a second SERVER1 on core 1 and drives its signed-in
// POST /handoffs.
func (b *bench) measurePage(ctx context.Context, round int) (summary, error) {
	label := fmt.Sprintf("server1-page-%d", round+1)
	port, err := freePort()
	if err != nil {
		return summary{}, err
	}
	addr := "localhost:" + port
	p, err := b.start(label, "1", true, filepath.Join(b.bin, "server1"), b.issuerArgs(addr, label+"-revocations")...)
	if err != nil {
		return summary{}, err
	}
	defer p.stop()
	if err := p.waitReady(ctx, "http://"+addr+"/readyz"); err != nil {
		return summary{}, err
	}
	sum, err := b.load(ctx, label, []string{"--mode", "page", "--target", "http://" + addr,
		"--audience", "http://" + b.rpAddr, "--server-cores", "1", "--n", strconv.Itoa(b.o.PageN),
		"--concurrency", strconv.Itoa(b.o.Concurrency), "--server-pid", strconv.Itoa(p.cmd.Process.Pid),
		"--verify-time", "1s", "--duration", "2m"})
	if err != nil {
		return sum, err
	}
	if err := p.alive(); err != nil {
		return sum, err
	}
	if sum.Accepted != b.o.PageN {
		return sum, fmt.Errorf("%d of %d handoff pages rendered (see %s)", sum.Accepted, b.o.PageN, b.logPath(label+"-load"))
	}
	fmt.Fprintf(os.Stderr, "compare: SERVER1 page  round %d: %6.0f req/s %6.1f µs/req\n", round+1, sum.ReqPerSec, sum.ServerCPUPerRequestUS)
	return sum, nil
}

// load runs e2e/load on core 0 and reads its --json summary.
func (b *bench) load(ctx context.Context, label string, args []string) (summary, error) {
	out := b.logPath(label + "-load")
	js := filepath.Join(b.dir, label+"-load.json")
	f, err := os.Create(out)
	if err != nil {
		return summary{}, err
	}
	defer f.Close()
	cmd := b.pinned("0", filepath.Join(b.bin, "load"), append([]string{"--json", js}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	runErr := cmd.Run()
	raw, err := os.ReadFile(js)
	if err != nil {
		return summary{}, fmt.Errorf("load tool: %w\n%s", errors.Join(runErr, err), tail(out))
	}
	var s summary
	if err := json.Unmarshal(raw, &s); err != nil {
		return summary{}, err
	}
	if s.DoubleAcceptances > 0 {
		return s, fmt.Errorf("%w: %d double acceptances\n%s", errDoubleAcceptance, s.DoubleAcceptances, tail(out))
	}
	if runErr != nil || s.Failed || s.Errors > 0 || s.ServerCPUPerRequestUS <= 0 {
		return s, fmt.Errorf("load run not clean (%v; 503s on a busy machine: the store or SERVER2 missed a timeout, see --nice)\n%s", runErr, tail(out))
	}
	return s, nil
}

func (b *bench) logPath(label string) string { return filepath.Join(b.dir, label+".log") }

// proc is a process this command started.
type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan error
}

// start runs path pinned to core (GOMAXPROCS=1 with one), its output to a
// log file.
func (b *bench) start(name, core string, oneProc bool, path string, args ...string) (*proc, error) {
	p := &proc{name: name, log: b.logPath(name), done: make(chan error, 1)}
	f, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	p.cmd = b.pinned(core, path, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = os.Environ()
	if oneProc {
		p.cmd.Env = append(p.cmd.Env, "GOMAXPROCS=1")
	}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.done <- p.cmd.Wait()
		f.Close()
	}()
	b.started = append(b.started, p)
	return p, nil
}

// pinned returns the command running path on core, under nice -n
// --nice when that is set.
func (b *bench) pinned(core, path string, args ...string) *exec.Cmd {
	argv := append([]string{"taskset", "-c", core, path}, args...)
	if b.o.Nice != 0 {
		argv = append([]string{"nice", "-n", strconv.Itoa(b.o.Nice)}, argv...)
	}
	return exec.Command(argv[0], argv[1:]...)
}

// alive reports an error when p has exited.
func (p *proc) alive() error {
	select {
	case err := <-p.done:
		p.done <- err
		return fmt.Errorf("%s exited (%v)\n%s", p.name, err, tail(p.log))
	default:
		return nil
	}
}

func (p *proc) waitReady(ctx context.Context, url string) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if err := p.alive(); err != nil {
			return err
		}
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready at %s within 20s\n%s", p.name, url, tail(p.log))
}

func (p *proc) waitTCP(ctx context.Context, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := p.alive(); err != nil {
			return err
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not listening on %s within 10s\n%s", p.name, addr, tail(p.log))
}

// stop ends p: SIGTERM, then SIGKILL after 5 s.
func (p *proc) stop() {
	if p.alive() != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		p.done <- <-p.done
	}
}

func (b *bench) stopAll() {
	for _, p := range slices.Backward(b.started) {
		p.stop()
	}
}

// freePort returns a loopback port free at the time of asking.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

// tail returns the last lines of a log file.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 30 {
			lines = lines[1:]
		}
	}
	return "--- " + path + " (last lines) ---\n" + strings.Join(lines, "\n")
}

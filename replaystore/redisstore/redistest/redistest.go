package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SkipOrFail skips t, or fails it when E2E_REQUIRE_REDIS=1.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("E2E_REQUIRE_REDIS") == "1" {
		t.Fatalf(format+" (E2E_REQUIRE_REDIS=1)", args...)
	}
	t.Skipf(format+" (set E2E_REQUIRE_REDIS=1 to fail instead)", args...)
}

// RequireBinary skips t (or fails it, under E2E_REQUIRE_REDIS=1) when name
// is not on PATH.
func RequireBinary(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		SkipOrFail(t, "%s not on PATH", name)
	}
}

// WaitFor polls cond every 20ms until it holds, failing t after limit.
func WaitFor(t testing.TB, limit time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreePort returns a loopback port nothing listens on.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	_ = l.Close()
	return port
}

// Server is a redis-server process of the test's own, which the test may
// kill and start again without disturbing anyone else's Redis.
type Server struct {
	t    testing.TB
	port string
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start runs redis-server on a free loopback port, without persistence
// and with its files in a temporary directory, with args added (later
// arguments override earlier ones, so args may set --dir or --appendonly),
// and waits until it answers. It is killed when the test ends.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	return startOn(t, FreePort(t), args...)
}

func startOn(t testing.TB, port string, args ...string) *Server {
	t.Helper()
	RequireBinary(t, "redis-server")
	s := &Server{t: t, port: port, args: append([]string{"--dir", t.TempDir()}, args...)}
	s.Restart()
	t.Cleanup(s.Kill)
	return s
}

// Port is the server's loopback port.
func (s *Server) Port() string { return s.port }

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + s.port }

// URL is the redis:// URL of the server's database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Restart starts the server again after Kill (or for the first time) on
// the same port and with the same arguments, and waits until it answers.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("redistest: redis-server is already running")
	}
	// A replica syncs at once, not after the default 5 s delay.
	args := append([]string{"--port", s.port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"}, s.args...)
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("redistest: starting redis-server: %v", err)
	}
	s.cmd = cmd
	waitPing(s.t, s.Addr())
}

// Kill stops the server at once (SIGKILL), as a crash would, and waits for
// it to exit. It does nothing when the server is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// WaitReplicaSynced waits until the replica at addr reports its link to
// its master up.
func WaitReplicaSynced(t testing.TB, addr string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	WaitFor(t, 10*time.Second, func() bool {
		info, err := c.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	}, "the replica on "+addr+" to sync")
}

func waitPing(t testing.TB, addr string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	WaitFor(t, 10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Ping(ctx).Err() == nil
	}, "redis on "+addr+" to answer")
}

// SentinelMaster is the name the sentinels of a SentinelSet monitor.
const SentinelMaster = "handoff"

// SentinelSet is a master, one replica and the sentinels that monitor
// them under the name SentinelMaster.
type SentinelSet struct {
	Master, Replica *Server
	// Sentinels are the sentinels' host:port addresses.
	Sentinels []string
}

// StartSentinelSet runs a master, a replica of it and n sentinels (quorum
// n/2+1; down-after-milliseconds 1000, failover-timeout 3000), and waits
// until every sentinel knows the replica (and the other sentinels), so
// that a failover can happen.
func StartSentinelSet(t testing.TB, n int) *SentinelSet {
	t.Helper()
	master := Start(t)
	replica := Start(t, "--replicaof", "127.0.0.1", master.Port())
	WaitReplicaSynced(t, replica.Addr())
	set := &SentinelSet{Master: master, Replica: replica}
	for range n {
		set.Sentinels = append(set.Sentinels, startSentinel(t, master.Port(), n/2+1))
	}
	for _, a := range set.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1})
		WaitFor(t, 15*time.Second, func() bool {
			reps, err := sc.Replicas(context.Background(), SentinelMaster).Result()
			if err != nil || len(reps) != 1 {
				return false
			}
			return reps[0]["port"] == replica.Port() && !strings.Contains(reps[0]["flags"], "down")
		}, "sentinel "+a+" to know the replica")
		if n > 1 {
			WaitFor(t, 15*time.Second, func() bool {
				m, err := sc.Master(context.Background(), SentinelMaster).Result()
				return err == nil && m["num-other-sentinels"] == strconv.Itoa(n-1)
			}, "sentinel "+a+" to know the other sentinels")
		}
		_ = sc.Close()
	}
	return set
}

// URL is the store URL naming every sentinel (redisstore's master_name=
// form).
func (s *SentinelSet) URL() string {
	u := "redis://" + s.Sentinels[0] + "/0?master_name=" + SentinelMaster
	for _, a := range s.Sentinels[1:] {
		u += "&addr=" + a
	}
	return u
}

// MasterAddr is the master the first sentinel currently names.
func (s *SentinelSet) MasterAddr(t testing.TB) string {
	t.Helper()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0], MaxRetries: -1})
	defer sc.Close()
	a, err := sc.GetMasterAddrByName(context.Background(), SentinelMaster).Result()
	if err != nil {
		t.Fatalf("redistest: sentinel get-master-addr-by-name: %v", err)
	}
	return net.JoinHostPort(a[0], a[1])
}

// startSentinel runs redis-server --sentinel on a free loopback port,
// monitoring the master on masterPort, and waits until it answers.
func startSentinel(t testing.TB, masterPort string, quorum int) string {
	t.Helper()
	port := FreePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	err := os.WriteFile(conf, []byte(strings.Join([]string{
		"port " + port,
		"bind 127.0.0.1",
		"dir " + dir,
		"sentinel monitor " + SentinelMaster + " 127.0.0.1 " + masterPort + " " + strconv.Itoa(quorum),
		"sentinel down-after-milliseconds " + SentinelMaster + " 1000",
		"sentinel failover-timeout " + SentinelMaster + " 3000",
		"",
	}, "\n")), 0o600)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	cmd := exec.Command("redis-server", conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatalf("redistest: starting redis-server --sentinel: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := "127.0.0.1:" + port
	waitPing(t, addr)
	return addr
}

// clusterPort returns a free loopback port whose cluster bus port (port +
// 10000) is free and valid too.
func clusterPort(t testing.TB) string {
	t.Helper()
	for range 100 {
		p := FreePort(t)
		n, _ := strconv.Atoi(p)
		if n+10000 > 65535 {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(n+10000))
		if err != nil {
			continue
		}
		_ = l.Close()
		return p
	}
	t.Fatal("redistest: no free port pair for a cluster node")
	return ""
}

// StartCluster runs three cluster-enabled redis-server masters, joins them
// with redis-cli --cluster create and waits until every node reports
// cluster_state:ok. It returns the nodes' host:port addresses.
func StartCluster(t testing.TB) []string {
	t.Helper()
	RequireBinary(t, "redis-server")
	RequireBinary(t, "redis-cli")
	addrs := make([]string, 3)
	for i := range addrs {
		dir := t.TempDir()
		s := startOn(t, clusterPort(t),
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "2000",
			"--dir", dir,
		)
		addrs[i] = s.Addr()
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v: %s", err, out)
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1})
		WaitFor(t, 15*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			info, err := c.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		}, "cluster_state:ok on "+a)
		_ = c.Close()
	}
	return addrs
}

// ClusterURL is the store URL (redisstore's addr= form) naming every node.
func ClusterURL(addrs []string) string {
	return fmt.Sprintf("redis://%s?addr=%s", addrs[0], strings.Join(addrs[1:], "&addr="))
}

// WaitReplicaCaughtUp waits until the replica has received everything the
// master had written when it was called (its replication offset has
// reached the master's), so that a failover loses none of it.
func (s *SentinelSet) WaitReplicaCaughtUp(t testing.TB) {
	t.Helper()
	mc := redis.NewClient(&redis.Options{Addr: s.Master.Addr(), MaxRetries: -1})
	defer mc.Close()
	rc := redis.NewClient(&redis.Options{Addr: s.Replica.Addr(), MaxRetries: -1})
	defer rc.Close()
	ctx := context.Background()
	info, err := mc.Info(ctx, "replication").Result()
	if err != nil {
		t.Fatalf("redistest: INFO replication on the master: %v", err)
	}
	want := infoInt(info, "master_repl_offset")
	WaitFor(t, 10*time.Second, func() bool {
		info, err := rc.Info(ctx, "replication").Result()
		return err == nil && infoInt(info, "slave_repl_offset") >= want
	}, "the replica to reach the master's replication offset")
}

// CommandCalls returns how many times the server at addr has run each
// command, by name ("set", "evalsha"), from INFO commandstats: commands a
// script runs included.
func CommandCalls(t testing.TB, addr string) map[string]int64 {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("redistest: INFO commandstats: %v", err)
	}
	calls := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		calls[strings.TrimPrefix(name, "cmdstat_")] = infoInt(strings.ReplaceAll(rest, ",", "\n"), "calls")
	}
	return calls
}

// infoInt is the integer field name of an INFO reply, -1 if absent.
func infoInt(info, name string) int64 {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return n
			}
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+"="); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return n
			}
		}
	}
	return -1
}

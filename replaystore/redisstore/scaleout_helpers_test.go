package redisstore_test

import (
	"context"
	"errors"
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
	"github.com/stretchr/testify/require"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/replaystore/redisstore"
)

// requireBinary skips (or, under E2E_REQUIRE_REDIS=1, fails) the test when
// name is not on PATH.
func requireBinary(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		skipOrFail(t, "%s not on PATH", name)
	}
}

// clusterPort returns a free loopback port whose cluster bus port (port +
// 10000) is free and valid too.
func clusterPort(t testing.TB) string {
	t.Helper()
	for range 100 {
		_, p, err := net.SplitHostPort(closedPort(t))
		require.NoError(t, err)
		n, err := strconv.Atoi(p)
		require.NoError(t, err)
		if n+10000 > 65535 {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(n+10000))
		if err != nil {
			continue
		}
		require.NoError(t, l.Close())
		return p
	}
	t.Fatal("no free port pair for a cluster node")
	return ""
}

// startCluster runs three cluster-enabled redis-server masters, joins them
// with redis-cli --cluster create and waits until every node reports
// cluster_state:ok. It returns the nodes' addresses.
func startCluster(t testing.TB) []string {
	t.Helper()
	requireBinary(t, "redis-server")
	requireBinary(t, "redis-cli")
	addrs := make([]string, 3)
	for i := range addrs {
		dir := t.TempDir()
		rs := &redisServer{t: t, port: clusterPort(t), args: []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "2000",
			"--dir", dir,
		}}
		rs.start()
		t.Cleanup(rs.stop)
		addrs[i] = "127.0.0.1:" + rs.port
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	require.NoError(t, err, "redis-cli --cluster create: %s", out)
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1})
		waitFor(t, 15*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			info, err := c.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		}, "cluster_state:ok on "+a)
		_ = c.Close()
	}
	return addrs
}

// sentinelSet is a master, one replica and the sentinels that monitor them
// under the name sentinelMaster.
type sentinelSet struct {
	master, replica *redisServer
	sentinels       []string
}

const sentinelMaster = "handoff"

// startSentinelSet runs a master, a replica of it and n sentinels (quorum
// n/2+1) with short failover timeouts, and waits until every sentinel
// knows the replica, so that a failover can happen.
func startSentinelSet(t testing.TB, n int) *sentinelSet {
	t.Helper()
	requireBinary(t, "redis-server")
	master := startRedisServer(t)
	replica := startRedisServer(t, "--replicaof", "127.0.0.1", master.port)
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + replica.port, MaxRetries: -1})
	defer rc.Close()
	waitFor(t, 10*time.Second, func() bool {
		info, err := rc.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	}, "the replica to sync")
	set := &sentinelSet{master: master, replica: replica}
	for range n {
		set.sentinels = append(set.sentinels, startSentinel(t, master.port, n/2+1))
	}
	for _, a := range set.sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1})
		waitFor(t, 15*time.Second, func() bool {
			reps, err := sc.Replicas(context.Background(), sentinelMaster).Result()
			if err != nil || len(reps) != 1 {
				return false
			}
			return reps[0]["port"] == replica.port && !strings.Contains(reps[0]["flags"], "down")
		}, "sentinel "+a+" to know the replica")
		if n > 1 {
			waitFor(t, 15*time.Second, func() bool {
				m, err := sc.Master(context.Background(), sentinelMaster).Result()
				return err == nil && m["num-other-sentinels"] == strconv.Itoa(n-1)
			}, "sentinel "+a+" to know the other sentinels")
		}
		_ = sc.Close()
	}
	return set
}

// url is the store URL naming every sentinel.
func (s *sentinelSet) url() string {
	u := "redis://" + s.sentinels[0] + "/0?master_name=" + sentinelMaster
	for _, a := range s.sentinels[1:] {
		u += "&addr=" + a
	}
	return u
}

// masterAddr is the master the first sentinel currently names.
func (s *sentinelSet) masterAddr(t testing.TB) string {
	t.Helper()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.sentinels[0], MaxRetries: -1})
	defer sc.Close()
	a, err := sc.GetMasterAddrByName(context.Background(), sentinelMaster).Result()
	require.NoError(t, err)
	return net.JoinHostPort(a[0], a[1])
}

// startSentinel runs redis-server --sentinel on a free loopback port,
// monitoring the master on masterPort, and waits until it answers.
func startSentinel(t testing.TB, masterPort string, quorum int) string {
	t.Helper()
	_, port, err := net.SplitHostPort(closedPort(t))
	require.NoError(t, err)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	require.NoError(t, os.WriteFile(conf, []byte(strings.Join([]string{
		"port " + port,
		"bind 127.0.0.1",
		"dir " + dir,
		"sentinel monitor " + sentinelMaster + " 127.0.0.1 " + masterPort + " " + strconv.Itoa(quorum),
		"sentinel down-after-milliseconds " + sentinelMaster + " 1000",
		"sentinel failover-timeout " + sentinelMaster + " 3000",
		"",
	}, "\n")), 0o600))
	cmd := exec.Command("redis-server", conf, "--sentinel")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := "127.0.0.1:" + port
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	waitFor(t, 10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Ping(ctx).Err() == nil
	}, "sentinel on port "+port+" to answer")
	return addr
}

// openURLStore opens a Store by url with per-test prefixes, as SERVER2
// would from its configuration, closed when the test ends.
func openURLStore(t testing.TB, url string) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(redisstore.Config{
		URL:              url,
		KeyPrefix:        "test:jti:",
		RevocationPrefix: "test:rev:",
		CompletionPrefix: "test:done:",
		Timeout:          2 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// assertOneWinner consumes key from every store in stores, many times
// each and all at once, and asserts that exactly one call succeeded and
// every other one was refused as already used.
func assertOneWinner(t *testing.T, stores []*redisstore.Store, key string) {
	t.Helper()
	const perStore = 8
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted int
		other    []error
	)
	exp := time.Now().Add(time.Minute)
	start := make(chan struct{})
	for _, s := range stores {
		for range perStore {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				err := s.Consume(context.Background(), key, exp)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					accepted++
				case !errors.Is(err, token.ErrAlreadyUsed):
					other = append(other, err)
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	require.Empty(t, other)
	require.Equal(t, 1, accepted, "key %q", key)
}
